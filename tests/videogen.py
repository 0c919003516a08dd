"""Test videos whose pictures encode their own frame number, made with the project's ffmpeg.

Each picture's top half is a 4x3 grid of cells, one bit of the frame number each (dark = 0,
light = 1, both below any white threshold); the bottom half is mid-grey, or white in an
overexposed video. `frame_number` reads the number back from a decoded, possibly resized and
JPEG-compressed picture, so a test can tell exactly which source frame an extracted one shows.
"""

import subprocess

import numpy as np

from chimpact.data.video import ffmpeg_binary

BITS = 12
ROWS, COLS = 3, 4
DARK, LIGHT, GREY, WHITE = 40, 170, 128, 255

# codec name -> (ffmpeg encoder, container extension, extra output options)
CODECS = {
    "h264": ("libx264", ".mp4", ["-preset", "ultrafast"]),
    "mpeg4": ("mpeg4", ".avi", ["-q:v", "3"]),
    "msmpeg4": ("msmpeg4", ".asf", ["-q:v", "3"]),
}


def picture(number, size, overexposed=False, flash=False):
    """The RGB picture of frame `number` at `size` (width, height)."""
    width, height = size
    if flash:
        return np.full((height, width, 3), WHITE, np.uint8)
    image = np.full((height, width, 3), WHITE if overexposed else GREY, np.uint8)
    rows = np.linspace(0, height // 2, ROWS + 1).astype(int)
    cols = np.linspace(0, width, COLS + 1).astype(int)
    for bit in range(BITS):
        r, c = divmod(bit, COLS)
        on = (number >> (BITS - 1 - bit)) & 1
        image[rows[r]:rows[r + 1], cols[c]:cols[c + 1]] = LIGHT if on else DARK
    return image


def frame_number(image):
    """Reads back the frame number drawn by `picture` from an RGB array of any size."""
    height, width = image.shape[:2]
    grey = image.astype(np.float32).mean(axis=2)
    rows = np.linspace(0, height // 2, ROWS + 1)
    cols = np.linspace(0, width, COLS + 1)
    number = 0
    for bit in range(BITS):
        r, c = divmod(bit, COLS)
        y0, y1 = rows[r], rows[r + 1]
        x0, x1 = cols[c], cols[c + 1]
        # The central half of the cell, away from edges blurred by compression and resizing.
        cell = grey[int(y0 + (y1 - y0) / 4):int(np.ceil(y1 - (y1 - y0) / 4)),
                    int(x0 + (x1 - x0) / 4):int(np.ceil(x1 - (x1 - x0) / 4))]
        number = (number << 1) | int(cell.mean() > (DARK + LIGHT) / 2)
    return number


def make_video(path, seconds, fps=30, size=(96, 64), codec="h264", overexposed=False,
               flash_seconds=()):
    """Writes a `seconds`-long video at `fps` to `path`; returns the path.

    Frame n shows the number n. Frames within the listed `flash_seconds` are all white, like a
    camera flash. Odd sizes need a codec that allows them (mpeg4, msmpeg4, or h264 in 4:4:4).
    """
    encoder, _, options = CODECS[codec]
    width, height = size
    pix_fmt = "yuv444p" if codec == "h264" and (width % 2 or height % 2) else "yuv420p"
    n_frames = int(round(seconds * fps))
    command = [
        ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps),
        "-i", "pipe:", "-c:v", encoder, "-pix_fmt", pix_fmt, *options, str(path),
    ]
    frames = b"".join(
        picture(n, size, overexposed, flash=int(n / fps) in flash_seconds).tobytes()
        for n in range(n_frames))
    subprocess.run(command, input=frames, check=True, capture_output=True)
    return path
