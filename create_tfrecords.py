r"""Packs extracted frames and a label table into sharded sequence TFRecords.

    python create_tfrecords.py --frames_dir=frames --labels_csv=train_labels.csv --out_dir=tfrec
    chimpact records --frames_dir=frames --labels_csv=train_labels.csv --out_dir=tfrec
    python create_tfrecords.py --frames_dir=frames --subset=test \
        --labels_csv=submission_format.csv --out_dir=tfrec_test
    python create_tfrecords.py --frames_dir=frames --labels_csv=train_labels.csv \
        --boxes_csv=train_metadata.csv --out_dir=tfrec_boxes     # for run_train.py --use_boxes
    python create_tfrecords.py --inspect=tfrec
    python create_tfrecords.py ... --runner=beam -- --direct_num_workers=2   # a Beam pipeline

Re-running an interrupted command completes it; the output is complete once manifest.json exists.
An --out_dir holding records of other inputs or settings, or files this program did not write,
is refused before any work.
"""

from absl import flags

import chimpact_flags
from chimpact import cli, settings, storage
from chimpact.cli import reports_input_errors
from chimpact.errors import UsageError

chimpact_flags.define_runner_flags()
flags.adopt_module_key_flags(chimpact_flags)
flags.DEFINE_string("frames_dir", None, "Folder written by create_frames.py (manifest.csv and "
                    "one folder of JPEG frames per video).")
flags.DEFINE_string("labels_csv", None, "Label table with video_id, time (and distance for "
                    "--subset=train): train_labels.csv or submission_format.csv.")
flags.DEFINE_string("out_dir", None, "Folder for the shards and manifest.json (local or gs://).")
flags.DEFINE_enum("subset", "train", ["train", "test"], "train: labelled, split into folds; "
                  "test: the rows to predict, their distance column ignored.")
flags.DEFINE_integer("frames_per_side", 5, "Frames stored on each side of the labelled second: "
                     "each example holds 2*frames_per_side+1 frames.")
flags.DEFINE_integer("step", 1, "Seconds between stored frames.")
flags.DEFINE_integer("n_folds", 5, "GroupKFold folds of the training data.")
flags.DEFINE_enum("group_by", "video", ["video", "site"], "What no two folds share: videos, or "
                  "camera sites (needs --metadata_csv).")
flags.DEFINE_bool("stratify", False, "Draw the folds with StratifiedGroupKFold so that each "
                  "fold's distances (10 quantile bins) look like the whole's, no group in two "
                  "folds (the 1st place's site folds: --group_by=site --stratify).")
flags.DEFINE_string("metadata_csv", None, "The challenge's train_metadata.csv (video_id, site_id),"
                    " for --group_by=site.")
flags.DEFINE_string("boxes_csv", None, "Boxes table in the challenge's train_metadata.csv / "
                    "test_metadata.csv layout (video_id, time, x1, y1, x2, y2 in 0..1, "
                    "probability; other columns ignored; empty coordinates: no box): each example "
                    "stores its animal's box, which run_train.py --use_boxes reads.")
flags.DEFINE_list("image_size", None, f"Size of the stored frames: {cli.SIZE_HELP}; frames of "
                  "another size are resized and re-encoded. Default: the size they were "
                  "extracted at (the most common one if videos differ).")
flags.DEFINE_float("shard_mb", 150, "Target shard size in MB (ignored when --shards is set).")
flags.DEFINE_integer("shards", None, "Shards per fold (train) or in all (test), instead of "
                     "--shard_mb.")
flags.DEFINE_integer("workers", 4, "Shards written at once (--runner=local): by this process "
                     "and workers - 1 forked ones when the frames and --out_dir are local, else "
                     "by threads.")
flags.DEFINE_integer("seed", settings.SHUFFLE_SEED, "Seed of the random order in which each "
                     "fold's examples are dealt into its shards (33, as the reference's shuffle), "
                     "so that consecutive records mix videos; and of --stratify's fold draw.")
flags.DEFINE_bool("allow_missing", False, "Skip the rows of videos without frames (counted in "
                  "the manifest) instead of failing.")
flags.DEFINE_string("inspect", None, "Instead of writing: print the manifest of this records "
                    "folder and decode one example of each shard.")

FLAGS = flags.FLAGS


@reports_input_errors
def main(argv):
    # Every gs:// path among the flags answers, before work that would retry it for minutes.
    storage.check_reachable(FLAGS.flag_values_dict())
    beam_args = chimpact_flags.beam_args(argv, [FLAGS.frames_dir, FLAGS.out_dir])
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
        stratify=FLAGS.stratify, beam_args=beam_args)
    print(f"{FLAGS.out_dir}: {manifest.examples} examples in {len(manifest.shards)} shards, "
          f"{manifest.clamped_examples} with clamped frames, {manifest.skipped_rows} rows skipped")


if __name__ == "__main__":
    chimpact_flags.run(main)
