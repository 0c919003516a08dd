"""MegaDetector's batch output for videos, in each layout MegaDetector writes, read into one
VideoDetections per video with checks as strict as MegaDetector's own validator
(megadetector/postprocessing/validate_batch_results.py; format:
https://lila.science/megadetector-output-format).

Layouts read:
- video level (format 1.3-1.6, process_video.py): one entry per video, `file` the video,
  `frame_rate` (required from 1.4), `frames_processed` (required from 1.5) and detections that
  each carry their `frame_number`; an entry of format 1.5 or later without `frames_processed`
  (MegaDetector 10.0's frame_results_to_video_results writes them, though its validator refuses
  them) is read as having looked at the frames with a detection only;
- frame level (the `X.frames.json` of process_video.py and batch runs over extracted frames): one
  entry per frame, `file` like `video.AVI/frame000010.jpg`; the entries of one video are grouped,
  the frame number read from the name, the frame rate taken from the entry, else from
  `info.custom_metadata.video_frame_rate` (one number, or {video: number}), else from the video
  itself when it is decoded;
- video summaries (frame_results_to_video_results without include_all_processed_frames,
  MegaDetector 5's default): video level without `frames_processed`, never two detections of a
  category in one video: read, and named in a warning, since every other frame's animals are
  gone.

Paths may use backslashes (Windows runs); `resolve` places them under the video folder, and
`replace_prefix` maps the folder of another machine (or of extracted frames) onto it.
"""

import collections
import dataclasses
import json
import math
import os
import posixpath
import re

import pandas as pd

from chimpact import storage
from chimpact.data import boxes
from chimpact.data.extract import VIDEO_EXTENSIONS
from chimpact.errors import InputError, UsageError
from chimpact.field.detections import COLUMNS, VideoDetections

MIN_CONF = 0.2  # MegaDetector's typical detection threshold, when the file gives none
CATEGORIES = ("animal",)
OLDEST_FORMAT = 1.3  # the oldest MegaDetector's validator accepts
_FRAME_FILE = re.compile(r"^(?P<video>.+)/frame(?P<number>\d+)\.jpg$")
_PICTURE = re.compile(r"\.(jpe?g|png|tiff?|bmp)$", re.IGNORECASE)
_ABSOLUTE = re.compile(r"^(/|[A-Za-z]:/)")
DECIMALS = 6  # of the box corners written: a pixel of a 4K frame is 0.00026
PREFIX_FLAG = "--detections_path_prefix"


@dataclasses.dataclass(frozen=True)
class DetectionsFile:
    """A read MegaDetector file: its videos (VideoDetections, file order), the detections
    skipped ({why: count}), the confidence threshold used, the videos that look like
    one-detection-per-category summaries, and those without the frames_processed their format
    requires (taken as the frames with a detection)."""

    videos: list
    skipped: dict
    min_conf: float
    summaries: list
    unsaid: list = dataclasses.field(default_factory=list)


class _Problem(Exception):
    """One malformed part of the file; read_detections names the file and entry."""


def _number(value, what, low=-math.inf, high=math.inf, integer=False):
    """`value` as a float (an int where `integer`), refused as MegaDetector's validator would:
    strings, booleans, NaN, out of [low, high], fractional frame numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise _Problem(f"{what} {value!r} is not a number")
    if not low <= value <= high:
        raise _Problem(f"{what} {value!r} is outside {low:g}..{high:g}")
    if integer and value != int(value):
        raise _Problem(f"{what} {value!r} is not a whole number")
    return int(value) if integer else float(value)


def _version(info):
    if not isinstance(info, dict) or "format_version" not in info:
        raise _Problem("no `info.format_version`: not a MegaDetector output file (or one older "
                       f"than format {OLDEST_FORMAT}, which MegaDetector's validator refuses too)")
    raw = info["format_version"]
    try:
        version = float(raw)
    except (TypeError, ValueError):
        raise _Problem(f"info.format_version {raw!r} is not a version number") from None
    if version < OLDEST_FORMAT:
        raise _Problem(f"format_version {raw} is older than {OLDEST_FORMAT}: rerun MegaDetector "
                       "or convert the file with its current tools")
    if version >= 1.6 and not isinstance(raw, str):
        raise _Problem(f"format_version {raw!r} must be a string from format 1.6 on")
    return version


def _categories(names, version):
    if not isinstance(names, dict):
        raise _Problem("no `detection_categories`")
    for key, name in names.items():
        if not isinstance(name, str) or (version >= 1.6 and not name.strip()):
            raise _Problem(f"detection_categories[{key!r}] {name!r} is not a category name")
    return names


def _default_conf(info):
    """The file's detector_metadata.typical_detection_threshold, else MIN_CONF."""
    threshold = (info.get("detector_metadata") or {}).get("typical_detection_threshold")
    try:
        return _number(threshold, "typical_detection_threshold", 0.0, 1.0)
    except _Problem:
        return MIN_CONF


def _detection(detection, names, frame_number):
    """(frame, category name, conf, x1, y1, x2, y2) of one detection; `frame_number` is the
    frame's own (frame level) or None (video level: the detection's)."""
    if not isinstance(detection, dict):
        raise _Problem("is not an object")
    for field in ("category", "conf", "bbox"):
        if field not in detection:
            raise _Problem(f"has no `{field}`")
    if detection["category"] not in names:
        raise _Problem(f"category {detection['category']!r} is not in detection_categories "
                       f"({', '.join(map(repr, names))})")
    conf = _number(detection["conf"], "conf", 0.0, 1.0)
    bbox = detection["bbox"]
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise _Problem(f"bbox {bbox!r} is not [x, y, width, height]")
    x, y, width, height = (_number(v, "bbox value", 0.0) for v in bbox)
    if x > 1 or y > 1:
        raise _Problem(f"bbox {bbox} is not [x, y, width, height] in 0..1")
    if frame_number is None:
        if "frame_number" not in detection:
            raise _Problem("has no `frame_number` (every detection of a video entry needs one)")
        frame_number = _number(detection["frame_number"], "frame_number", 0, integer=True)
    return (frame_number, names[detection["category"]], conf,
            *(round(v, DECIMALS) for v in boxes.from_megadetector([x, y, width, height])))


def _frame_rates(info):
    """{video: rate} from info.custom_metadata.video_frame_rate ({video: rate}, or one rate for
    every video, under the key None)."""
    rates = info.get("custom_metadata") or {}
    rates = rates.get("video_frame_rate") if isinstance(rates, dict) else None
    if rates is None:
        return {}
    if isinstance(rates, dict):
        return {normalise(k): _number(v, f"custom_metadata.video_frame_rate[{k!r}]", 1e-6)
                for k, v in rates.items()}
    return {None: _number(rates, "custom_metadata.video_frame_rate", 1e-6)}


def normalise(file):
    """A `file` of the format as a forward-slash path (MegaDetector on Windows writes `\\`)."""
    return posixpath.normpath(file.replace("\\", "/"))


def parse_prefix(text):
    """(old, new) of --detections_path_prefix's OLD=NEW, both normalised; None for none."""
    if not text:
        return None
    old, equals, new = text.partition("=")
    if not equals or not old.strip():
        raise UsageError(f"{PREFIX_FLAG}={text}: give OLD=NEW, the folder MegaDetector's file "
                         "names and the one it is here (NEW empty: relative to --video_dir)")
    return normalise(old).rstrip("/"), new and normalise(new).rstrip("/")


def replace_prefix(file, prefix):
    """A normalised `file` with the (old, new) `prefix` of parse_prefix replaced, whole folder
    names only; as it is without one, or when it does not start with old."""
    if not prefix or not (file + "/").startswith(prefix[0] + "/"):
        return file
    rest = file[len(prefix[0]):].lstrip("/")
    return posixpath.join(prefix[1], rest) if prefix[1] else rest


def resolve(file, video_dir):
    """The video id (path relative to `video_dir`, forward slashes) of a normalised `file`:
    relative paths as they are, absolute ones inside `video_dir` made relative; None for an
    absolute path outside it. A local `video_dir` is compared as an absolute path, then with
    symbolic links followed on both sides, so that `survey/videos` matches the absolute paths
    MegaDetector writes."""
    if not _ABSOLUTE.match(file):
        return file
    pairs = [(file, str(video_dir))]
    if not storage.is_remote(video_dir):
        pairs = [(file, os.path.abspath(video_dir))]
        if file.startswith("/"):  # a Windows path is never one of this machine's
            pairs.append((os.path.realpath(file), os.path.realpath(video_dir)))
    for path, root in pairs:
        root = normalise(root).rstrip("/") + "/"
        if path.lower().startswith(root.lower()):
            return path[len(root):]
    return None


class _Video:
    """What the entries of one video say, gathered in file order."""

    def __init__(self, file):
        self.file, self.rows, self.frame_rate, self.failure = file, [], None, ""
        self.processed = None  # frame numbers MegaDetector looked at; None: not said
        self.frame_level = self.listed = False
        self.frame_failure = ""
        self.categories = []  # of every detection, kept or not
        self.detected_frames = set()  # of every detection, kept or not
        self.unsaid = False  # no frames_processed where the format requires it


def _video_entry(entry, names, version, video):
    if "frame_rate" in entry:
        video.frame_rate = _number(entry["frame_rate"], "frame_rate", 1e-6)
    elif version >= 1.4:
        raise _Problem("has no `frame_rate` (required from format 1.4)")
    if "frames_processed" in entry:
        processed = entry["frames_processed"]
        if not isinstance(processed, list):
            raise _Problem(f"frames_processed {processed!r} is not a list of frame numbers")
        video.processed = {_number(f, "frames_processed value", 0, integer=True)
                           for f in processed}
    elif version >= 1.5:  # frame_results_to_video_results writes none (MegaDetector 10.0)
        video.unsaid = True
    return [(j, detection, None) for j, detection in enumerate(entry["detections"])]


def _frame_entry(entry, number, video, rates):
    video.frame_level = True
    video.processed = (video.processed or set()) | {number}
    if "frame_rate" in entry:
        video.frame_rate = _number(entry["frame_rate"], "frame_rate", 1e-6)
    elif video.frame_rate is None:
        video.frame_rate = rates.get(video.file, rates.get(None))
    return [(j, detection, number) for j, detection in enumerate(entry["detections"])]


def _video_frame(file):
    """The _FRAME_FILE match of a frame in a video's folder, None for a video; _Problem for any
    other picture, which names no video."""
    frame = _FRAME_FILE.match(file)
    if frame and frame["video"].lower().endswith(VIDEO_EXTENSIONS):
        return frame
    if _PICTURE.search(file):
        raise _Problem("is a picture outside a video's folder, so it names no video: frame "
                       "entries are VIDEO/frame000010.jpg, in a folder named after the video "
                       "file, as MegaDetector's video_folder_to_frames writes them")
    return None


def _read_entries(data, version, names, min_conf, categories, path, prefix):
    rates = _frame_rates(data["info"])
    by_file, skipped = {}, collections.Counter()
    for i, entry in enumerate(data["images"]):
        where = f"images[{i}]"
        try:
            if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
                raise _Problem("has no `file`")
            file = replace_prefix(normalise(entry["file"]), prefix)
            where += f" ({entry['file']})"
            frame = _video_frame(file)
            video = by_file.setdefault(frame["video"] if frame else file,
                                       _Video(frame["video"] if frame else file))
            if not frame and (video.listed or video.frame_level):
                raise _Problem("lists this video a second time")
            video.listed = not frame
            failure = entry.get("failure")
            if failure is not None:
                if not isinstance(failure, str):
                    raise _Problem(f"failure {failure!r} is not a message")
                if entry.get("detections") is not None:
                    raise _Problem("has a failure and detections: a failed entry has none")
                if frame:  # a frame MegaDetector failed on was not processed
                    video.frame_failure = failure
                else:
                    video.failure = failure
                continue
            if not isinstance(entry.get("detections"), list):
                raise _Problem("has no `detections` list")
            found = (_frame_entry(entry, int(frame["number"]), video, rates) if frame
                     else _video_entry(entry, names, version, video))
            for j, detection, number in found:
                try:
                    row = _detection(detection, names, number)
                except _Problem as e:
                    raise _Problem(f"detections[{j}] {e}") from None
                video.categories.append(row[1])
                video.detected_frames.add(row[0])
                if row[1] not in categories:
                    skipped[f"category {row[1]}"] += 1
                elif row[2] < min_conf:
                    skipped[f"conf below --min_conf={min_conf:g}"] += 1
                else:
                    video.rows.append(row)
        except _Problem as e:
            raise InputError(f"--detections={path}: {where}: {e}") from None
    for video in by_file.values():
        if video.frame_failure and video.processed is None:
            video.failure = f"failed on every frame ({video.frame_failure})"
        if video.unsaid:  # looked at where it found something; elsewhere, nothing says
            video.processed = video.detected_frames
    return list(by_file.values()), dict(skipped)


def _summaries(videos):
    """The videos with detections of a file that looks like a video summary: video level, no
    frames_processed, never two detections of one category in a video."""
    if any(v.frame_level or (v.processed is not None and not v.unsaid)
           or len(v.categories) > len(set(v.categories)) for v in videos):
        return []
    return [video.file for video in videos if video.categories]


def read_detections(path, min_conf=None, categories=CATEGORIES, prefix=None):
    """DetectionsFile of MegaDetector output `path`: the detections of `categories` (names of
    detection_categories) with conf >= `min_conf` (default: the file's
    typical_detection_threshold, else MIN_CONF), its files' (old, new) `prefix` (parse_prefix)
    replaced; InputError naming the file and entry of anything malformed."""
    if not storage.exists(path):
        raise InputError(f"--detections={path}: file not found")
    try:
        data = json.loads(storage.read_text(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"--detections={path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InputError(f"--detections={path}: no `images` list: not a MegaDetector output file")
    try:
        version = _version(data.get("info"))
        names = _categories(data.get("detection_categories"), version)
    except _Problem as e:
        raise InputError(f"--detections={path}: {e}") from None
    unknown = sorted(set(categories) - set(names.values()))
    if unknown:
        raise InputError(f"--detection_categories: {', '.join(unknown)} not in the file's "
                         f"categories ({', '.join(sorted(names.values()))})")
    min_conf = _default_conf(data["info"]) if min_conf is None else min_conf
    found, skipped = _read_entries(data, version, names, min_conf, categories, path, prefix)
    videos = [VideoDetections(
        video.file, video.frame_rate,
        pd.DataFrame(sorted(video.rows, key=lambda row: row[0]) if video.frame_level
                     else video.rows, columns=COLUMNS),
        video.failure, None if video.processed is None else tuple(sorted(video.processed)))
        for video in found]
    return DetectionsFile(videos, skipped, min_conf, _summaries(found),
                          [video.file for video in found if video.unsaid])
