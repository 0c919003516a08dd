"""Animal boxes: the challenge's metadata tables read and checked against a label table, and the
box vector that records store and a `--use_boxes` model reads.

A box is (x1, y1, x2, y2) in 0..1 of the frame's width and height, top-left origin, with the
detector's probability. A labelled second without a box (about 15% of the challenge's rows)
gets the whole frame and `present` 0, so a model sees "no box" rather than a made-up one.
"""

import hashlib
import io

import numpy as np
import pandas as pd

from chimpact import storage
from chimpact.data import labels
from chimpact.errors import InputError

COORDINATES = ["x1", "y1", "x2", "y2"]
# What a model reads per example: the box, then 1 when there is one (else the whole frame, 0).
VECTOR = COORDINATES + ["present"]
ABSENT = (0.0, 0.0, 1.0, 1.0, 0.0)


def _bad(path, line, problem):
    return InputError(f"{path} line {line}: {problem}")


def read_boxes(boxes_csv, table, labels_csv):
    """(boxes, sha256): per row of the label `table` (video_id, time), in its order, the columns
    x1, y1, x2, y2, probability, present; InputError naming the file and line of a bad box, a
    duplicate, or a row that matches no label of `labels_csv`."""
    if not storage.exists(boxes_csv):
        raise InputError(f"--boxes_csv={boxes_csv}: file not found")
    data = storage.read_bytes(boxes_csv)
    raw = storage.parse_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    storage.check_columns(raw, labels.KEYS + COORDINATES + ["probability"],
                          f"--boxes_csv={boxes_csv}")
    lines = np.arange(len(raw)) + 2
    values = raw[COORDINATES + ["probability"]].apply(lambda c: c.str.strip())
    empty = values[COORDINATES] == ""
    numbers = values.apply(lambda c: pd.to_numeric(c.replace("", "nan"), errors="coerce"))
    some_empty = empty.any(axis=1) & ~empty.all(axis=1)
    given = ~empty.any(axis=1)
    coordinates = numbers[COORDINATES]
    checks = [
        (some_empty, "box has some coordinates empty: give all four or none"),
        (given & coordinates.isna().any(axis=1), "box {} is not numbers"),
        (given & ((coordinates < 0) | (coordinates > 1)).any(axis=1),
         "box {} is outside 0..1 (coordinates are fractions of the frame)"),
        (given & ((coordinates.x2 < coordinates.x1) | (coordinates.y2 < coordinates.y1)),
         "box {} has x2 < x1 or y2 < y1"),
    ]
    for bad, problem in checks:
        if bad.any():
            i = int(np.argmax(bad.to_numpy()))
            box = "(" + ", ".join(values.iloc[i][COORDINATES]) + ")"
            raise _bad(boxes_csv, lines[i], problem.format(box))
    time = pd.to_numeric(raw.time, errors="coerce")
    boxes = pd.DataFrame({"video_id": raw.video_id.str.strip(), "time": time, "line": lines})
    duplicated = boxes.duplicated(labels.KEYS)
    if duplicated.any():
        row = boxes[duplicated].iloc[0]
        raise _bad(boxes_csv, row.line, f"duplicate (video_id, time) = ({row.video_id}, "
                   f"{row.time:g})")
    keys = pd.MultiIndex.from_frame(table[labels.KEYS].astype({"time": float}))
    unmatched = ~pd.MultiIndex.from_frame(boxes[labels.KEYS].astype({"time": float})).isin(keys)
    if unmatched.any():
        row = boxes[unmatched].iloc[0]
        raise _bad(boxes_csv, row.line, f"({row.video_id}, {row.time:g}) matches no row of "
                   f"{labels_csv}")
    present = ~empty.all(axis=1)
    boxes[COORDINATES] = numbers[COORDINATES].where(present, axis=0)
    boxes["probability"] = numbers.probability.where(present, 0.0).fillna(0.0)
    boxes["present"] = present.astype(np.float32)
    merged = table[labels.KEYS].astype({"time": float}).merge(
        boxes.drop(columns="line"), on=labels.KEYS, how="left")
    for name, value in zip(VECTOR, ABSENT):
        merged[name] = merged[name].fillna(value)
    merged["probability"] = merged.probability.fillna(0.0)
    merged["time"] = table.time.to_numpy()
    return merged.set_index(table.index), hashlib.sha256(data).hexdigest()


def from_megadetector(bbox):
    """MegaDetector's [x, y, width, height] (normalised, top-left) as (x1, y1, x2, y2), clipped
    into the frame."""
    x, y, width, height = (float(v) for v in bbox)
    return tuple(float(v) for v in np.clip([x, y, x + width, y + height], 0.0, 1.0))
