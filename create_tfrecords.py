"""Packs extracted frames and a label table into sequence TFRecords (`chimpact records`): its
flags are defined in chimpact/commands/records.py; --help shows them."""

from absl import flags

from chimpact import cli, storage
from chimpact.cli import reports_input_errors
from chimpact.commands import run
from chimpact.errors import UsageError

FLAGS = flags.FLAGS


@reports_input_errors
def main(argv):
    # Every gs:// path among the flags answers, before work that would retry it for minutes.
    storage.check_reachable(FLAGS.flag_values_dict())
    del argv
    if not FLAGS.inspect:
        for name in ("frames_dir", "labels_csv", "out_dir"):
            if not FLAGS[name].value:
                raise UsageError(f"--{name} is required")
        image_size = cli.image_size(FLAGS.image_size)
        storage.check_writable(FLAGS.out_dir, "out_dir")
    cli.require_tensorflow()
    from chimpact.data import packing, records  # TensorFlow loads here, once the flags are read
    if FLAGS.inspect:
        for line in records.describe(FLAGS.inspect):
            print(line)
        return
    manifest = packing.create_records(
        FLAGS.frames_dir, FLAGS.labels_csv, FLAGS.out_dir, subset=FLAGS.subset,
        frames_per_side=FLAGS.frames_per_side, step=FLAGS.step, n_folds=FLAGS.n_folds,
        group_by=FLAGS.group_by, metadata_csv=FLAGS.metadata_csv, image_size=image_size,
        shard_mb=FLAGS.shard_mb, shards=FLAGS.shards, workers=FLAGS.workers,
        allow_missing=FLAGS.allow_missing, seed=FLAGS.seed, boxes_csv=FLAGS.boxes_csv,
        stratify=FLAGS.stratify)
    print(f"{FLAGS.out_dir}: {manifest.examples} examples in {len(manifest.shards)} shards, "
          f"{manifest.clamped_examples} with clamped frames, {manifest.skipped_rows} rows skipped")


if __name__ == "__main__":
    run("records", main, FLAGS)
