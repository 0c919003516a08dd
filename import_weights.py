r"""Imports the 3rd place's published weights (its run.py's model-best-f{fold}-*.h5 checkpoints)
into a chimpact model folder that run_infer.py, run_field.py and ensemble.py take as they take a
trained one.

    python import_weights.py --preset=full-a4p50-f7s1 \
        --weights=model-best-f0-e026-1.3361-2.3612.h5 --out_dir=models/full-a4p50-f7s1
    chimpact import --archive_dir=winner/ --out_dir=models/reference   # all 12 configurations

Every array of each file is matched by name and shape before anything is written; a file that
is not HDF5, or holds another architecture, is one line naming it (exit 1).
"""

from absl import flags

import chimpact_flags
from chimpact import cli, storage
from chimpact.cli import reports_input_errors
from chimpact.errors import UsageError

flags.DEFINE_list("weights", None, "The reference's checkpoints, one per fold (local or "
                  "gs://): model-best-f{fold}-e{epoch}-{val_loss}-{val_rmse}.h5, the fold read "
                  "from the name unless --folds gives it.")
flags.DEFINE_string("preset", None, "The reference configuration that trained them, e.g. "
                    "full-a4p50-f7s1 (the name of its run folder, run-YYYYMMDD-HHMM-{preset}).")
flags.DEFINE_list("folds", None, "The fold of each --weights file, in their order (default: "
                  "read from their names).")
flags.DEFINE_string("archive_dir", None, "Instead of --weights and --preset: a folder laid out "
                    "as the winner's archive (models/run-*-{preset}/model-best-f*.h5); each "
                    "configuration becomes --out_dir/{preset}.")
flags.DEFINE_string("out_dir", None, "Model folder to write (local or gs://): config.json and "
                    "fold*/best.weights.h5.")
flags.DEFINE_list("image_size", None, f"Size the model reads: {cli.SIZE_HELP}. Default: the "
                  "reference's 512x512, which its weights were trained at.")

FLAGS = flags.FLAGS


@reports_input_errors
def main(argv):
    storage.check_reachable(FLAGS.flag_values_dict())
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.out_dir:
        raise UsageError("--out_dir is required")
    if bool(FLAGS.archive_dir) == bool(FLAGS.weights):
        raise UsageError("give --weights (with --preset) or --archive_dir, not both")
    if FLAGS.weights and not FLAGS.preset:
        raise UsageError("--preset is required with --weights (the configuration that trained "
                         "them, e.g. full-a4p50-f7s1)")
    image_size = cli.image_size(FLAGS.image_size)
    storage.check_writable(FLAGS.out_dir, "out_dir")
    cli.require_tensorflow()
    from chimpact.training import reference_import

    if FLAGS.archive_dir:
        folders = reference_import.import_archive(FLAGS.archive_dir, FLAGS.out_dir, image_size)
    else:
        reference_import.import_weights(FLAGS.weights, FLAGS.preset, FLAGS.out_dir,
                                        FLAGS.folds, image_size)
        folders = {FLAGS.preset: FLAGS.out_dir}
    for preset, folder in folders.items():
        config = reference_import.read_imported(folder)
        print(f"{folder}: {reference_import.describe(config)}")


if __name__ == "__main__":
    chimpact_flags.run(main)
