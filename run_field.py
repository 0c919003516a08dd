r"""Predicts distances in raw survey videos with a trained model folder: every second, the rows
of a times table, or each animal MegaDetector found, with an interval.

    python run_field.py --model_dir=runs/b0 --video_dir=field/videos --out_csv=field/distances.csv
    python run_field.py --model_dir=runs/box --video_dir=field/videos \
        --detections=field/md_results.json --annotate=field/sheets --out_csv=field/animals.csv
    chimpact field --model_dir=runs/box --video_dir=field/videos --detections=md.json
    python run_field.py ... --runner=beam --beam_options="--runner=DataflowRunner ..."  # README

Videos are decoded as create_frames.py decodes them, at the model's training frame rate. A video
that cannot be decoded gets error rows, the others finish, and the exit status is 1. Re-running
after an interruption skips the videos already predicted.
"""

import sys

from absl import flags

import chimpact_flags
from chimpact import cli, storage
from chimpact.cli import reports_input_errors
from chimpact.errors import UsageError

chimpact_flags.define_prediction_flags()
chimpact_flags.define_runner_flags()
flags.adopt_module_key_flags(chimpact_flags)
flags.DEFINE_string("video_dir", None, "Folder of raw videos (local or gs://), in folders "
                    "of their own too (one per camera): predicts the distance at every second "
                    "of every video into --out_csv; video_id is the path under the folder.")
flags.mark_flag_as_required("video_dir")
flags.DEFINE_string("times_csv", None, "A table of video_id, time rows; only "
                    "those seconds are predicted, in that order.")
flags.DEFINE_string("detections", None, "MegaDetector's output JSON for these videos, "
                    "video level (format 1.3-1.6) or frame level (video.AVI/frame000010.jpg "
                    "entries); images[].file relative to --video_dir, or absolute inside it, "
                    "/ or \\ separated. One row per detection and snapshot moment: video_id, "
                    "deployment_id, time, detection, category, x1, y1, x2, y2, conf, distance, "
                    "distance_low, distance_high, error; a row per video of the folder that "
                    "the file does not list. A --use_boxes model gives each animal its own "
                    "distance.")
flags.DEFINE_string("detections_path_prefix", None, "With --detections: OLD=NEW, the folder "
                    "that images[].file start with in the file and the one it is here, for a "
                    "file written on another machine or over a folder of extracted frames "
                    "(e.g. D:\\survey\\frames=/data/survey/videos; NEW empty: the rest is "
                    "relative to --video_dir). Whole folder names only; other files as they "
                    "are.")
flags.DEFINE_float("min_conf", None, "With --detections: detections below this confidence "
                   "are skipped. Default: the file's info.detector_metadata."
                   "typical_detection_threshold (0.2 for MDv5, 0.3 for MDv1000), else 0.2.",
                   lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_list("detection_categories", ["animal"], "With --detections: the categories "
                  "(names in the file's detection_categories) that get a distance.")
flags.DEFINE_float("snapshot_s", 1.0, "With --detections: seconds between snapshot moments "
                   "t = 0, T, 2T, ...; a detection counts at the moment its frame is nearest, "
                   "within T/2 (camera-trap distance sampling's snapshot interval).")
flags.DEFINE_bool("keep_empty", False, "With --detections: also a row (empty distance) for "
                  "each snapshot moment without a detection; its error says `not processed` "
                  "where MegaDetector looked at no frame within half a snapshot of it "
                  "(frames_processed).")
flags.DEFINE_string("videos_csv", None, "With --detections: video_id (a path under "
                    "--video_dir), deployment_id, timestamp (the video's start, ISO 8601 with "
                    "its UTC offset). Default: a video's folder is its deployment.")
flags.DEFINE_string("deployments_csv", None, "With --detections: Camtrap DP deployment fields, "
                    "deploymentID, latitude, longitude, deploymentStart, deploymentEnd (and "
                    "optionally cameraHeight, cameraTilt, locationName); start to end is each "
                    "deployment's active time.")
flags.DEFINE_string("distance_csv", None, "With --detections and --deployments_csv: R "
                    "Distance's flat file for camera-trap point transects (Region.Label, Area, "
                    "Sample.Label = deployment, Effort = active seconds / --snapshot_s, object, "
                    "distance, size); a deployment without animals once with an empty distance.")
flags.DEFINE_list("truncate", None, "With --distance_csv: LEFT,RIGHT metres; rows outside are "
                  "left out of the flat file (e.g. 2,15 as in Howe et al.'s duikers).")
flags.DEFINE_float("area_km2", None, "With --distance_csv: the survey region's area (km2) for "
                   "the Area column (default 0: Distance estimates density only).",
                   lower_bound=0.0)
flags.DEFINE_string("calibration_csv", None, "With --detections: reference detections at "
                    "known distances (deployment_id, video_id under --video_dir, time, x1, y1, "
                    "x2, y2, distance in metres): each deployment's distances get a monotone "
                    "correction fitted on them (shrunk toward none with few points), its "
                    "intervals widened by the residuals; OUT_CSV's folder gets "
                    "calibration.json.")
flags.DEFINE_string("camtrap_dp", None, "With --detections and --deployments_csv: folder for "
                    "a Camtrap DP 1.0 package (datapackage.json, deployments.csv, media.csv, "
                    "observations.csv): an event observation per detection and snapshot "
                    "moment, its distance as individualPositionRadius. The videos' start: "
                    "--videos_csv's timestamp, else the file's creation_time.")
flags.DEFINE_float("hfov", None, "With --camtrap_dp: the cameras' horizontal field of view "
                   "(degrees) for individualPositionAngle, from the box centre (negative "
                   "left); empty without it.")
flags.DEFINE_string("annotate", None, "With --detections: folder for one contact sheet per "
                    "video (<video_id>.jpg): its snapshot frames with each box and distance.")
flags.DEFINE_string("out_csv", None, "Output table. Default: MODEL_DIR/video_preds.csv, or "
                    "MODEL_DIR/detection_distances.csv with --detections.")
flags.DEFINE_float("fps", None, "Frames per second to decode; default that "
                   "of the model's training frames (config.json `frames`), else 1.",
                   lower_bound=1e-3)
flags.DEFINE_bool("progress", True, "Show a progress bar over the videos.")

FLAGS = flags.FLAGS


@reports_input_errors
def main(argv):
    # Every gs:// path among the flags answers, before work that would retry it for minutes.
    storage.check_reachable(FLAGS.flag_values_dict())
    beam_args = chimpact_flags.beam_args(argv, [FLAGS.model_dir, FLAGS.video_dir, FLAGS.out_csv])
    storage.check_writable(FLAGS.out_csv, "out_csv", "file")
    storage.check_writable(FLAGS.annotate, "annotate")
    storage.check_writable(FLAGS.distance_csv, "distance_csv", "file")
    storage.check_writable(FLAGS.camtrap_dp, "camtrap_dp")
    truncate = None
    if FLAGS.truncate:
        try:
            truncate = [float(v) for v in FLAGS.truncate]
        except ValueError:
            raise UsageError(f"--truncate={','.join(FLAGS.truncate)}: give LEFT,RIGHT "
                             "metres") from None
    cli.select_backend(FLAGS.backend)
    cli.require_tensorflow()
    storage.check_folder(FLAGS.model_dir, "model_dir")
    from chimpact.field import jobs  # TensorFlow loads here, once the flags are read
    failures = jobs.run_field(
        FLAGS.model_dir, FLAGS.video_dir, times_csv=FLAGS.times_csv,
        detections_json=FLAGS.detections, out_csv=FLAGS.out_csv, min_conf=FLAGS.min_conf,
        categories=tuple(FLAGS.detection_categories), snapshot_s=FLAGS.snapshot_s,
        keep_empty=FLAGS.keep_empty, annotate_dir=FLAGS.annotate, tta=FLAGS.tta,
        batch_size=FLAGS.batch_size, strategy=FLAGS.strategy, tpu=FLAGS.tpu, fps=FLAGS.fps,
        jit_compile=cli.jit_compile(FLAGS.jit_compile), aggregate=FLAGS.aggregate,
        progress=FLAGS.progress, videos_csv=FLAGS.videos_csv,
        deployments_csv=FLAGS.deployments_csv, distance_csv=FLAGS.distance_csv,
        truncate=truncate, area_km2=FLAGS.area_km2, camtrap_dp_dir=FLAGS.camtrap_dp,
        hfov=FLAGS.hfov, calibration_csv=FLAGS.calibration_csv, beam_args=beam_args,
        path_prefix=FLAGS.detections_path_prefix)
    if failures:
        for video_id, reason in failures.items():
            print(f"{video_id}: {reason}", file=sys.stderr)
        print(f"{len(failures)} video(s) could not be predicted; their rows have an empty "
              "distance and the error", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    chimpact_flags.run(main)
