"""Predicts distances with a trained model folder (`chimpact infer`): its
flags are defined in chimpact/commands/infer.py; --help shows them."""

from absl import flags

from chimpact import cli, storage
from chimpact.cli import reports_input_errors
from chimpact.commands import run

FLAGS = flags.FLAGS


@reports_input_errors
def main(argv):
    # Every gs:// path among the flags answers, before work that would retry it for minutes.
    storage.check_reachable(FLAGS.flag_values_dict())
    del argv
    storage.check_writable(FLAGS.out_csv, "out_csv", "file")
    storage.check_writable(FLAGS.export, "export")
    cli.require_tensorflow()
    from chimpact.predict import jobs  # TensorFlow loads here, once the flags are read
    jobs.run_infer(
        FLAGS.model_dir, tfrec_dir=FLAGS.tfrec_dir, submission_csv=FLAGS.submission_csv,
        out_csv=FLAGS.out_csv, export_dir=FLAGS.export, oof=FLAGS.oof, tta=FLAGS.tta,
        batch_size=FLAGS.batch_size, strategy=FLAGS.strategy, tpu=FLAGS.tpu,
        jit_compile=cli.jit_compile(FLAGS.jit_compile), aggregate=FLAGS.aggregate)


if __name__ == "__main__":
    run("infer", main, FLAGS)
