"""Input pipeline throughput: ours against the reference's, on the same pictures, per CPU core.

    python benchmarks/bench_pipeline.py [--quick]

Ours: records holding 7 frames stored at 512x512, only those decoded (chimpact.pipeline).
Reference: records holding 11 full-size 1280x720 frames, every one decoded and resized to
512x512, then sliced to the centre 7 (its parse_example, run as it was). Neither augments.
Sequences per second divided by the CPU cores this process may use; the ratio is last.
"""

import argparse
import os
import tempfile
import time

import numpy as np
import tensorflow as tf

from chimpact import pipeline, records

FULL = (720, 1280)
SIZE = (512, 512)
STORED_OURS, STORED_REFERENCE, VOLUME = 7, 11, 7
BATCH = 8


def pictures(count, seed=0):
    """Camera-trap-like frames: smooth shapes plus sensor noise (JPEG sizes like real ones)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (count, 9, 16, 3)).astype(np.float32)
    smooth = tf.image.resize(small, FULL, method="bicubic").numpy()
    noisy = smooth + rng.normal(0, 6, smooth.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def jpeg(picture):
    return tf.io.encode_jpeg(picture, quality=95).numpy()


def write_ours(folder, full_pictures, examples):
    stored = [jpeg(tf.saturate_cast(tf.round(tf.image.resize(p, SIZE, antialias=True)),
                                    tf.uint8)) for p in full_pictures[:STORED_OURS]]
    name = records.shard_name("train", 0, 0, 1)
    with tf.io.TFRecordWriter(os.path.join(folder, name)) as writer:
        for i in range(examples):
            writer.write(records.serialize_example(stored, 5.0, f"v{i}.mp4", 10, 0))
    records.write_manifest(folder, {
        "schema_version": records.SCHEMA_VERSION, "subset": "train", "frames_per_side": 3,
        "step": 1, "stored_frames": STORED_OURS, "image_size": list(SIZE), "n_folds": 1,
        "examples": examples, "examples_per_fold": {"0": examples},
        "shards": [{"file": name, "fold": 0, "examples": examples}]})


def write_reference(path, full_pictures, examples):
    """The reference's record layout: 'image' (11 JPEG strings) and 'label'."""
    stored = [jpeg(p) for p in full_pictures[:STORED_REFERENCE]]
    feature = {
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=stored)),
        "label": tf.train.Feature(float_list=tf.train.FloatList(value=[5.0])),
    }
    serialized = tf.train.Example(
        features=tf.train.Features(feature=feature)).SerializeToString()
    with tf.io.TFRecordWriter(path) as writer:
        for _ in range(examples):
            writer.write(serialized)


def reference_dataset(path):
    """The reference's input pipeline (its parse_example, decode-all then slice)."""
    description = {
        "image": tf.io.FixedLenFeature([STORED_REFERENCE], tf.string),
        "label": tf.io.FixedLenFeature([], tf.float32),
    }

    def decode(image):
        image = tf.image.decode_jpeg(image, channels=3, dct_method="INTEGER_ACCURATE")
        return tf.cast(tf.image.resize(image, SIZE), tf.uint8)

    def parse(serialized):
        example = tf.io.parse_single_example(serialized, description)
        frames = tf.map_fn(decode, example["image"], fn_output_signature=tf.uint8)[2:-2]
        return tf.reshape(frames, [VOLUME, *SIZE, 3]), example["label"]

    dataset = tf.data.TFRecordDataset([path], num_parallel_reads=tf.data.AUTOTUNE)
    return dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE).batch(BATCH).prefetch(
        tf.data.AUTOTUNE)


def sequences_per_second(dataset, examples, repeats):
    """Best of `repeats` full passes, after one warm-up pass."""
    best = 0.0
    for attempt in range(repeats + 1):
        start = time.perf_counter()
        count = sum(int(batch[0].shape[0]) for batch in dataset)
        elapsed = time.perf_counter() - start
        assert count == examples, count
        if attempt:
            best = max(best, count / elapsed)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer examples, one timed pass")
    parser.add_argument("--examples", type=int, default=None, help="examples per pipeline")
    args = parser.parse_args()
    examples = args.examples or (24 if args.quick else 96)
    repeats = 1 if args.quick else 3
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    full_pictures = pictures(STORED_REFERENCE)
    with tempfile.TemporaryDirectory() as folder:
        write_ours(folder, full_pictures, examples)
        reference_path = os.path.join(folder, "reference.tfrecord")
        write_reference(reference_path, full_pictures, examples)
        ours = pipeline.make_train_dataset(folder, [0], VOLUME, SIZE, BATCH, aug="none")
        ours_rate = sequences_per_second(ours, examples, repeats)
        reference_rate = sequences_per_second(reference_dataset(reference_path), examples,
                                              repeats)
    print(f"cpu cores: {cores}, {examples} sequences of {VOLUME} frames at "
          f"{SIZE[0]}x{SIZE[1]}, batch {BATCH}")
    print(f"ours:      {ours_rate / cores:8.2f} sequences/s per core "
          f"({STORED_OURS} stored at 512x512, {VOLUME} decoded)")
    print(f"reference: {reference_rate / cores:8.2f} sequences/s per core "
          f"({STORED_REFERENCE} stored at 1280x720, all decoded and resized)")
    print(f"ratio (ours / reference): {ours_rate / reference_rate:.2f}")


if __name__ == "__main__":
    main()
