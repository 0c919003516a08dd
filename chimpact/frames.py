"""Layout of extracted frames: the contract between create_frames.py and create_tfrecords.py.

    FRAMES_DIR/manifest.csv                 one row per video (see MANIFEST_COLUMNS)
    FRAMES_DIR/<video_id>/<index:05d>.jpg   frame `index` shows the picture at index/fps seconds

A video's folder appears only once all its frames are written (temporary folder, then rename).
"""

import pandas as pd
import tensorflow as tf

from chimpact import io

MANIFEST = "manifest.csv"
MANIFEST_COLUMNS = [
    "video_id", "n_frames", "width", "height", "fps", "duration_s",
    "gamma_corrected", "status", "error",
]


def video_dir(frames_dir, video_id):
    """The folder holding the frames of `video_id` (its file name, extension included)."""
    return io.join(frames_dir, video_id)


def frame_name(index):
    return f"{index:05d}.jpg"


def frame_path(frames_dir, video_id, index):
    """Path of frame `index` of `video_id`."""
    return io.join(frames_dir, video_id, frame_name(index))


def frame_index(time_s, fps):
    """The index of the frame shown at `time_s` seconds."""
    return int(round(float(time_s) * float(fps)))


def manifest_path(frames_dir):
    return io.join(frames_dir, MANIFEST)


def read_manifest(frames_dir):
    """The frames manifest as a DataFrame (empty with the right columns if there is none)."""
    path = manifest_path(frames_dir)
    if not tf.io.gfile.exists(path):
        return pd.DataFrame(columns=MANIFEST_COLUMNS)
    return io.read_csv(path, keep_default_na=False, dtype={"video_id": str, "error": str})
