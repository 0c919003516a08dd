"""MegaDetector's batch output for videos, read into the animal boxes of each snapshot moment.

The file (https://lila.science/megadetector-output-format, video results) holds
`detection_categories` ({"1": "animal", ...}) and `images`, one entry per video: `file` (relative
to the video folder), `frame_rate`, `frames_processed`, `detections` (each with `frame_number`,
`category`, `conf` and `bbox` [x, y, width, height] in 0..1 from the top-left) and, when
MegaDetector could not read the video, `failure`.

Camera-trap distance sampling measures animals at snapshot moments t = 0, T, 2T, ... of each
video: a detection is used at the moment whose time its frame is nearest, within half a snapshot,
and only the frame nearest that moment counts (one look per moment, as an observer would take).
"""

import collections
import dataclasses
import json

import numpy as np
import pandas as pd

from chimpact import storage
from chimpact.data import boxes
from chimpact.errors import InputError

MIN_CONF = 0.2  # MegaDetector's typical detection threshold
CATEGORIES = ("animal",)
COLUMNS = ["frame_number", "category", "conf", *boxes.COORDINATES]


@dataclasses.dataclass(frozen=True)
class VideoDetections:
    """One video's entry: its kept detections (COLUMNS), or why MegaDetector failed on it."""

    file: str
    frame_rate: float | None
    detections: pd.DataFrame
    failure: str = ""


def _entry_error(path, where, problem):
    return InputError(f"--detections={path}: {where}: {problem}")


def read_detections(path, min_conf=MIN_CONF, categories=CATEGORIES):
    """([VideoDetections] in file order, {why skipped: detections}): the detections of the
    `categories` (names of detection_categories) with conf >= `min_conf`; InputError naming the
    file and entry of anything malformed."""
    if not storage.exists(path):
        raise InputError(f"--detections={path}: file not found")
    try:
        data = json.loads(storage.read_text(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"--detections={path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InputError(f"--detections={path}: no `images` list: not a MegaDetector output file")
    names = data.get("detection_categories")
    if not isinstance(names, dict):
        raise InputError(f"--detections={path}: no `detection_categories`")
    unknown = sorted(set(categories) - set(names.values()))
    if unknown:
        raise InputError(f"--detection_categories: {', '.join(unknown)} not in the file's "
                         f"categories ({', '.join(sorted(names.values()))})")
    skipped = collections.Counter()
    videos = []
    for i, entry in enumerate(data["images"]):
        where = f"images[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise _entry_error(path, where, "no `file`")
        if entry.get("failure"):
            videos.append(VideoDetections(entry["file"], None, pd.DataFrame(columns=COLUMNS),
                                          str(entry["failure"])))
            continue
        frame_rate = entry.get("frame_rate")
        if not isinstance(frame_rate, (int, float)) or frame_rate <= 0:
            raise _entry_error(path, where, f"({entry['file']}) frame_rate {frame_rate!r} is not "
                               "a positive number: MegaDetector's video output has one per video")
        rows = []
        for j, detection in enumerate(entry.get("detections") or []):
            at = f"{where}.detections[{j}] ({entry['file']})"
            try:
                category = names[str(detection["category"])]
                conf, frame = float(detection["conf"]), int(detection["frame_number"])
                bbox = [float(v) for v in detection["bbox"]]
            except (KeyError, TypeError, ValueError) as e:
                raise _entry_error(path, at, "needs category (one of detection_categories), "
                                   f"conf, frame_number and bbox [x, y, width, height] ({e!r})")
            if len(bbox) != 4 or min(bbox) < 0 or bbox[0] > 1 or bbox[1] > 1:
                raise _entry_error(path, at, f"bbox {bbox} is not [x, y, width, height] in 0..1")
            if category not in categories:
                skipped[f"category {category}"] += 1
            elif conf < min_conf:
                skipped[f"conf below --min_conf={min_conf:g}"] += 1
            else:
                rows.append((frame, category, conf, *boxes.from_megadetector(bbox)))
        videos.append(VideoDetections(entry["file"], float(frame_rate),
                                      pd.DataFrame(rows, columns=COLUMNS)))
    return videos, dict(skipped)


def snapshot_detections(detections, frame_rate, snapshot_s):
    """The detections used at snapshot moments: those of the frame nearest each moment
    t = k * snapshot_s, within half a snapshot (halfway: the earlier moment), with columns time (t) and detection (0, 1, ...
    within that frame, in file order), sorted by time."""
    if detections.empty:
        return detections.assign(time=[], detection=[])
    seconds = detections.frame_number.to_numpy() / frame_rate
    moment = np.ceil(seconds / snapshot_s - 0.5)  # halfway between two moments: the earlier
    offset = np.abs(seconds - moment * snapshot_s)
    # + 0.0: the first moment is 0, not the -0.0 that ceil(-0.5) gives.
    table = detections.assign(time=np.round(moment * snapshot_s, 6) + 0.0, offset=offset)
    table = table[table.offset <= snapshot_s / 2 + 1e-9]
    nearest = table.groupby("time").offset.transform("min")
    table = table[table.offset == nearest]
    first = table.groupby("time").frame_number.transform("min")  # ties: the earlier frame
    table = table[table.frame_number == first].drop(columns="offset")
    table = table.sort_values("time", kind="stable")
    return table.assign(detection=table.groupby("time").cumcount())
