"""Decoding camera-trap videos into frames with ffmpeg."""

import os
import shutil

import imageio_ffmpeg


def ffmpeg_binary():
    """The ffmpeg executable: $CHIMPACT_FFMPEG, else `ffmpeg` on PATH, else imageio-ffmpeg's."""
    return (
        os.environ.get("CHIMPACT_FFMPEG")
        or shutil.which("ffmpeg")
        or imageio_ffmpeg.get_ffmpeg_exe()
    )
