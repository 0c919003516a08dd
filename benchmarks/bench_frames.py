"""create_frames.py against the reference way of extracting frames, on the same generated videos.

    python benchmarks/bench_frames.py            # 40 videos, 20-60 s, 640x360, 30 fps
    python benchmarks/bench_frames.py --quick    # 12 shorter videos, for a smoke run

Reference: one ffmpeg process per video, one after another, `-r 1` into JPEG files, then a second
full decode through eq=gamma for each overexposed video (it is told which ones for free). Ours:
`python create_frames.py` end to end (start-up included), deciding overexposure itself. 10% of
the videos are overexposed. Videos are generated once into --cache_dir. Prints videos/s of both
and, on the last line, the ratio. Wall-clock timings on a shared machine are noisy; the CPU
seconds printed beside them are less so.
"""

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from chimpact.video import ffmpeg_binary  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "12 videos of 20-30 s instead of 40 of 20-60 s.")
flags.DEFINE_integer("videos", 40, "Number of videos (ignored with --quick).", lower_bound=10)
flags.DEFINE_string("size", "640x360", "Size of the generated videos.")
flags.DEFINE_string("cache_dir", os.path.join(tempfile.gettempdir(), "chimpact-bench-frames"),
                    "Where generated videos are kept between runs.")
flags.DEFINE_integer("workers", 0, "create_frames.py --workers (0: one per core).")

# Normal videos are darkened below any white threshold; overexposed ones keep testsrc2's
# white background (about 30% of values above 250), like a night shot in infrared flash. The
# sensor noise comes last so that both kinds cost about the same to decode.
SOURCE = "testsrc2=size={size}:rate=30"
NORMAL = ",lutrgb=r=val*0.8:g=val*0.8:b=val*0.8"
NOISE = ",format=yuv420p,noise=alls=12:allf=t"


def video_plan(quick, n_videos):
    """[(name, seconds, overexposed)]: durations spread over the range, every 10th overexposed."""
    n_videos, low, high = (12, 20, 30) if quick else (n_videos, 20, 60)
    plan = []
    for i in range(n_videos):
        seconds = low + (high - low) * i // (n_videos - 1)
        overexposed = i % 10 == 5
        plan.append((f"v{i:03d}_{seconds}s{'_over' if overexposed else ''}.mp4", seconds,
                     overexposed))
    return plan


def generate(plan, folder, size):
    """Encodes the planned videos (H.264, CRF 23) that are not in `folder` yet."""
    os.makedirs(folder, exist_ok=True)
    for name, seconds, overexposed in plan:
        path = os.path.join(folder, name)
        if os.path.exists(path):
            continue
        graph = SOURCE.format(size=size) + ("" if overexposed else NORMAL) + NOISE
        subprocess.run([
            ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
            "-i", graph, "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast",
            "-crf", "23", "-pix_fmt", "yuv420p", path + ".part.mp4"], check=True)
        os.rename(path + ".part.mp4", path)


def run_reference(plan, video_dir, out_dir):
    """The reference: sequential ffmpeg CLI calls, a second full decode when overexposed."""
    for name, _, overexposed in plan:
        passes = [("plain", [])] + ([("gamma", ["-vf", "eq=gamma=0.1"])] if overexposed else [])
        for kind, filters in passes:
            folder = os.path.join(out_dir, kind, name)
            os.makedirs(folder)
            subprocess.run([
                ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-nostdin",
                "-i", os.path.join(video_dir, name), *filters, "-r", "1", "-q:v", "2",
                os.path.join(folder, "%05d.jpg")], check=True)


def run_ours(video_dir, out_dir, workers, *extra):
    subprocess.run([
        sys.executable, os.path.join(ROOT, "create_frames.py"), f"--video_dir={video_dir}",
        f"--out_dir={out_dir}", f"--workers={workers}", *extra],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def timed(fn, *args):
    """(wall seconds, CPU seconds of the child processes) of fn(*args)."""
    def children_cpu():
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    start, start_cpu = time.perf_counter(), children_cpu()
    fn(*args)
    return time.perf_counter() - start, children_cpu() - start_cpu


def main(argv):
    del argv
    plan = video_plan(FLAGS.quick, FLAGS.videos)
    video_dir = os.path.join(FLAGS.cache_dir, f"{FLAGS.size}-{len(plan)}{'-quick' * FLAGS.quick}")
    print(f"generating {len(plan)} videos in {video_dir} (cached) ...", flush=True)
    generate(plan, video_dir, FLAGS.size)
    seconds = sum(s for _, s, _ in plan)
    print(f"{len(plan)} videos, {seconds} s of 30-fps {FLAGS.size} H.264, "
          f"{sum(o for *_, o in plan)} overexposed, {os.cpu_count()} cores")
    work = tempfile.mkdtemp(prefix="bench-frames-")
    try:
        reference_s, reference_cpu = timed(run_reference, plan, video_dir,
                                           os.path.join(work, "reference"))
        ours_s, ours_cpu = timed(run_ours, video_dir, os.path.join(work, "ours"), FLAGS.workers)
        # A re-run finds everything done: what is left is start-up and bookkeeping.
        startup_s, _ = timed(run_ours, video_dir, os.path.join(work, "ours"), FLAGS.workers)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    reference_rate, ours_rate = len(plan) / reference_s, len(plan) / ours_s
    print(f"reference (sequential ffmpeg -r 1, 2nd decode if overexposed): "
          f"{reference_s:.1f} s, {reference_cpu:.1f} CPU s, {reference_rate:.2f} videos/s")
    print(f"create_frames.py: {ours_s:.1f} s, {ours_cpu:.1f} CPU s, {ours_rate:.2f} videos/s "
          f"(of which ~{startup_s:.1f} s start-up: python, TensorFlow import, manifest)")
    print(f"CPU time ratio reference / create_frames.py: {reference_cpu / ours_cpu:.2f}x "
          f"(load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(f"ratio create_frames.py / reference (videos/s): {ours_rate / reference_rate:.2f}x")


if __name__ == "__main__":
    app.run(main)
