"""Which camera deployment each survey video belongs to: without a videos table, the video's
folder under the video folder (its name for videos at the top)."""

import posixpath

import tensorflow as tf

from chimpact import storage
from chimpact.data.extract import VIDEO_EXTENSIONS


def folder_deployment(video_id, video_dir):
    """The deployment of `video_id` (a path under `video_dir`): its folder, or the name of
    `video_dir` for a video at the top."""
    folder = posixpath.dirname(video_id)
    return folder or posixpath.basename(str(video_dir).rstrip("/")) or str(video_dir)


def survey_videos(video_dir):
    """The video ids (forward-slash paths, sorted) of every video file under `video_dir`, in
    its folders too; hidden files and folders are left out."""
    found = []
    for folder, subfolders, names in tf.io.gfile.walk(video_dir):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        relative = posixpath.relpath(str(folder).replace("\\", "/"),
                                     str(video_dir).replace("\\", "/"))
        found += [name if relative == "." else f"{relative}/{name}" for name in names
                  if name.lower().endswith(VIDEO_EXTENSIONS) and not name.startswith(".")]
    return sorted(found)
