"""Blends trained models on their out-of-fold predictions (`chimpact ensemble`): its
flags are defined in chimpact/commands/ensemble.py; --help shows them."""

from absl import flags

from chimpact import ensemble, storage
from chimpact.cli import reports_input_errors
from chimpact.commands import run

FLAGS = flags.FLAGS


@reports_input_errors
def main(argv):
    # Every gs:// path among the flags answers, before work that would retry it for minutes.
    storage.check_reachable(FLAGS.flag_values_dict())
    del argv
    storage.check_writable(FLAGS.out_dir, "out_dir")
    summary = ensemble.run_ensemble(
        FLAGS.model_dirs, FLAGS.out_dir, coef_min=FLAGS.coef_min, coef_max=FLAGS.coef_max,
        coef_step=FLAGS.coef_step, round_to_labels=FLAGS.round_to_labels,
        submission_csv=FLAGS.submission_csv, tta=FLAGS.tta)
    print(ensemble.mae_table(summary))


if __name__ == "__main__":
    run("ensemble", main, FLAGS)
