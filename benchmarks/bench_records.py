"""Examples/s written by create_records against the reference two-stage approach.

The reference decoded the 11 frames of each example into one .npy file, then read the .npy files
back, encoded the frames as JPEG and packed them into TFRecords. Both run here on the same
generated frames (224x224 JPEGs at 1 fps, labels every 10 s as in the challenge), one process:

    PYTHONPATH=. python benchmarks/bench_records.py [--videos=100] [--size=224]
"""

import os
import time

import numpy as np
import pandas as pd
import tensorflow as tf
from absl import app, flags

from chimpact import frames, io, packing, records

FLAGS = flags.FLAGS
flags.DEFINE_integer("videos", 100, "Generated videos of 61 frames, 7 labelled seconds each.")
flags.DEFINE_integer("size", 224, "Frame height and width in pixels.")
flags.DEFINE_integer("frames_per_side", 5, "Frames on each side of the labelled second.")

N_FRAMES = 61


def generate(frames_dir, labels_csv, videos, size):
    """Frames with smooth gradients and noise (JPEGs of realistic size) and a label table."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 200, size, dtype=np.float32)
    rows, table = [], []
    for v in range(videos):
        video_id = f"v{v:03d}.mp4"
        os.makedirs(frames.video_dir(frames_dir, video_id))
        for i in range(N_FRAMES):
            image = ramp[None, :, None] + ramp[:, None, None] * (i % 7) / 7
            image = image + rng.normal(0, 12, (size, size, 3))
            jpeg = tf.io.encode_jpeg(np.clip(image, 0, 255).astype(np.uint8), quality=90)
            with open(frames.frame_path(frames_dir, video_id, i), "wb") as f:
                f.write(jpeg.numpy())
        rows.append({"video_id": video_id, "n_frames": N_FRAMES, "width": size, "height": size,
                     "fps": 1.0, "duration_s": N_FRAMES, "gamma_corrected": False,
                     "status": "ok", "error": ""})
        table += [(video_id, t, float(rng.integers(1, 25))) for t in range(0, N_FRAMES, 10)]
    io.write_csv(pd.DataFrame(rows, columns=frames.MANIFEST_COLUMNS),
                 frames.manifest_path(frames_dir))
    io.write_csv(pd.DataFrame(table, columns=["video_id", "time", "distance"]), labels_csv)


def reference_two_stage(frames_dir, labels_csv, work_dir, frames_per_side):
    """Stage 1: one .npy of decoded frames per example. Stage 2: .npy files to TFRecords."""
    labels = pd.read_csv(labels_csv)
    videos = packing.read_videos(frames_dir)
    folds = packing.assign_folds(labels.video_id, 5)
    npy_dir = os.path.join(work_dir, "npy")
    os.makedirs(npy_dir)
    for i, row in enumerate(labels.itertuples()):
        n_frames, fps = videos[row.video_id]
        window, _ = packing.frame_window(row.time, fps, n_frames, frames_per_side, 1)
        volume = np.stack([
            tf.io.decode_jpeg(io.read_bytes(frames.frame_path(frames_dir, row.video_id, k))).numpy()
            for k in window])
        np.save(os.path.join(npy_dir, f"{i:06d}.npy"), volume)
    writers = {f: tf.io.TFRecordWriter(os.path.join(work_dir, f"fold{f}.tfrecord"))
               for f in range(5)}
    for i, row in enumerate(labels.itertuples()):
        volume = np.load(os.path.join(npy_dir, f"{i:06d}.npy"))
        jpegs = [tf.io.encode_jpeg(image).numpy() for image in volume]
        writers[folds[i]].write(records.serialize_example(
            jpegs, row.distance, row.video_id, row.time, folds[i]))
    for writer in writers.values():
        writer.close()
    return len(labels)


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def main(argv):
    del argv
    with io.local_dir() as work:
        frames_dir, labels_csv = os.path.join(work, "frames"), os.path.join(work, "labels.csv")
        generate(frames_dir, labels_csv, FLAGS.videos, FLAGS.size)
        n, ref_s = timed(reference_two_stage, frames_dir, labels_csv,
                         os.path.join(work, "reference"), FLAGS.frames_per_side)
        ours = {}
        for workers in (2, 1):
            manifest, ours[workers] = timed(
                packing.create_records, frames_dir, labels_csv,
                os.path.join(work, f"ours{workers}"), frames_per_side=FLAGS.frames_per_side,
                workers=workers, shards=2, progress=False)
            assert manifest["examples"] == n
    print(f"{n} examples of {2 * FLAGS.frames_per_side + 1} frames, {FLAGS.size}x{FLAGS.size} px, "
          f"{os.cpu_count()} cores")
    print(f"reference (npy per example, then TFRecords): {n / ref_s:8.1f} examples/s")
    print(f"ours, 2 workers:                             {n / ours[2]:8.1f} examples/s")
    print(f"ours, 1 worker:                              {n / ours[1]:8.1f} examples/s")
    print(f"ratio (ours 1 worker / reference): {ref_s / ours[1]:.1f}x")


if __name__ == "__main__":
    app.run(main)
