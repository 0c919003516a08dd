"""The animal detections of one video, and which of them camera-trap distance sampling uses.

Camera-trap distance sampling measures animals at snapshot moments t = 0, T, 2T, ... of each
video: a detection is used at the moment whose time its frame is nearest, within half a snapshot,
and only the frame nearest that moment counts (one look per moment, as an observer would take).
A moment with no frame MegaDetector processed within half a snapshot was never looked at: it is
not processed, which is not the same as empty. (chimpact.field.megadetector reads the files.)
"""

import dataclasses

import numpy as np
import pandas as pd

from chimpact.data import boxes

COLUMNS = ["frame_number", "category", "conf", *boxes.COORDINATES]


@dataclasses.dataclass(frozen=True)
class VideoDetections:
    """One video's kept detections (COLUMNS), or why MegaDetector failed on it; `frame_rate`
    of its frame numbers (None: the video's own), `frames_processed` the frame numbers
    MegaDetector looked at (None: not recorded, taken as every frame)."""

    file: str
    frame_rate: float | None
    detections: pd.DataFrame
    failure: str = ""
    frames_processed: tuple | None = None


def processed_moments(moments, frames_processed, frame_rate, snapshot_s):
    """The `moments` (seconds) with a processed frame within half a snapshot of them: all of
    them when `frames_processed` is None."""
    if frames_processed is None:
        return list(moments)
    seconds = np.asarray(frames_processed, np.float64) / frame_rate
    if not len(seconds):
        return []
    return [t for t in moments if np.abs(seconds - t).min() <= snapshot_s / 2 + 1e-9]


def _moment_frames(frame_numbers, frame_rate, snapshot_s):
    """{moment: the frame of `frame_numbers` nearest it, within half a snapshot (ties: the
    earlier frame; a frame halfway between two moments: the earlier moment)}."""
    frame_numbers = np.unique(np.asarray(frame_numbers, np.int64))
    seconds = frame_numbers / frame_rate
    moment = np.ceil(seconds / snapshot_s - 0.5)  # halfway between two moments: the earlier
    offset = np.abs(seconds - moment * snapshot_s)
    # + 0.0: the first moment is 0, not the -0.0 that ceil(-0.5) gives.
    table = pd.DataFrame({"time": np.round(moment * snapshot_s, 6) + 0.0, "offset": offset,
                          "frame_number": frame_numbers})
    table = table[table.offset <= snapshot_s / 2 + 1e-9].sort_values(
        ["offset", "frame_number"], kind="stable")
    return dict(table.groupby("time").frame_number.first())


def snapshot_detections(detections, frame_rate, snapshot_s, frames_processed=None):
    """The detections used at snapshot moments t = k * snapshot_s, with columns time (t) and
    detection (0, 1, ... within that frame, in file order), sorted by time: those of the frame
    nearest each moment within half a snapshot, among the detections' frames and the
    `frames_processed` (a nearer processed frame without an animal leaves the moment empty)."""
    if detections.empty:
        return detections.assign(time=[], detection=[])
    candidates = [*detections.frame_number, *(frames_processed or ())]
    used = {frame: time for time, frame in
            _moment_frames(candidates, frame_rate, snapshot_s).items()}
    table = detections[detections.frame_number.isin(list(used))]
    table = table.assign(time=table.frame_number.map(used).astype(float))
    table = table.sort_values("time", kind="stable")
    return table.assign(detection=table.groupby("time").cumcount())
