"""The label tables (train_labels.csv, submission_format.csv, a table of seconds to predict):
read with one set of rules, and the submission filled from predictions.

A row is (video_id, time, distance): video_id with its extension (surrounding spaces dropped),
time in whole seconds from 0, distance in metres (a placeholder in the submission table). A
training table may add a `fold` column (0, 1, ...) to fix its cross-validation folds. Every
problem is a one-line error naming the file, the line and the value.
"""

import hashlib
import io

import numpy as np
import pandas as pd

from chimpact import storage
from chimpact.errors import InputError

KEYS = ["video_id", "time"]
SUBSETS = ("train", "test")


def _where(path, line):
    return f"{path} line {line}"


def _check_column(path, values, lines, name, is_bad, problem):
    bad = np.asarray(is_bad(values), dtype=bool)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(f"{_where(path, lines[i])}: {name} {values.iloc[i]!r} {problem}")


def read_labels(labels_csv, subset="train", flag="labels_csv"):
    """The validated table (video_id, time, distance, line, and fold when the train table has
    one) and the file's sha256; an absent file is named with its --`flag`.

    `line` is the row's line number in the file; the distance is required for the train subset
    and NaN for the test subset (whose distances are placeholders).
    """
    if not storage.exists(labels_csv):
        raise InputError(f"--{flag}={labels_csv}: file not found")
    data = storage.read_bytes(labels_csv)
    table = storage.parse_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    storage.check_columns(table, KEYS + (["distance"] if subset == "train" else []), labels_csv)
    if table.empty:
        raise InputError(f"{labels_csv}: no rows")
    lines = np.arange(len(table)) + 2
    _check_column(labels_csv, table.video_id, lines, "video_id", lambda v: v.str.strip() == "",
                  "is empty")
    time = pd.to_numeric(table.time, errors="coerce")
    _check_column(labels_csv, table.time, lines, "time", lambda _: ~np.isfinite(time),
                  "is not a number")
    _check_column(labels_csv, table.time, lines, "time", lambda _: time < 0, "is negative")
    _check_column(labels_csv, table.time, lines, "time", lambda _: time != np.floor(time),
                  "is not a whole number of seconds")
    distance = pd.Series(np.nan, index=table.index)
    if subset == "train":
        distance = pd.to_numeric(table.distance, errors="coerce")
        _check_column(labels_csv, table.distance, lines, "distance",
                      lambda _: ~np.isfinite(distance), "is not a number")
        _check_column(labels_csv, table.distance, lines, "distance", lambda _: distance < 0,
                      "is negative")
    labels = pd.DataFrame({
        "video_id": table.video_id.str.strip(), "time": time.astype(np.int64),
        "distance": distance.astype(np.float64), "line": lines,
    })
    if subset == "train" and "fold" in table.columns:
        fold = pd.to_numeric(table.fold, errors="coerce")
        _check_column(labels_csv, table.fold, lines, "fold",
                      lambda _: ~np.isfinite(fold) | (fold < 0) | (fold != np.floor(fold)),
                      "is not a fold number (0, 1, ...)")
        labels["fold"] = fold.astype(np.int64)
    duplicated = labels.duplicated(KEYS)
    if duplicated.any():
        row = labels[duplicated].iloc[0]
        first = labels[(labels.video_id == row.video_id) & (labels.time == row.time)].line.iloc[0]
        raise InputError(
            f"{_where(labels_csv, row.line)}: duplicate (video_id, time) = "
            f"({row.video_id}, {row.time}), first at line {first}"
        )
    return labels, hashlib.sha256(data).hexdigest()


def read_times(path, flag="times_csv"):
    """The (video_id, time) rows of a table to predict (given by --`flag`), in file order."""
    return read_labels(path, "test", flag)[0][KEYS]


def fill_submission(submission_csv, predictions):
    """The submission format table with its distance column taken from `predictions`
    (video_id, time, pred): same rows, order and columns; InputError for a row without one."""
    table = storage.read_table(submission_csv, KEYS + ["distance"],
                               f"--submission_csv={submission_csv}", "does not exist")
    rows = read_times(submission_csv, "submission_csv")
    by_key = predictions.set_index(KEYS)["pred"]
    keys = pd.MultiIndex.from_arrays([rows["video_id"], rows["time"]])
    lacking = keys.difference(by_key.index, sort=False)
    if len(lacking):
        video_id, time = lacking[0]
        raise InputError(f"--submission_csv={submission_csv}: no prediction for video_id="
                         f"{video_id} time={time} ({len(lacking)} rows lack one): make the test "
                         "records from this table")
    return table.assign(distance=by_key.reindex(keys).to_numpy())
