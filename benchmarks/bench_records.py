"""Examples/s written by create_records against the reference's two-stage approach.

    python benchmarks/bench_records.py [--quick] [--videos=400] [--size=224]

Both sides pack the same generated frames (JPEGs at 1 fps, a label every 10 s as in the
challenge) into records of 11 frames per example, alternating, at least 3 runs and 10 s each:
- ours: chimpact.packing.create_records, with 1 and with 2 workers (this process and a fork),
  shards of SHARD_MB (so that this small run has several shards per worker, as a full-size
  one has at 150 MB: 11 per fold here, 6 per fold for the challenge's 15,229 examples at
  512x512);
- reference: its create_tfrecords.py, stage 1 reading the 11 JPEG files of each example into
  one .npy of their bytes, stage 2 reading the .npy files back into 8 shards per fold.
Checks: every example's frames are the same bytes, with the same distance, on both sides, and
2 workers write the same files as 1.
"""

import os
import re
import shutil
import tempfile

import numpy as np
import pandas as pd
import tensorflow as tf
from absl import app, flags

import timing
from chimpact import storage
from chimpact.data import frames, packing, records, window

FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "20 videos instead of --videos.")
flags.DEFINE_integer("videos", 400, "Generated videos of 61 frames, 7 labelled seconds each "
                     "(2,800 examples: a job with work to share; at 700 a run lasts 0.2 s, a "
                     "fifth of it the planning and the fork that 2 workers cannot share).")
flags.DEFINE_integer("size", 224, "Frame height and width in pixels.")
flags.DEFINE_integer("repeats", 3, "Runs of each side (at least 3).", lower_bound=3)

N_FRAMES = 61
FRAMES_PER_SIDE = 5
N_FOLDS = 5
SHARD_MB = 10


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
                     "status": "ok", "error": "", "settings": "", "labels_csv": ""})
        table += [(video_id, t, float(rng.integers(1, 25))) for t in range(0, N_FRAMES, 10)]
    storage.write_csv(pd.DataFrame(rows, columns=frames.MANIFEST_COLUMNS),
                      frames.manifest_path(frames_dir))
    storage.write_csv(pd.DataFrame(table, columns=["video_id", "time", "distance"]), labels_csv)


def reference_two_stage(frames_dir, labels_csv, work_dir):
    """Stage 1: one .npy of the 11 JPEG byte strings per example. Stage 2: .npy -> TFRecords
    (the reference's `image` and `label` features), 8 shards per fold."""
    table = pd.read_csv(labels_csv)
    videos = packing.read_videos(frames_dir)
    folds = packing.assign_folds(table.video_id, N_FOLDS)
    npy_dir = os.path.join(work_dir, "npy")
    os.makedirs(npy_dir)
    for i, row in enumerate(table.itertuples()):
        n_frames, fps = videos[row.video_id]
        indices, _ = window.frame_window(row.time, fps, n_frames, FRAMES_PER_SIDE, 1)
        jpegs = []
        for k in indices:
            with open(frames.frame_path(frames_dir, row.video_id, k), "rb") as f:
                jpegs.append(f.read())
        np.save(os.path.join(npy_dir, f"{i:06d}.npy"), np.array(jpegs))
    for fold in range(N_FOLDS):
        rows = np.flatnonzero(folds == fold)
        for shard, part in enumerate(np.array_split(rows, 8)):
            path = os.path.join(work_dir, f"fold.{fold}.tfrecord-{shard:05d}-of-00008")
            with tf.io.TFRecordWriter(path) as writer:
                for i in part:
                    feature = {
                        "image_id": _bytes([f"{table.video_id[i]}_{table.time[i]:03d}".encode()]),
                        "image": _bytes(list(np.load(os.path.join(npy_dir, f"{i:06d}.npy")))),
                        "label": tf.train.Feature(
                            float_list=tf.train.FloatList(value=[table.distance[i]])),
                    }
                    writer.write(tf.train.Example(features=tf.train.Features(
                        feature=feature)).SerializeToString())
    return work_dir


def _bytes(values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def reference_examples(work_dir):
    """{image_id: (frames' bytes, label)} of the reference's records."""
    found = {}
    for name in sorted(os.listdir(work_dir)):
        if ".tfrecord-" in name:
            for serialized in tf.data.TFRecordDataset(os.path.join(work_dir, name)):
                feature = tf.train.Example.FromString(serialized.numpy()).features.feature
                found[feature["image_id"].bytes_list.value[0].decode()] = (
                    list(feature["image"].bytes_list.value), feature["label"].float_list.value[0])
    return found


def check_same_records(manifest, ours_dir, reference_dir):
    """Every example of ours holds the reference's bytes and label for the same second."""
    theirs = reference_examples(reference_dir)
    ours = [example for path in manifest.shard_paths(ours_dir)
            for example in records.read_examples(path)]
    assert len(ours) == len(theirs) == manifest.examples
    for example in ours:
        jpegs, label = theirs[f"{example['video_id']}_{example['time']:03d}"]
        assert example["frames"] == jpegs and example["distance"] == label, example["video_id"]


def main(argv):
    del argv
    videos = 20 if FLAGS.quick else FLAGS.videos
    work = tempfile.mkdtemp(prefix="bench-records-")
    try:
        frames_dir, labels_csv = os.path.join(work, "frames"), os.path.join(work, "labels.csv")
        generate(frames_dir, labels_csv, videos, FLAGS.size)
        n = len(pd.read_csv(labels_csv))

        def output(side, repeat):
            return os.path.join(work, f"{side}-{repeat}")

        def prepare(name, repeat):
            """Untimed: every side's earlier outputs go but its first (kept for the checks),
            and what is left to write reaches the disk, so that no run pays for an earlier
            one's write-back or removal."""
            for entry in os.listdir(work):
                if re.fullmatch(r"(ours1|ours2|reference)-[1-9]\d*", entry):
                    shutil.rmtree(os.path.join(work, entry))
            os.sync()

        def ours(workers):
            return lambda r: packing.create_records(
                frames_dir, labels_csv, output(f"ours{workers}", r),
                frames_per_side=FRAMES_PER_SIDE, n_folds=N_FOLDS, shard_mb=SHARD_MB,
                workers=workers, progress=False)

        sides = {
            "create_records (1 worker)": ours(1),
            "create_records (2 workers)": ours(2),
            "reference (npy, then TFRecords)": lambda r: reference_two_stage(
                frames_dir, labels_csv, output("reference", r)),
        }
        runs = timing.compare(sides, FLAGS.repeats, 0 if FLAGS.quick else timing.MIN_SECONDS,
                              prepare)
        check_same_records(runs["create_records (1 worker)"]["outputs"][0],
                           os.path.join(work, "ours1-0"), os.path.join(work, "reference-0"))
        for name in os.listdir(os.path.join(work, "ours1-0")):
            with open(os.path.join(work, "ours1-0", name), "rb") as one, \
                    open(os.path.join(work, "ours2-0", name), "rb") as two:
                assert one.read() == two.read(), f"{name}: 2 workers wrote other bytes"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{n} examples of {window.stored_frames(FRAMES_PER_SIDE)} frames, "
          f"{FLAGS.size}x{FLAGS.size} px, {timing.cores()} cores; same bytes and labels")
    timing.report(runs, n, "example")
    timing.ratio(runs, "create_records (1 worker)", "reference (npy, then TFRecords)",
                 "ratio create_records, 1 worker / reference (examples/s, medians)")
    timing.ratio(runs, "create_records (2 workers)", "create_records (1 worker)",
                 "ratio create_records, 2 workers / 1 worker (examples/s, medians)")


if __name__ == "__main__":
    app.run(main)
