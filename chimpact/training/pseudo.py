"""Pseudo-labels (run_train.py --pseudo_labels): test rows with given distances, an ensemble's
submission, added to every fold's training set and never to its validation, the 2nd place's
second round. The rows are read from the test records, which must serve the model's sequences
as the training records do.
"""

import dataclasses

import pandas as pd
import tensorflow as tf

from chimpact.data import labels, records
from chimpact.data.labels import KEYS
from chimpact.errors import InputError
from chimpact.training import pipeline


@dataclasses.dataclass(frozen=True)
class PseudoLabels:
    tfrec_dir: str  # the test records holding the rows
    manifest: records.Manifest
    table: pd.DataFrame  # video_id, time, distance
    sha256: str  # of the pseudo-label table

    def __post_init__(self):
        keys = [records.key_text(v, t) for v, t in zip(self.table.video_id, self.table.time)]
        table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant(keys, tf.string), tf.constant(self.table.distance, tf.float32)),
            default_value=float("nan"))
        object.__setattr__(self, "_distances", table)

    def _lookup(self, example):
        return self._distances.lookup(records.example_key(example))

    def keeps(self, serialized):
        """True for a training example, or a test example that has a pseudo-label."""
        example = records.parse_keys(serialized)
        return (example["fold"] >= 0) | ~tf.math.is_nan(self._lookup(example))

    def label(self, serialized):
        """(serialized, the example's label): its own for a training example, its pseudo-label
        for a test one."""
        example = records.parse_keys(serialized)
        return serialized, tf.where(example["fold"] >= 0, example["distance"],
                                    self._lookup(example))


def _first_row_error(labels_csv, rows, what):
    row = rows.iloc[0]
    return InputError(f"--pseudo_labels={labels_csv} line {row.line}: video_id={row.video_id} "
                      f"time={row.time} {what} ({len(rows)} such rows)")


def read_pseudo_labels(labels_csv, tfrec_dir, train_tfrec_dir, use_boxes=False):
    """The PseudoLabels of the table `labels_csv` (video_id, time, distance: a submission) whose
    rows are in the test records `tfrec_dir`; InputError for a row that is not, for a row that
    is also a training example of `train_tfrec_dir` (its pseudo-label would train the fold that
    validates on that second), or for records that do not hold sequences as the training
    records do."""
    if not tfrec_dir:
        raise InputError("--pseudo_labels needs --pseudo_tfrec_dir: the test records holding "
                         "its rows")
    table, sha256 = labels.read_labels(labels_csv, "train", "pseudo_labels")
    train_manifest = records.read_manifest(train_tfrec_dir)
    manifest = records.read_manifest(tfrec_dir)
    if manifest.subset != "test":
        raise InputError(f"--pseudo_tfrec_dir={tfrec_dir}: holds {manifest.subset} records: "
                         "give the test records (create_tfrecords.py --subset=test)")
    for name in ("frames_per_side", "step", "image_size"):
        if getattr(manifest, name) != getattr(train_manifest, name):
            raise InputError(f"--pseudo_tfrec_dir={tfrec_dir}: {name} "
                             f"{getattr(manifest, name)}, the training records have "
                             f"{getattr(train_manifest, name)}: make both with the same flags")
    pipeline.check_boxes(manifest, tfrec_dir, use_boxes)
    held = pipeline.read_keys(tfrec_dir)
    merged = table.merge(held[KEYS], on=KEYS, how="left", indicator=True)
    missing = merged[merged["_merge"] == "left_only"]
    if len(missing):
        raise _first_row_error(labels_csv, missing, f"is not in the test records {tfrec_dir}")
    trained = table.merge(pipeline.read_keys(train_tfrec_dir)[KEYS], on=KEYS)
    if len(trained):
        raise _first_row_error(labels_csv, trained.sort_values("line"),
                               f"is also a training example of {train_tfrec_dir}: its "
                               "pseudo-label would train the fold that validates on it; drop "
                               "such rows")
    return PseudoLabels(str(tfrec_dir), manifest, table[KEYS + ["distance"]], sha256)


def describe(pseudo):
    """config.json's record of the pseudo-labels a model was trained with ({} without)."""
    if pseudo is None:
        return {}
    return {"pseudo_labels_sha256": pseudo.sha256, "pseudo_tfrec_dir": pseudo.tfrec_dir,
            "pseudo_examples": len(pseudo.table)}
