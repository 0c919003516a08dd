"""Writes small generated training records whose distance can be learnt from the pixels.

Each frame is dark noise with a bright square whose side shrinks with the distance (as an animal
does), placed at a random spot that drifts from frame to frame.
"""

import numpy as np
import tensorflow as tf

from chimpact import io, records

DISTANCES = np.arange(1.0, 21.0)


def square_frames(distance, n_frames, image_size, rng):
    """uint8 [n_frames, H, W, 3]: a square of side ~ (1 - distance / 25) of the image."""
    height, width = image_size
    side = max(2, int(round(min(image_size) * (0.9 - 0.8 * distance / DISTANCES.max()))))
    frames = rng.integers(0, 40, (n_frames, height, width, 3), dtype=np.uint8)
    top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
    for frame in frames:
        frame[top:top + side, left:left + side] = 220
        top = int(np.clip(top + rng.integers(-1, 2), 0, height - side))
        left = int(np.clip(left + rng.integers(-1, 2), 0, width - side))
    return frames


def write_records(out_dir, examples_per_fold=(12, 12), image_size=(32, 32), frames_per_side=2,
                  step=1, shards_per_fold=1, seed=0):
    """Writes train shards (one video per example) and manifest.json; returns the manifest."""
    rng = np.random.default_rng(seed)
    stored = 2 * frames_per_side + 1
    shards, counts = [], {}
    tf.io.gfile.makedirs(out_dir)
    for fold, count in enumerate(examples_per_fold):
        bounds = np.linspace(0, count, shards_per_fold + 1).astype(int)
        for index in range(shards_per_fold):
            name = records.shard_name("train", fold, index, shards_per_fold)
            with tf.io.TFRecordWriter(io.join(out_dir, name)) as writer:
                for number in range(bounds[index], bounds[index + 1]):
                    distance = float(rng.choice(DISTANCES))
                    fold_counts = counts.setdefault(str(fold), {})
                    fold_counts[f"{distance:g}"] = fold_counts.get(f"{distance:g}", 0) + 1
                    jpegs = [tf.io.encode_jpeg(frame, quality=95).numpy()
                             for frame in square_frames(distance, stored, image_size, rng)]
                    writer.write(records.serialize_example(
                        jpegs, distance, f"f{fold}v{number:03d}.mp4", 10, fold))
            shards.append({"file": name, "fold": fold,
                           "examples": int(bounds[index + 1] - bounds[index])})
    manifest = {
        "schema_version": records.SCHEMA_VERSION, "subset": "train",
        "frames_per_side": frames_per_side, "step": step, "stored_frames": stored,
        "image_size": list(image_size), "n_folds": len(examples_per_fold),
        "examples": int(sum(examples_per_fold)),
        "examples_per_fold": {str(f): int(n) for f, n in enumerate(examples_per_fold)},
        "shards": shards, "labels_sha256": "generated", "distance_counts": counts,
        "distances": sorted({float(d) for fold in counts.values() for d in fold}),
        "clamped_frames": 0, "clamped_examples": 0, "missing_videos": [], "skipped_rows": 0,
    }
    records.write_manifest(out_dir, manifest)
    return manifest
