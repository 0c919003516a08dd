r"""Trains the CNN-LSTM distance model fold by fold on sequence records.

    python run_train.py --flagfile=models/full-a4p50-f7s1.flags --tfrec_dir=tfrec --out_dir=runs/m1
    python run_train.py --flagfile=models/demo.flags --tfrec_dir=tfrec --out_dir=runs/demo \
        --epochs=2            # flags after the flagfile override it

Re-running a killed command resumes at the last finished epoch; finished folds are skipped.
Strategies: --strategy=auto picks a TPU when --tpu is given, all GPUs when there are several,
else the default device. --strategy=multiworker reads TF_CONFIG (run the same command on each
machine, with a shared --out_dir such as gs://).
"""

import sys

from absl import app, flags

from chimpact import cli

cli.require_tensorflow()

from chimpact import augment, model, train  # noqa: E402  (after the TensorFlow check)
from chimpact import strategy as strategies  # noqa: E402
from chimpact.cli import reports_input_errors  # noqa: E402
from chimpact.errors import InputError  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("tfrec_dir", None, "Training records folder written by create_tfrecords.py "
                    "(local or gs://).")
flags.DEFINE_string("out_dir", None, "Model folder to write (local or gs://): config.json, "
                    "flags.txt, fold*/best.weights.h5, oof.csv, scores.json, logs/.")
flags.DEFINE_enum("backbone", "efficientnet_b0", list(model.BACKBONES), "Frame encoder: "
                  "efficientnet_b0 (the reference) or tiny (CPU tests and the demo).")
flags.DEFINE_string("weights", "imagenet", "Backbone initialisation: imagenet (downloaded by "
                    "Keras), none, or a local or gs:// weights file of the backbone.")
flags.DEFINE_integer("volume_size", 7, "Frames per sequence, centred on the labelled second "
                     "(odd, at most the frames stored per example).")
flags.DEFINE_integer("step", None, "Seconds between frames that the records must have been made "
                     "with (checked against their manifest); unset: whatever they hold.")
flags.DEFINE_list("image_size", None, "HEIGHT,WIDTH fed to the model (one number: a square); "
                  "frames stored at another size are resized. Default: the stored size.")
flags.DEFINE_list("folds", None, "Validation folds to train, e.g. 0,1 (default: all).")
flags.DEFINE_integer("epochs", 40, "Epochs per fold.")
flags.DEFINE_integer("batch_size", 96, "Global batch size (split over the replicas).")
flags.DEFINE_float("lr", 1e-3, "Adam learning rate (halved after 3 epochs without val_loss "
                   "improvement).")
flags.DEFINE_enum("aug", "none", list(augment.AUG_SETS), "Training augmentation set: a1 flips "
                  "and rotations, a2 a1 plus colour, a4 a1 plus grayscale and blur.")
flags.DEFINE_float("aug_prob", 0.5, "Probability that a sequence gets one augmentation.")
flags.DEFINE_integer("seed", 0, "Seed of weights initialisation, shuffling and augmentation.")
flags.DEFINE_integer("lstm_units", 1024, "Units of the LSTM over the frames.")
flags.DEFINE_integer("dense_units", 300, "Units of the Dense(relu) layer before the output.")
flags.DEFINE_enum("mixed_precision", "none", list(model.PRECISIONS), "Compute dtype policy: "
                  "mixed_bfloat16 for TPUs, mixed_float16 for GPUs (with loss scaling); the "
                  "output stays float32. run_infer.py predicts under the same policy.")
flags.DEFINE_enum("output_bias", "median", list(model.OUTPUT_BIASES), "Where the model's "
                  "output starts: median, the bias of its output layer at the training folds' "
                  "median distance (an MAE model then starts where a constant predictor ends); "
                  "zero, Keras' default, as the reference had (its presets keep it).")
flags.DEFINE_bool("use_boxes", False, "Condition the distance on the example's animal box "
                  "(records made with create_tfrecords.py --boxes_csv): the backbone's features "
                  "inside the box beside the whole frame's, and the box's geometry. Inference "
                  "then reads boxes too (test records with boxes, or --detections).")
flags.DEFINE_enum("jit_compile", "auto", list(cli.JIT_COMPILE_FLAG), cli.JIT_COMPILE_HELP)
flags.DEFINE_enum("strategy", "auto", list(strategies.STRATEGIES), "tf.distribute strategy: "
                  "auto, tpu, mirrored (GPUs of this machine), multiworker (TF_CONFIG), default.")
flags.DEFINE_string("tpu", None, "TPU name, grpc://HOST:PORT or local (TPU VM); an unreachable "
                    "TPU is an error.")
flags.DEFINE_enum("verbose", "auto", ["auto", "0", "1", "2"], "Keras progress output: 1 bar, "
                  "2 one line per epoch, 0 silent.")


def _ints(values, name):
    try:
        return [int(v) for v in values]
    except ValueError:
        raise InputError(f"--{name}={','.join(values)}: expected whole numbers")


def flags_text():
    """The flags of this script as a flagfile that repeats the run."""
    lines = [f"# python run_train.py --flagfile=flags.txt   (written by: {' '.join(sys.argv)})"]
    lines += [flag.serialize() for flag in FLAGS.get_flags_for_module(sys.argv[0])
              if flag.value is not None]
    return "\n".join(lines) + "\n"


@reports_input_errors
def main(argv):
    if len(argv) > 1:
        raise InputError(f"unexpected arguments: {' '.join(argv[1:])}")
    for name in ("tfrec_dir", "out_dir"):
        if not FLAGS[name].value:
            raise InputError(f"--{name} is required")
    image_size = cli.image_size(FLAGS.image_size)
    strategy = strategies.make_strategy(FLAGS.strategy, FLAGS.tpu)
    verbose = FLAGS.verbose if FLAGS.verbose == "auto" else int(FLAGS.verbose)
    train.train(
        FLAGS.tfrec_dir, FLAGS.out_dir, backbone=FLAGS.backbone, weights=FLAGS.weights,
        volume_size=FLAGS.volume_size, step=FLAGS.step, image_size=image_size,
        folds=_ints(FLAGS.folds, "folds") if FLAGS.folds else None, epochs=FLAGS.epochs,
        batch_size=FLAGS.batch_size, lr=FLAGS.lr, aug=FLAGS.aug, aug_prob=FLAGS.aug_prob,
        seed=FLAGS.seed, lstm_units=FLAGS.lstm_units, dense_units=FLAGS.dense_units,
        mixed_precision=FLAGS.mixed_precision, jit_compile=cli.jit_compile(FLAGS.jit_compile),
        output_bias=FLAGS.output_bias, use_boxes=FLAGS.use_boxes,
        strategy=strategy, flags_text=flags_text(),
        verbose=verbose)


if __name__ == "__main__":
    app.run(main)
