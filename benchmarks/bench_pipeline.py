"""Input pipeline throughput, per CPU core: ours against the reference's, reported in two parts.

    python benchmarks/bench_pipeline.py [--quick]

Records of 11 frames per example, made by create_tfrecords' own code from frame folders, 7
frames read per sequence, no augmentation, batch 8, alternating, 3 runs:
1. The pipeline, on the same records (11 frames stored at 512x512): ours (chimpact.training.pipeline's
   training stream, only the 7 centred frames decoded) against the reference's parse function
   (every frame decoded with INTEGER_ACCURATE DCT, resized to 512x512, sliced to the centre 7).
2. The storage format, one parse (the reference's) on two stores of the same pictures: 11
   frames at 1280x720 (the reference's) against 11 frames resized once to 512x512 at extraction.
Checks: on the same records both pipelines give the same 7 pictures (the two JPEG DCT methods
apart); the two stores give the same pictures (resizing apart). The ratio of part 1 is last.
"""

import argparse
import os
import tempfile

import numpy as np
import pandas as pd
import tensorflow as tf

import timing
from chimpact import storage
from chimpact.data import frames, packing, records
from chimpact.training import pipeline

FULL = (720, 1280)
SIZE = (512, 512)
FRAMES_PER_SIDE, VOLUME = 5, 7
BATCH = 8


def pictures(count, seed=0):
    """Camera-trap-like frames: smooth shapes plus sensor noise (JPEG sizes like real ones)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (count, 9, 16, 3)).astype(np.float32)
    smooth = tf.image.resize(small, FULL, method="bicubic").numpy()
    return np.clip(smooth + rng.normal(0, 6, smooth.shape), 0, 255).astype(np.uint8)


def make_records(folder, full_pictures, examples, size):
    """Records of `examples` one-second videos whose 11 frames are `full_pictures` at `size`,
    through create_records."""
    stored = full_pictures if size == FULL else tf.saturate_cast(tf.round(tf.image.resize(
        full_pictures, size, antialias=True)), tf.uint8).numpy()
    frames_dir = os.path.join(folder, "frames")
    frames.write_frames(frames_dir, {f"v{i:04d}.mp4": stored for i in range(examples)})
    labels = os.path.join(folder, "labels.csv")
    storage.write_csv(pd.DataFrame({"video_id": [f"v{i:04d}.mp4" for i in range(examples)],
                                    "time": FRAMES_PER_SIDE, "distance": 5.0,
                                    "fold": [i % 2 for i in range(examples)]}), labels)
    out = os.path.join(folder, "records")
    packing.create_records(frames_dir, labels, out, frames_per_side=FRAMES_PER_SIDE, n_folds=2,
                           shards=2, progress=False)
    return out


def reference_parse(serialized):
    """The reference's parse_example, on our feature names: decode all, resize, slice."""
    example = tf.io.parse_single_example(serialized, {
        "frames": tf.io.FixedLenFeature([2 * FRAMES_PER_SIDE + 1], tf.string),
        "distance": tf.io.FixedLenFeature([], tf.float32)})

    def decode(image):
        image = tf.image.decode_jpeg(image, channels=3, dct_method="INTEGER_ACCURATE")
        return tf.cast(tf.image.resize(image, SIZE), tf.uint8)

    frames = tf.map_fn(decode, example["frames"], fn_output_signature=tf.uint8)[2:-2]
    return tf.reshape(frames, [VOLUME, *SIZE, 3]), example["distance"]


def reference_dataset(tfrec_dir):
    paths = records.shard_paths(tfrec_dir)
    dataset = tf.data.TFRecordDataset(paths, num_parallel_reads=tf.data.AUTOTUNE)
    return dataset.map(reference_parse, num_parallel_calls=tf.data.AUTOTUNE).batch(
        BATCH).prefetch(tf.data.AUTOTUNE)


def ours_dataset(tfrec_dir):
    return pipeline.make_train_dataset(tfrec_dir, [0, 1], VOLUME, SIZE, BATCH, aug="none")


def count(dataset, examples):
    seen = sum(int(batch[0].shape[0]) for batch in dataset)
    assert seen == examples, seen
    return seen


def first_sequences(tfrec_dir, parse, n=4):
    """The frames of the first `n` examples of a records folder in file order, through
    `parse` (serialized -> (frames, distance))."""
    serialized = tf.data.TFRecordDataset(records.shard_paths(tfrec_dir)).take(n)
    return np.stack([parse(s)[0].numpy() for s in serialized]).astype(np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="24 sequences instead of 96")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side (>= 3)")
    args = parser.parse_args()
    examples = 24 if args.quick else 96
    full_pictures = pictures(2 * FRAMES_PER_SIDE + 1)
    with tempfile.TemporaryDirectory() as folder:
        small = make_records(os.path.join(folder, "small"), full_pictures, examples, SIZE)
        full = make_records(os.path.join(folder, "full"), full_pictures, examples, FULL)
        load = pipeline.make_loader(records.read_manifest(small), VOLUME, SIZE)
        ours = first_sequences(small, lambda serialized: (load(serialized)["frames"], None))
        theirs = first_sequences(small, reference_parse)
        assert np.abs(ours - theirs).mean() < 2.0, np.abs(ours - theirs).mean()  # DCT methods
        from_full = first_sequences(full, reference_parse)
        assert np.abs(from_full - theirs).mean() < 8.0, np.abs(from_full - theirs).mean()
        same_records = timing.compare({
            "ours (7 of 11 decoded)": lambda r: count(ours_dataset(small), examples),
            "reference parse (11 decoded)": lambda r: count(reference_dataset(small), examples),
        }, args.repeats, 0 if args.quick else timing.MIN_SECONDS)
        stores = timing.compare({
            "11 frames stored at 512x512": lambda r: count(reference_dataset(small), examples),
            "11 frames stored at 1280x720": lambda r: count(reference_dataset(full), examples),
        }, args.repeats, 0 if args.quick else timing.MIN_SECONDS)
    print(f"{examples} sequences of {VOLUME} frames at {SIZE[0]}x{SIZE[1]}, batch {BATCH}, "
          f"{timing.cores()} cores; same pictures (mean difference "
          f"{np.abs(ours - theirs).mean():.2f} grey levels on the same records, "
          f"{np.abs(from_full - theirs).mean():.2f} between stores)")
    print("2. storage format, the reference's parse on both:")
    timing.report(stores, examples, "sequence", per_core=True)
    timing.ratio(stores, "11 frames stored at 512x512", "11 frames stored at 1280x720",
                 "storage-format gain (resized once at extraction / full size)")
    print("1. pipeline, the same records (11 frames at 512x512):")
    timing.report(same_records, examples, "sequence", per_core=True)
    timing.ratio(same_records, "ours (7 of 11 decoded)", "reference parse (11 decoded)",
                 "ratio ours / reference on the same records (sequences/s per core, medians)")


if __name__ == "__main__":
    main()
