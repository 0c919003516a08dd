"""Predicts distances in raw survey videos (`chimpact field`): the flags are defined in
chimpact/commands/field.py; --help shows them."""

import sys

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
    cli.require_tensorflow()
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
        hfov=FLAGS.hfov, calibration_csv=FLAGS.calibration_csv)
    if failures:
        for video_id, reason in failures.items():
            print(f"{video_id}: {reason}", file=sys.stderr)
        print(f"{len(failures)} video(s) could not be predicted; their rows have an empty "
              "distance and the error", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run("field", main, FLAGS)
