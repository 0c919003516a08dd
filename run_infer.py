"""Predicts distances with a trained model folder: test records, a submission, raw videos, export.

    python run_infer.py --model_dir=runs/b0 --tfrec_dir=records/test --tta=4 \
        --submission_csv=data/submission_format.csv --out_csv=runs/b0/submission.csv
    python run_infer.py --model_dir=runs/b0 --video_dir=field/videos --out_csv=field/distances.csv
    python run_infer.py --model_dir=runs/box --video_dir=field/videos \
        --detections=field/md_results.json --annotate=field/sheets --out_csv=field/animals.csv
    python run_infer.py --model_dir=runs/b0 --export=runs/b0/export

Every fold's best weights are averaged (and --tta views). --tfrec_dir writes test_preds.csv into
the model folder (what ensemble.py reads); --submission_csv fills the format table from it.
--video_dir decodes raw videos as create_frames.py does and predicts every second (or the rows of
--times_csv, or with --detections each animal MegaDetector found at each snapshot moment, with
an interval); a video that cannot be decoded gets error rows, the others finish, and the exit
status is 1. Re-running after an interruption skips the videos already predicted.
"""

import sys

from absl import app, flags

from chimpact import cli, settings
from chimpact.cli import reports_input_errors

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Trained model folder (run_train.py --out_dir), local or "
                    "gs://: config.json and fold*/best.weights.h5.")
flags.DEFINE_string("tfrec_dir", None, "Test records (create_tfrecords.py --subset=test): "
                    "predicts each example once and writes MODEL_DIR/test_preds.csv.")
flags.DEFINE_bool("oof", False, "Predict each trained fold's own validation rows of the "
                  "training records (--tfrec_dir, default the ones in config.json) under the "
                  "--tta views into MODEL_DIR/oof_tta.csv, and print each view's out-of-fold "
                  "MAE: whether TTA helps, and what ensemble.py --tta fits on.")
flags.DEFINE_string("submission_csv", None, "Submission format table (video_id, time, distance): "
                    "written to --out_csv with the distances of MODEL_DIR/test_preds.csv.")
flags.DEFINE_string("video_dir", None, "Folder of raw videos (local or gs://): predicts the "
                    "distance at every second of every video into --out_csv.")
flags.DEFINE_string("times_csv", None, "With --video_dir: a table of video_id, time rows; only "
                    "those seconds are predicted, in that order.")
flags.DEFINE_string("detections", None, "With --video_dir: MegaDetector's batch output JSON "
                    "for these videos (images[].file relative to --video_dir): one row per "
                    "detection and snapshot moment, video_id, time, detection, x1, y1, x2, y2, "
                    "conf, distance, distance_low, distance_high, error. A --use_boxes model "
                    "gives each animal its own distance.")
flags.DEFINE_float("min_conf", 0.2, "With --detections: detections below this confidence are "
                   "skipped (MegaDetector's typical threshold).", lower_bound=0.0)
flags.DEFINE_list("detection_categories", ["animal"], "With --detections: the categories "
                  "(names in the file's detection_categories) that get a distance.")
flags.DEFINE_float("snapshot_s", 1.0, "With --detections: seconds between snapshot moments "
                   "t = 0, T, 2T, ...; a detection counts at the moment its frame is nearest, "
                   "within T/2 (camera-trap distance sampling's snapshot interval).")
flags.DEFINE_bool("keep_empty", False, "With --detections: also a row (empty distance) for "
                  "each snapshot moment without a detection.")
flags.DEFINE_string("annotate", None, "With --detections: folder for one contact sheet per "
                    "video (<video_id>.jpg): its snapshot frames with each box and distance.")
flags.DEFINE_string("out_csv", None, "Output table. Default: MODEL_DIR/submission.csv with "
                    "--submission_csv, MODEL_DIR/video_preds.csv with --video_dir, "
                    "MODEL_DIR/detection_distances.csv with --detections.")
flags.DEFINE_string("export", None, "Folder for a SavedModel of the fold average (endpoint "
                    "`serve`: uint8 [batch, volume_size, H, W, 3] -> metres), loadable without "
                    "chimpact.")
flags.DEFINE_integer("tta", 1, "Test-time views averaged: 1 = none, then flips and rotations "
                     "(identity, flip lr, flip ud, rot90, rot180, rot270, ...).", lower_bound=1)
flags.DEFINE_enum("aggregate", "mean", list(settings.AGGREGATES), "How the folds' and the test-time "
                  "views' predictions combine: mean, or median (over the folds, then over the "
                  "views, as the 1st place did).")
flags.DEFINE_integer("batch_size", 16, "Global batch size (rounded up to a multiple of the "
                     "replicas).", lower_bound=1)
flags.DEFINE_enum("strategy", "auto", settings.STRATEGIES, "tf.distribute strategy.")
flags.DEFINE_string("tpu", None, "TPU name, grpc://HOST:PORT or `local` (TPU VM).")
flags.DEFINE_float("fps", None, "With --video_dir: frames per second to decode; default that "
                   "of the model's training frames (config.json `frames`), else 1.",
                   lower_bound=1e-3)
flags.DEFINE_enum("jit_compile", "auto", list(cli.JIT_COMPILE_FLAG), cli.JIT_COMPILE_HELP)
flags.DEFINE_bool("progress", True, "Show a progress bar over the videos.")
flags.mark_flag_as_required("model_dir")


@reports_input_errors
def main(argv):
    del argv
    cli.require_tensorflow()
    from chimpact import jobs  # TensorFlow loads here, once the flags are read
    failures = jobs.run(
        FLAGS.model_dir, tfrec_dir=FLAGS.tfrec_dir, submission_csv=FLAGS.submission_csv,
        out_csv=FLAGS.out_csv, video_dir=FLAGS.video_dir, times_csv=FLAGS.times_csv,
        export_dir=FLAGS.export, tta=FLAGS.tta, batch_size=FLAGS.batch_size,
        strategy=FLAGS.strategy, tpu=FLAGS.tpu, fps=FLAGS.fps,
        jit_compile=cli.jit_compile(FLAGS.jit_compile), oof=FLAGS.oof,
        detections_json=FLAGS.detections, min_conf=FLAGS.min_conf,
        categories=tuple(FLAGS.detection_categories), snapshot_s=FLAGS.snapshot_s,
        keep_empty=FLAGS.keep_empty, annotate_dir=FLAGS.annotate, aggregate=FLAGS.aggregate,
        progress=FLAGS.progress)
    if failures:
        for video_id, reason in failures.items():
            print(f"{video_id}: {reason}", file=sys.stderr)
        print(f"{len(failures)} video(s) could not be predicted; their rows have an empty "
              "distance and the error", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    app.run(main)
