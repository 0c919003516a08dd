"""Trains a distance model fold by fold on sequence records (`chimpact train`): its
flags are defined in chimpact/commands/train.py; --help shows them."""

import sys

from absl import flags

from chimpact import cli, storage
from chimpact.cli import reports_input_errors
from chimpact.commands import run
from chimpact.errors import UsageError

FLAGS = flags.FLAGS


def _ints(values, name):
    try:
        return [int(v) for v in values]
    except ValueError:
        raise UsageError(f"--{name}={','.join(values)}: expected whole numbers")


def flags_text():
    """The flags of this script as a flagfile that repeats the run."""
    lines = [f"# python run_train.py --flagfile=flags.txt   (written by: {' '.join(sys.argv)})"]
    lines += [flag.serialize() for flag in FLAGS.get_flags_for_module(__name__)
              if flag.value is not None]
    return "\n".join(lines) + "\n"


@reports_input_errors
def main(argv):
    # Every gs:// path among the flags answers, before work that would retry it for minutes.
    storage.check_reachable(FLAGS.flag_values_dict())
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.preset:
        raise UsageError(f"--preset {FLAGS.preset}: write --preset={FLAGS.preset} (the preset "
                         "is read before the other flags)")
    for name in ("tfrec_dir", "out_dir"):
        if not FLAGS[name].value:
            raise UsageError(f"--{name} is required")
    image_size = cli.image_size(FLAGS.image_size)
    storage.check_writable(FLAGS.out_dir, "out_dir")
    cli.require_tensorflow()
    # TensorFlow loads here, once the flags are read.
    from chimpact.training import strategy as strategies
    from chimpact.training import train
    strategy = strategies.make_strategy(FLAGS.strategy, FLAGS.tpu)
    verbose = FLAGS.verbose if FLAGS.verbose == "auto" else int(FLAGS.verbose)
    train.train(
        FLAGS.tfrec_dir, FLAGS.out_dir, backbone=FLAGS.backbone, weights=FLAGS.weights,
        volume_size=FLAGS.volume_size, step=FLAGS.step, image_size=image_size,
        folds=_ints(FLAGS.folds, "folds") if FLAGS.folds else None, epochs=FLAGS.epochs,
        batch_size=FLAGS.batch_size, lr=FLAGS.lr, aug=FLAGS.aug, aug_prob=FLAGS.aug_prob,
        seed=FLAGS.seed, lstm_units=FLAGS.lstm_units, dense_units=FLAGS.dense_units,
        mixed_precision=FLAGS.mixed_precision, jit_compile=cli.jit_compile(FLAGS.jit_compile),
        output_bias=FLAGS.output_bias, use_boxes=FLAGS.use_boxes, family=FLAGS.family,
        crop_bottom=FLAGS.crop_bottom, frame_fill=FLAGS.frame_fill, loss=FLAGS.loss,
        schedule=FLAGS.schedule, optimizer=FLAGS.optimizer,
        weight_decay=FLAGS.weight_decay if FLAGS.optimizer == "adamw" else 0.0,
        pseudo_labels_csv=FLAGS.pseudo_labels, pseudo_tfrec_dir=FLAGS.pseudo_tfrec_dir,
        strategy=strategy, flags_text=flags_text(),
        verbose=verbose)


if __name__ == "__main__":
    run("train", main, FLAGS)
