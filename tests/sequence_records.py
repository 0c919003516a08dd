"""Records for tests, built as the pipeline builds them: a frames folder in chimpact.data.frames'
layout and a label table, packed by chimpact.packing.create_records.

Each generated video shows a bright square on dark noise whose side shrinks with the distance
(as an animal does), at a spot that drifts from frame to frame; it has one labelled second, in
the middle, so that every stored frame is its own.
"""

import numpy as np
import pandas as pd

from chimpact import storage
from chimpact.data import frames, packing

DISTANCES = np.arange(1.0, 21.0)


def square_frames(distance, n_frames, image_size, rng):
    """uint8 [n_frames, H, W, 3]: a square of side ~ (1 - distance / 25) of the image."""
    height, width = image_size
    side = max(2, int(round(min(image_size) * (0.9 - 0.8 * distance / DISTANCES.max()))))
    pictures = rng.integers(0, 40, (n_frames, height, width, 3), dtype=np.uint8)
    top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
    for picture in pictures:
        picture[top:top + side, left:left + side] = 220
        top = int(np.clip(top + rng.integers(-1, 2), 0, height - side))
        left = int(np.clip(left + rng.integers(-1, 2), 0, width - side))
    return pictures


def video_id(subset, fold, number):
    """The name of generated video `number` of `fold` (training) or of the test subset."""
    return f"t{number:03d}.mp4" if subset == "test" else f"f{fold}v{number:03d}.mp4"


def write_records(out_dir, examples_per_fold=(12, 12), image_size=(32, 32), frames_per_side=2,
                  step=1, shards_per_fold=1, seed=0, subset="train"):
    """Writes the records of one generated video per example, fold f (or the test subset,
    with one entry in `examples_per_fold`) holding video_id(subset, f, 0..n-1); the frames and
    the label table go beside `out_dir`. Returns the records.Manifest."""
    rng = np.random.default_rng(seed)
    out_dir = str(out_dir)
    middle = frames_per_side * step
    videos, rows = {}, []
    for fold, count in enumerate(examples_per_fold):
        for number in range(count):
            distance = float(rng.choice(DISTANCES))
            name = video_id(subset, fold, number)
            videos[name] = square_frames(distance, 2 * middle + 1, image_size, rng)
            rows.append({"video_id": name, "time": middle, "distance": distance, "fold": fold})
    frames.write_frames(f"{out_dir}-frames", videos)
    labels_csv = f"{out_dir}-labels.csv"
    storage.write_csv(pd.DataFrame(rows), labels_csv)
    return packing.create_records(
        f"{out_dir}-frames", labels_csv, out_dir, subset=subset, frames_per_side=frames_per_side,
        step=step, n_folds=max(2, len(examples_per_fold)), shards=shards_per_fold,
        progress=False)
