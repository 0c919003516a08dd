"""Extracts frames from every camera-trap video in a folder (`chimpact frames`): its
flags are defined in chimpact/commands/frames.py; --help shows them."""

from absl import flags

from chimpact import cli, storage
from chimpact.commands import run

FLAGS = flags.FLAGS


@cli.reports_input_errors
def main(argv):
    # Every gs:// path among the flags answers, before work that would retry it for minutes.
    storage.check_reachable(FLAGS.flag_values_dict())
    del argv
    size = cli.image_size(FLAGS.size, "size")
    storage.check_writable(FLAGS.out_dir, "out_dir")
    cli.require_tensorflow()
    from chimpact.data import extract, video  # TensorFlow loads here, once the flags are read
    options = video.DecodeOptions(
        fps=FLAGS.fps, size=size and size[::-1], gamma=FLAGS.gamma,
        gamma_value=FLAGS.gamma_value, white_threshold=FLAGS.white_threshold,
        white_ratio=FLAGS.white_ratio, timeout=FLAGS.timeout)
    summary = extract.extract_frames(
        FLAGS.video_dir, FLAGS.out_dir, options, quality=FLAGS.quality, workers=FLAGS.workers,
        videos_csv=FLAGS.videos_csv, labels_csv=FLAGS.labels_csv, overwrite=FLAGS.overwrite)
    print(summary.line)
    return 1 if summary.failed else 0


if __name__ == "__main__":
    run("frames", main, FLAGS)
