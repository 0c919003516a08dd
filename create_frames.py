r"""Extracts 1-fps JPEG frames from every camera-trap video in a folder, in parallel, resumably.

    python create_frames.py --video_dir=videos/ --out_dir=frames/ [--size=640x360]
    chimpact frames --video_dir=videos/ --out_dir=frames/     # the same, installed
    python create_frames.py --video_dir=gs://B/videos --out_dir=gs://B/frames --runner=beam \
        --beam_options="--runner=DataflowRunner --project=P --region=R ..."   # see README

Writes OUT_DIR/<video_id>/<index:05d>.jpg and OUT_DIR/manifest.csv (see README, section 1).
Re-running skips the videos finished with the same settings (fps, size, gamma flags, quality,
labels) and redoes the others; an --out_dir of frames made with other settings is refused
(--overwrite redoes them), as is one holding files this program did not write. Exits 1 when a video failed, after finishing the others and naming each with its reason.
"""

import sys

from absl import flags

import chimpact_flags
from chimpact import cli, settings, storage

chimpact_flags.define_runner_flags()
flags.adopt_module_key_flags(chimpact_flags)
flags.DEFINE_string("video_dir", None, "Folder of videos (local or gs://); every video file "
                    "directly inside it is decoded.")
flags.DEFINE_string("out_dir", None, "Where frame folders and manifest.csv go (local or gs://).")
flags.DEFINE_float("fps", 1.0, "Frames per second to extract; frame k is the picture shown "
                   "at k/fps seconds.", lower_bound=1e-3)
flags.DEFINE_string("size", "", f"Resize frames while extracting to this size: {cli.SIZE_HELP}; "
                    "empty keeps the native size.")
flags.DEFINE_integer("quality", 95, "JPEG quality (1-100).", lower_bound=1, upper_bound=100)
flags.DEFINE_enum("gamma", "auto", settings.GAMMA_MODES, "Gamma correction: auto corrects "
                  "overexposed videos only, on corrects all, off none.")
flags.DEFINE_float("gamma_value", 0.1, "Gamma of the correction, as in ffmpeg's eq=gamma "
                   "(luma v -> v**(1/gamma)).", lower_bound=1e-3)
flags.DEFINE_integer("white_threshold", 250, "A pixel value above this counts as white.",
                     lower_bound=0, upper_bound=255)
flags.DEFINE_float("white_ratio", 0.2, "A frame with more than this fraction of white values "
                   "is overexposed.", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_list("labels_csv", None, "Optional label tables with video_id, time (comma-"
                  "separated, e.g. train_labels.csv,submission_format.csv): a video listed in "
                  "one is overexposed when any of its labelled frames is (the reference's rule "
                  "for train and test videos alike); any other video when its median frame is.")
flags.DEFINE_string("videos_csv", None, "Optional table whose video_id column restricts the "
                    "run to those videos (e.g. train_labels.csv).")
flags.DEFINE_integer("workers", 0, "Videos decoded at a time; 0 means one per CPU core "
                     "(--runner=local; on Beam, one per worker process).",
                     lower_bound=0)
flags.DEFINE_float("timeout", 600.0, "Seconds decoding one video may take in all (both "
                   "ffmpeg passes when gamma correction needs a second) before ffmpeg is killed "
                   "and the video marked failed.", lower_bound=1.0)
flags.DEFINE_bool("overwrite", False, "Redo every video, even those already complete.")
flags.mark_flags_as_required(["video_dir", "out_dir"])

FLAGS = flags.FLAGS


@cli.reports_input_errors
def main(argv):
    # Every gs:// path among the flags answers, before work that would retry it for minutes.
    storage.check_reachable(FLAGS.flag_values_dict())
    beam_args = chimpact_flags.beam_args(argv, [FLAGS.video_dir, FLAGS.out_dir])
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
        videos_csv=FLAGS.videos_csv, labels_csv=FLAGS.labels_csv, overwrite=FLAGS.overwrite,
        beam_args=beam_args)
    for video_id, reason in sorted(summary.failures.items()):
        print(f"{video_id}: {reason}", file=sys.stderr)
    print(summary.line)
    return 1 if summary.failed else 0


if __name__ == "__main__":
    chimpact_flags.run(main)
