"""create_frames.py against the reference's way of extracting frames and against the decode floor.

    python benchmarks/bench_frames.py            # 40 videos, 20-60 s, 640x360, 30 fps
    python benchmarks/bench_frames.py --quick    # 12 videos of 6-10 s, for a smoke run

Three sides on the same generated videos (H.264, CRF 23, 10% overexposed), alternating, 3 runs:
- ours: `python create_frames.py` end to end (start-up included), deciding overexposure itself;
- reference: the 3rd place's full-size script, one ffmpeg CLI process per video, one after the
  other, writing JPEGs, then a second full decode through eq=gamma for each overexposed video
  (it is told which ones for free). Its `-r 1` output rate picks the pictures half a second
  later than frame k = the picture at k s and adds a frame or two, so here it gets the fps
  filter (the same decoding cost) and its frames can be checked against ours;
- floor: every video decoded once to nothing (`-f null`) by as many ffmpeg processes as cores,
  each with ffmpeg's own threads: the physical limit of this stage.
Checks: the same videos corrected, the same number of frames, the same pictures (each of ours
nearest to the reference's of the same index, within JPEG and colour-conversion noise).
Prints each side's wall time, videos/s and CPU seconds per video, ours as a fraction of the
floor, and, last, the ratio to the reference.
"""

import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from absl import app, flags
from PIL import Image

import timing
from chimpact.data import frames
from chimpact.data.video import ffmpeg_binary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "12 videos of 6-10 s instead of 40 of 20-60 s.")
flags.DEFINE_integer("videos", 40, "Number of videos (ignored with --quick).", lower_bound=10)
flags.DEFINE_integer("repeats", 3, "Runs of each side (at least 3).", lower_bound=3)
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
# Mean absolute difference (grey levels) under which two JPEGs show one picture: about 2.5 for
# JPEG noise; up to about 8 for gamma-corrected frames, whose luma falls below video black,
# where the RGB conversion (ours) and JPEG's full-range YUV (the reference's) clip at different
# steps. Pictures one second apart differ by far more.
SAME_PICTURE = 10.0


def video_plan(quick, n_videos):
    """[(name, seconds, overexposed)]: durations spread over the range, every 10th overexposed."""
    n_videos, low, high = (12, 6, 10) if quick else (n_videos, 20, 60)
    plan = []
    for i in range(n_videos):
        seconds = low + (high - low) * i // (n_videos - 1)
        overexposed = i % 10 == 5
        plan.append((f"v{i:03d}_{seconds}s{'_over' if overexposed else ''}.mp4", seconds,
                     overexposed))
    return plan


def generate(plan, folder, size):
    """Encodes the planned videos that are not in `folder` yet."""
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
    """One ffmpeg per video, sequentially; a second full decode through eq=gamma when told."""
    for name, _, overexposed in plan:
        folder = os.path.join(out_dir, name)
        os.makedirs(folder)
        gamma = ",eq=gamma=0.1" if overexposed else ""
        subprocess.run([
            ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-nostdin",
            "-i", os.path.join(video_dir, name), "-vf", f"fps=1:round=up:start_time=0{gamma}",
            "-start_number", "0", "-q:v", "2", os.path.join(folder, "%05d.jpg")], check=True)


def run_ours(video_dir, out_dir, workers):
    subprocess.run([
        sys.executable, os.path.join(ROOT, "create_frames.py"), f"--video_dir={video_dir}",
        f"--out_dir={out_dir}", f"--workers={workers}"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_floor(plan, video_dir):
    """Every video decoded once to nothing, as many at a time as there are cores."""
    def decode(name):
        subprocess.run([ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-nostdin",
                        "-i", os.path.join(video_dir, name), "-f", "null", "-"], check=True)

    with concurrent.futures.ThreadPoolExecutor(timing.cores()) as pool:
        list(pool.map(decode, [name for name, _, _ in plan]))


def check_same_frames(plan, ours_dir, reference_dir):
    """The same videos corrected and, for every video, the same number of frames, each showing
    the picture of the reference's frame of the same index (nearer to it than to the frames a
    second before and after); returns the largest mean difference in grey levels."""
    manifest = frames.read_manifest(ours_dir).set_index("video_id")
    corrected = {name for name in manifest.index if bool(manifest.loc[name, "gamma_corrected"])}
    told = {name for name, _, overexposed in plan if overexposed}
    assert corrected == told, (corrected, told)
    worst = 0.0
    for name, _, _ in plan:
        def pictures(folder):
            return [np.asarray(Image.open(os.path.join(folder, name, file)), np.float32)
                    for file in sorted(os.listdir(os.path.join(folder, name)))]

        ours, theirs = pictures(ours_dir), pictures(reference_dir)
        assert len(ours) == len(theirs), (name, len(ours), len(theirs))
        for k, picture in enumerate(ours):
            near = {j: float(np.abs(picture - theirs[j]).mean())
                    for j in range(max(0, k - 1), min(len(theirs), k + 2))}
            assert min(near, key=near.get) == k and near[k] < SAME_PICTURE, (name, k, near)
            worst = max(worst, near[k])
    return worst


def main(argv):
    del argv
    plan = video_plan(FLAGS.quick, FLAGS.videos)
    video_dir = os.path.join(FLAGS.cache_dir, f"{FLAGS.size}-{len(plan)}{'-quick' * FLAGS.quick}")
    print(f"generating {len(plan)} videos in {video_dir} (cached) ...", flush=True)
    generate(plan, video_dir, FLAGS.size)
    for name, _, _ in plan:  # page cache: no side reads from the disk
        with open(os.path.join(video_dir, name), "rb") as f:
            f.read()
    work = tempfile.mkdtemp(prefix="bench-frames-")

    def fresh(side, repeat):
        path = os.path.join(work, f"{side}-{repeat}")
        shutil.rmtree(path, ignore_errors=True)
        return path

    sides = {
        "create_frames.py": lambda r: run_ours(video_dir, fresh("ours", r), FLAGS.workers),
        "reference (sequential ffmpeg CLI)": lambda r: run_reference(plan, video_dir,
                                                                     fresh("reference", r)),
        "decode floor (ffmpeg -f null)": lambda r: run_floor(plan, video_dir),
    }
    try:
        runs = timing.compare(sides, FLAGS.repeats,
                                  0 if FLAGS.quick else timing.MIN_SECONDS)
        worst = check_same_frames(plan, os.path.join(work, "ours-0"),
                                  os.path.join(work, "reference-0"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds = sum(s for _, s, _ in plan)
    print(f"{len(plan)} videos, {seconds} s of 30-fps {FLAGS.size} H.264, "
          f"{sum(o for *_, o in plan)} overexposed, {timing.cores()} cores; same frames "
          f"(largest mean difference {worst:.2f} grey levels)")
    timing.report(runs, len(plan), "video")
    timing.ratio(runs, "create_frames.py", "decode floor (ffmpeg -f null)",
                 "create_frames.py as a fraction of the decode floor's speed")
    print("(the floor decodes each video once; both extractors decode overexposed ones twice, "
          "so the fraction stays below 1 on a quiet machine)")
    timing.ratio(runs, "create_frames.py", "reference (sequential ffmpeg CLI)",
                 "ratio create_frames.py / reference (videos/s, medians)")


if __name__ == "__main__":
    app.run(main)
