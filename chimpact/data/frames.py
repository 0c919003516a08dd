"""Layout of extracted frames and their settings: the contract between create_frames.py and the
stages after it.

    FRAMES_DIR/manifest.csv                 one row per video (see MANIFEST_COLUMNS)
    FRAMES_DIR/<video_id>/<index:05d>.jpg   frame `index` shows the picture at index/fps seconds

A video's folder appears only once all its frames are written (temporary folder, then rename).
Each row's `settings` is all that decided its pixels (settings_dict, as one line), its
`labels_csv` the label table whose times decided its gamma (empty: its median frame). The decode
settings and the gamma rule travel to the records' manifest and a model's config.json
(decode_settings), so that raw-video inference decodes as the training frames were.
"""

import collections
import io

import pandas as pd
from PIL import Image

from chimpact import storage
from chimpact.errors import InputError

MANIFEST = "manifest.csv"
MANIFEST_COLUMNS = [
    "video_id", "n_frames", "width", "height", "fps", "duration_s",
    "gamma_corrected", "status", "error", "settings", "labels_csv",
]
# The settings that video.decode_video takes (besides size), as later stages record and reuse
# them, and the gamma rule (True: the labelled frames, False: the median frame).
DECODE_SETTINGS = ("fps", "gamma", "gamma_value", "white_threshold", "white_ratio")
GAMMA_RULE = "labelled"
_SETTING_TYPES = {"fps": float, "gamma_value": float, "white_threshold": int,
                  "white_ratio": float, "quality": int, GAMMA_RULE: lambda text: text == "True"}


def video_dir(frames_dir, video_id):
    """The folder holding the frames of `video_id` (its file name, extension included)."""
    return storage.join(frames_dir, video_id)


def frame_name(index):
    return f"{index:05d}.jpg"


def frame_path(frames_dir, video_id, index):
    """Path of frame `index` of `video_id`."""
    return storage.join(frames_dir, video_id, frame_name(index))


def frame_index(time_s, fps):
    """The index of the frame shown at `time_s` seconds."""
    return int(round(float(time_s) * float(fps)))


def manifest_path(frames_dir):
    return storage.join(frames_dir, MANIFEST)


def read_manifest(frames_dir):
    """The frames manifest as a DataFrame (empty with the right columns if there is none)."""
    path = manifest_path(frames_dir)
    if not storage.exists(path):
        return pd.DataFrame(columns=MANIFEST_COLUMNS)
    return storage.read_csv(path, keep_default_na=False,
                            dtype={"video_id": str, "error": str, "labels_csv": str})


def encode_jpeg(frame, quality):
    """JPEG bytes of an RGB uint8 frame (libjpeg quality scale, 1-100)."""
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def jpeg_shape(data):
    """(height, width) of a frame's JPEG bytes, read from their header alone."""
    width, height = Image.open(io.BytesIO(data)).size
    return height, width


def write_frames(frames_dir, videos, fps=1.0, quality=95):
    """Writes {video_id: uint8 [n, H, W, 3] pictures} as a frames folder, manifest included, as
    create_frames.py would leave them (without decode settings): synthetic frames for tests and
    benchmarks, which then go through create_tfrecords' own code."""
    rows = []
    for video_id, pictures in videos.items():
        storage.makedirs(video_dir(frames_dir, video_id))
        for index, picture in enumerate(pictures):
            storage.atomic_write(frame_path(frames_dir, video_id, index),
                                 encode_jpeg(picture, quality))
        rows.append({"video_id": video_id, "n_frames": len(pictures),
                     "width": pictures.shape[2], "height": pictures.shape[1], "fps": fps,
                     "duration_s": len(pictures) / fps, "gamma_corrected": False,
                     "status": "ok", "error": "", "settings": "", "labels_csv": ""})
    storage.write_csv(pd.DataFrame(rows, columns=MANIFEST_COLUMNS), manifest_path(frames_dir))


def settings_dict(options, quality, labelled):
    """All that decides a video's frames' pixels (`options` a video.DecodeOptions), as
    {name: value}; the manifest's `settings` column holds it as settings_text. A row whose
    settings differ from a run's is redone by it."""
    return {
        "fps": float(options.fps),
        "size": "x".join(map(str, options.size)) if options.size else "native",
        "gamma": options.gamma, "gamma_value": float(options.gamma_value),
        "white_threshold": int(options.white_threshold),
        "white_ratio": float(options.white_ratio), "quality": int(quality),
        GAMMA_RULE: bool(labelled),
    }


def settings_text(settings):
    """The one-line `settings` of a settings_dict: `name=value` pairs, space separated."""
    return " ".join(f"{name}={value}" for name, value in settings.items())


def parse_settings(text):
    """The settings_dict of a `settings` line (settings_text's inverse); ValueError when a value
    does not read as its type."""
    pairs = (item.partition("=")[::2] for item in text.split())
    return {name: _SETTING_TYPES.get(name, str)(value) for name, value in pairs}


def decode_settings(frames_dir, video_ids):
    """The decode settings (DECODE_SETTINGS) and gamma rule (`labelled`, with the `labels_csv`
    table) of the frames of `video_ids`, the most common when they differ, with how many videos
    have them (`videos`) and not (`other_videos`, unrecorded included); None when the frames
    manifest records none (older frames folders)."""
    path = manifest_path(frames_dir)
    manifest = read_manifest(frames_dir)
    if "settings" not in manifest.columns:
        return None
    rows = manifest[manifest.video_id.isin(set(video_ids))].drop_duplicates("video_id",
                                                                            keep="last")
    counts, tables = collections.Counter(), collections.defaultdict(collections.Counter)
    for row in rows.itertuples():
        if not isinstance(row.settings, str) or not row.settings.strip():
            continue
        try:
            settings = parse_settings(row.settings)
        except ValueError:
            raise InputError(f"{path}: video {row.video_id}: unreadable settings "
                             f"{row.settings!r}: re-run create_frames.py") from None
        key = tuple(settings.get(name) for name in (*DECODE_SETTINGS, GAMMA_RULE))
        counts[key] += 1
        tables[key][getattr(row, "labels_csv", "") or ""] += 1
    if not counts:
        return None
    values, n = counts.most_common(1)[0]
    return {**dict(zip((*DECODE_SETTINGS, GAMMA_RULE), values)),
            "labels_csv": tables[values].most_common(1)[0][0], "videos": n,
            "other_videos": len(rows) - n}


def decode_differences(trained, test):
    """How the decode settings and gamma rule of test frames differ from the training frames'
    (two decode_settings): ["name=test (training frames: value)"]; empty when they agree or
    either is unknown."""
    if not trained or not test:
        return []
    return [f"{name}={test.get(name)} (training frames: {trained.get(name)})"
            for name in (*DECODE_SETTINGS, GAMMA_RULE) if test.get(name) != trained.get(name)]
