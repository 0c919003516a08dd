r"""Trains a distance model (CNN-LSTM, stacked frames or single frames) fold by fold on
sequence records.

    python run_train.py --flagfile=models/full-a4p50-f7s1.flags --tfrec_dir=tfrec --out_dir=runs/m1
    python run_train.py --flagfile=models/demo.flags --tfrec_dir=tfrec --out_dir=runs/demo \
        --epochs=2            # flags after the flagfile override it
    python run_train.py --flagfile=models/stacked-v2l-270x480.flags --tfrec_dir=tfrec \
        --out_dir=runs/s2 --pseudo_labels=submission.csv --pseudo_tfrec_dir=tfrec_test
    chimpact train --preset=full-a4p50-f7s1 --tfrec_dir=tfrec --out_dir=runs/m1   # any folder
    chimpact train --preset=list          # the packaged presets, one line each

Re-running a killed command resumes at the last finished epoch; finished folds are skipped.
Strategies: --strategy=auto picks a TPU when --tpu is given, all GPUs when there are several,
else the default device. --strategy=multiworker reads TF_CONFIG (run the same command on each
machine, with a shared --out_dir such as gs://); under JAX it joins the processes with
keras.distribution.initialize() (every host of a TPU pod slice runs the same command).
--backend=jax (or KERAS_BACKEND=jax) trains under JAX, data-parallel over every local device
(TPU chips, GPUs); the model folder is the same either way (docs/tpu-jax.md).
"""

import sys

from absl import flags

import chimpact_flags
from chimpact import cli, settings, storage
from chimpact.cli import reports_input_errors
from chimpact.errors import UsageError

flags.DEFINE_string("preset", None, "A packaged preset by name (models/NAME.flags, found "
                    "wherever chimpact is installed): its flags where --preset=NAME stands, "
                    "so that flags after it win; --preset=list prints the presets.")
flags.DEFINE_string("tfrec_dir", None, "Training records folder written by create_tfrecords.py "
                    "(local or gs://).")
flags.DEFINE_string("out_dir", None, "Model folder to write (local or gs://): config.json, "
                    "flags.txt, fold*/best.weights.h5, oof.csv, scores.json, logs/.")
flags.DEFINE_enum("family", "cnn_lstm", list(settings.FAMILIES), "Model family: cnn_lstm, the "
                  "backbone on each frame then an LSTM (the reference, 3rd place); stacked, the "
                  "frames concatenated on channels into one image (2nd place; the pretrained "
                  "stem adapted); single, the centre frame alone (1st place).")
flags.DEFINE_enum("backbone", "efficientnet_b0", list(settings.BACKBONES), "Image encoder from "
                  "keras.applications: efficientnet_b0 (the reference), efficientnet_b7, "
                  "efficientnet_v2_s/m/l; or tiny (CPU tests and the demo).")
flags.DEFINE_string("weights", "imagenet", "Backbone initialisation: imagenet (downloaded by "
                    "Keras), none, or a local or gs:// weights file of the 3-channel backbone.")
flags.DEFINE_enum("input_scaling", "imagenet", list(settings.INPUT_SCALINGS), "What the "
                  "backbone's convolutions see of the 0..255 pixels: imagenet, its own "
                  "preprocessing (ImageNet mean and deviation for EfficientNet V1, -1..1 for "
                  "V2); unit, x / 255 alone, as the reference fed EfficientNet-B0 (its presets "
                  "set it, so their models and imported reference weights read the same input).")
flags.DEFINE_integer("volume_size", None, "Frames per sequence, centred on the labelled second "
                     "(odd, at most the frames stored per example). Default: the family's, 7 "
                     "for cnn_lstm, 5 for stacked, 1 for single.")
flags.DEFINE_integer("step", None, "Seconds between frames that the records must have been made "
                     "with (checked against their manifest); unset: whatever they hold.")
flags.DEFINE_list("image_size", None, f"Size fed to the model: {cli.SIZE_HELP}; frames "
                  "stored at another size are resized. Default: the stored size.")
flags.DEFINE_float("crop_bottom", 0.0, "Share of the frame's height cut off its bottom (the "
                   "camera's info bar: 0.05 is 18 rows of 360), after resizing to --image_size "
                   "and before augmentation; run_infer.py and the export cut the same rows.")
flags.DEFINE_enum("frame_fill", "clamp", ["clamp", "zero"], "Frames whose time lies past either "
                  "end of the video: clamp, the first or last frame (the reference); zero, black "
                  "(2nd place). Followed by run_infer.py.")
flags.DEFINE_list("folds", None, "Validation folds to train, e.g. 0,1 (default: all).")
flags.DEFINE_integer("epochs", 40, "Epochs per fold.")
flags.DEFINE_integer("batch_size", 96, "Global batch size (split over the replicas).")
flags.DEFINE_float("lr", 1e-3, "Learning rate (halved after 3 epochs without val_loss "
                   "improvement, or the start of the cosine).")
flags.DEFINE_enum("loss", "mae", list(settings.LOSSES), "Training loss: mae (the reference, 2nd "
                  "place) or huber (delta 1 m, 1st place).")
flags.DEFINE_enum("schedule", "plateau", list(settings.SCHEDULES), "Learning rate schedule: "
                  "plateau (halved after 3 epochs without val_loss improvement) or cosine "
                  "(from --lr to 0 over all the epochs' steps).")
flags.DEFINE_enum("optimizer", "adam", list(settings.OPTIMIZERS), "adam, or adamw with "
                  "--weight_decay (2nd place).")
flags.DEFINE_float("weight_decay", 0.01, "AdamW's decoupled weight decay (PyTorch's default, "
                   "as the 2nd place ran it); ignored by adam.")
flags.DEFINE_string("pseudo_labels", None, "Table of test rows with distances (video_id, time, "
                    "distance: an ensemble's submission) added to every fold's training set, "
                    "never to its validation; the rows are read from --pseudo_tfrec_dir.")
flags.DEFINE_string("pseudo_tfrec_dir", None, "Test records (create_tfrecords.py --subset=test) "
                    "holding every row of --pseudo_labels.")
flags.DEFINE_enum("aug", "none", list(settings.AUG_SETS), "Training augmentation set: a1 flips "
                  "and rotations, a2 a1 plus colour, a4 a1 plus grayscale and blur.")
flags.DEFINE_float("aug_prob", 0.5, "Probability that a sequence gets one augmentation.")
flags.DEFINE_integer("seed", 0, "Seed of weights initialisation, shuffling and augmentation.")
flags.DEFINE_integer("lstm_units", 1024, "Units of the LSTM over the frames.")
flags.DEFINE_integer("dense_units", 300, "Units of the Dense(relu) layer before the output.")
flags.DEFINE_enum("mixed_precision", "none", list(settings.PRECISIONS), "Compute dtype policy: "
                  "mixed_bfloat16 for TPUs, mixed_float16 for GPUs (with loss scaling); the "
                  "output stays float32. run_infer.py predicts under the same policy.")
flags.DEFINE_enum("output_bias", "median", list(settings.OUTPUT_BIASES), "Where the model's "
                  "output starts: median, the bias of its output layer at the training folds' "
                  "median distance (an MAE model then starts where a constant predictor ends); "
                  "zero, Keras' default, as the reference had (its presets keep it).")
flags.DEFINE_bool("use_boxes", False, "Condition the distance on the example's animal box "
                  "(records made with create_tfrecords.py --boxes_csv): the backbone's features "
                  "inside the box beside the whole frame's, and the box's geometry. Inference "
                  "then reads boxes too (test records with boxes, or --detections).")
flags.DEFINE_enum("jit_compile", "auto", list(cli.JIT_COMPILE_FLAG), cli.JIT_COMPILE_HELP)
flags.DEFINE_enum("strategy", "auto", list(settings.STRATEGIES), "tf.distribute strategy: "
                  "auto, tpu, mirrored (GPUs of this machine), multiworker (TF_CONFIG), default. "
                  "Under JAX: keras.distribution.DataParallel over every device of this machine "
                  "(auto, mirrored, tpu), one (default), or every device of every process that "
                  "joins (multiworker: a Cloud TPU pod slice finds its hosts; elsewhere set "
                  "KERAS_DISTRIBUTION_JOB_ADDRESSES, _NUM_PROCESSES and _PROCESS_ID).")
flags.DEFINE_enum("backend", None, list(settings.BACKENDS), cli.BACKEND_HELP)
flags.DEFINE_string("tpu", None, "TPU name, grpc://HOST:PORT or local (TPU VM); an unreachable "
                    "TPU is an error.")
flags.DEFINE_enum("verbose", "auto", ["auto", "0", "1", "2"], "Keras progress output: 1 bar, "
                  "2 one line per epoch, 0 silent.")

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
    cli.select_backend(FLAGS.backend)
    cli.require_tensorflow()
    # TensorFlow loads here, once the flags are read.
    from chimpact.training import strategy as strategies
    from chimpact.training import train
    strategy = strategies.make_strategy(FLAGS.strategy, FLAGS.tpu, training=True)
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
        input_scaling=FLAGS.input_scaling,
        pseudo_labels_csv=FLAGS.pseudo_labels, pseudo_tfrec_dir=FLAGS.pseudo_tfrec_dir,
        strategy=strategy, flags_text=flags_text(),
        verbose=verbose)


if __name__ == "__main__":
    chimpact_flags.run(main, expand_presets=True)
