"""Decoding camera-trap videos into frames with ffmpeg (one process per pass, no ffprobe).

Frame k of a video decoded at `fps` is the picture shown at k/fps seconds: the last decoded
picture whose timestamp is at or before that time (ffmpeg's fps filter rounding timestamps up).
A picture missing from the stream (real AVIs skip some) is therefore filled by the one before,
as a player shows it, and frames run up to the end of the last decoded picture.

A video is overexposed when more than `white_ratio` of a frame's RGB values exceed
`white_threshold`: in any of its labelled frames when there are labels, else in its median
frame, so that one camera flash does not darken a whole video. Overexposed videos are decoded a
second time through ffmpeg's `eq=gamma` (luma v -> v**(1/gamma), v in [0, 1]); a normal video is
decoded once.
"""

import collections
import contextlib
import dataclasses
import os
import re
import shutil
import subprocess
import threading
import time

import ffmpeg
import imageio_ffmpeg
import numpy as np

from chimpact import storage
from chimpact.errors import InputError
from chimpact.settings import GAMMA_MODES


# ffmpeg log lines that mean the stream held damaged or missing data.
_CORRUPT = re.compile(r"corrupt|partial file|truncat", re.IGNORECASE)
_ERROR = re.compile(r"error|invalid|not found|no such|denied|is a directory|unsupported",
                    re.IGNORECASE)
_LOG_PREFIX = re.compile(r"^(\[[^\]]*\]\s*)+")
_GENERIC = re.compile(r"^Error opening input( files?)?:\s*", re.IGNORECASE)


class VideoError(InputError):
    """A video that cannot be decoded; `reason` is one line, the message also names the file."""

    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def ffmpeg_binary():
    """The ffmpeg executable: $CHIMPACT_FFMPEG, else `ffmpeg` on PATH, else imageio-ffmpeg's."""
    return (
        os.environ.get("CHIMPACT_FFMPEG")
        or shutil.which("ffmpeg")
        or imageio_ffmpeg.get_ffmpeg_exe()
    )


@dataclasses.dataclass(frozen=True)
class DecodeOptions:
    """How a video becomes frames; the defaults are the reference solution's."""

    fps: float = 1.0
    size: tuple = None  # (width, height) of the frames, None for the native size
    gamma: str = "auto"  # auto | on | off
    gamma_value: float = 0.1
    white_threshold: int = 250
    white_ratio: float = 0.2
    timeout: float = 600.0  # seconds of decoding a video may take (both passes) before it fails
    threads: int = 0  # ffmpeg decoder threads, 0 lets ffmpeg choose

    def __post_init__(self):
        if self.gamma not in GAMMA_MODES:
            raise InputError(f"gamma={self.gamma!r} must be one of {', '.join(GAMMA_MODES)}")
        if not self.fps > 0:
            raise InputError(f"fps={self.fps} must be positive")


def white_ratio(frame, threshold):
    """Fraction of the frame's RGB values above `threshold`."""
    return np.count_nonzero(frame > threshold) / frame.size


def is_overexposed(ratios, max_white_ratio, labelled_frames=None):
    """The overexposure rule on per-frame white ratios (see the module docstring).

    `labelled_frames` are frame indices; those past the last frame are ignored, and with none
    left the median rule applies.
    """
    labelled = [i for i in (labelled_frames or ()) if 0 <= i < len(ratios)]
    if labelled:
        return any(ratios[i] > max_white_ratio for i in labelled)
    return bool(ratios) and float(np.median(ratios)) > max_white_ratio


def decode(path, options, labelled_frames=None, convert=None):
    """Decodes `path` (local or remote) into `[convert(frame) for each frame]` and an info dict.

    Frames are RGB uint8 [H, W, 3]; `convert` (default: keep the array) lets a caller encode
    each frame as it arrives instead of holding them all. info: fps, width, height, duration_s,
    n_frames, source_fps, gamma_corrected. Raises VideoError for a video that cannot be decoded.
    """
    convert = convert or (lambda frame: frame)
    with _local_video(path) as local:
        deadline = time.monotonic() + options.timeout

        def decode_pass(corrected, on_frame):
            return _decode_pass(local, path, options, corrected, on_frame, deadline)

        if options.gamma != "auto":
            corrected = options.gamma == "on"
            items, info = decode_pass(corrected, convert)
            return items, dict(info, gamma_corrected=corrected)
        ratios = []

        def measure_and_convert(frame):
            ratios.append(white_ratio(frame, options.white_threshold))
            return convert(frame)

        items, info = decode_pass(False, measure_and_convert)
        overexposed = is_overexposed(ratios, options.white_ratio, labelled_frames)
        if overexposed:
            items.clear()  # the uncorrected frames are not needed any more
            items, info = decode_pass(True, convert)
        return items, dict(info, gamma_corrected=overexposed)


def decode_video(path, labelled_frames=None, **options):
    """The frames of one video in memory: (uint8 array [N, H, W, 3], info dict).

    `options` are DecodeOptions fields (fps, size, gamma, gamma_value, white_threshold,
    white_ratio, timeout); the decisions are create_frames.py's.
    """
    frames, info = decode(path, DecodeOptions(**options), labelled_frames)
    return np.stack(frames), info


@contextlib.contextmanager
def _local_video(path):
    """A local copy of `path`, after checks that give clearer reasons than ffmpeg would."""
    with contextlib.ExitStack() as stack:
        try:
            local = stack.enter_context(storage.local_copy(path))
        except storage.io_errors() as e:
            raise VideoError(path, f"cannot copy: {one_line(e)}") from e
        if os.path.isdir(local):
            raise VideoError(path, "is a directory")
        if not os.path.exists(local):
            raise VideoError(path, "no such file")
        if not os.access(local, os.R_OK):
            raise VideoError(path, "cannot read: permission denied")
        if os.path.getsize(local) == 0:
            raise VideoError(path, "empty file (0 bytes)")
        yield local


def _header(path):
    """What `ffmpeg -i` says of a local or remote video (its stderr), or "" when it cannot."""
    try:
        with _local_video(path) as local:
            return subprocess.run([ffmpeg_binary(), "-hide_banner", "-nostdin", "-i", local],
                                  capture_output=True, text=True, errors="replace",
                                  timeout=60).stderr
    except (VideoError, subprocess.TimeoutExpired):
        return ""


def creation_time(path):
    """The container's creation_time (ISO 8601 text, as ffmpeg prints it) of a local or remote
    video, or None when it has none, cannot be read, or holds the Unix epoch (a camera whose
    clock was never set writes 1970-01-01)."""
    found = re.search(r"^\s*creation_time\s*:\s*(\S+)", _header(path), re.MULTILINE)
    return found[1] if found and not found[1].startswith("1970-01-01T00:00:00") else None


def source_size(path):
    """(height, width) of a video's pictures as its first video stream stores them, or None
    when ffmpeg cannot say."""
    found = re.search(r"Video:.*?, (\d+)x(\d+)[ ,\[]", _header(path))
    return (int(found[2]), int(found[1])) if found else None


def one_line(error):
    """The message of `error` on one line, at most 300 characters, for a manifest or a log."""
    return " ".join(str(error).split())[:300]


def _command(path, options, corrected):
    """The ffmpeg command for one pass: RGB frames at options.fps as PPM images on stdout."""
    stream = ffmpeg.input(path, **({"threads": options.threads} if options.threads else {}))
    # 'V' skips attached pictures (cover art some cameras store as a second video stream).
    video = stream["V:0"].filter("fps", fps=str(options.fps), start_time=0, round="up")
    if corrected:
        video = video.filter("eq", gamma=options.gamma_value)
    if options.size:
        video = video.filter("scale", options.size[0], options.size[1])
    output = ffmpeg.output(video, "pipe:", format="image2pipe", vcodec="ppm", pix_fmt="rgb24",
                           fps_mode="passthrough")
    global_args = ["-hide_banner", "-nostdin", "-nostats"]
    if options.threads:
        global_args += ["-filter_threads", str(options.threads)]
    return output.global_args(*global_args).compile(cmd=ffmpeg_binary())


def _decode_pass(local, path, options, corrected, convert, deadline):
    """One ffmpeg pass over `local`, killed at `deadline`: ([convert(frame)...], info)."""
    process = subprocess.Popen(_command(local, options, corrected), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    log = _Log(process.stderr)
    expired = threading.Event()

    def expire():
        expired.set()
        process.kill()

    timer = threading.Timer(max(0.0, deadline - time.monotonic()), expire)
    timer.start()
    items, shape = [], (0, 0)
    try:
        for frame in _ppm_frames(process.stdout):
            shape = frame.shape
            items.append(convert(frame))
        process.wait()
    finally:
        timer.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        log.join()
    if expired.is_set():
        raise VideoError(path, f"ffmpeg timed out after {options.timeout:g} s")
    if process.returncode != 0:
        raise VideoError(path, log.failure())
    if log.corrupt:
        raise VideoError(path, f"corrupt or truncated data (ffmpeg: {log.corrupt})")
    if not items:
        raise VideoError(path, "no frames decoded")
    header = log.header()
    n_frames = len(items)
    info = dict(
        fps=float(options.fps), width=shape[1], height=shape[0], n_frames=n_frames,
        duration_s=header.get("duration_s", n_frames / options.fps),
        source_fps=header.get("source_fps"), source_size=header.get("source_size"),
    )
    return items, info


def _ppm_frames(pipe):
    """Yields RGB arrays from a stream of binary PPM images ('P6\\nW H\\n255\\n' + pixels)."""
    while True:
        magic = pipe.readline()
        if not magic:
            return
        width, height = (int(v) for v in pipe.readline().split())
        pipe.readline()  # maxval, always 255 for rgb24
        data = pipe.read(width * height * 3)
        if len(data) < width * height * 3:
            return  # ffmpeg stopped mid-frame; its exit status says why
        yield np.frombuffer(data, np.uint8).reshape(height, width, 3)


class _Log(threading.Thread):
    """Drains an ffmpeg stderr pipe so ffmpeg never blocks on it, keeping the header, a bounded
    tail for error messages, and the first line reporting corrupt data."""

    HEAD_LINES = 200
    TAIL_LINES = 30

    def __init__(self, pipe):
        super().__init__(daemon=True)
        self._pipe = pipe
        self.head = []
        self.tail = collections.deque(maxlen=self.TAIL_LINES)
        self.corrupt = None
        self.start()

    def run(self):
        in_header = True
        for raw in self._pipe:
            line = raw.decode("utf-8", "replace").rstrip()
            if in_header and len(self.head) < self.HEAD_LINES:
                in_header = not line.startswith(("Stream mapping", "Output #"))
                self.head.append(line)
            self.tail.append(line)
            # Only messages from ffmpeg components ("[in#0/avi @ 0x..] Packet corrupt"), not
            # header lines, which may hold a file name or metadata with the same words.
            if self.corrupt is None and line.startswith("[") and _CORRUPT.search(line):
                self.corrupt = _LOG_PREFIX.sub("", line).strip()
        self._pipe.close()

    def header(self):
        """duration_s, source_fps and source_size (width, height) of the input, where ffmpeg
        printed them."""
        found = {}
        for line in self.head:
            duration = re.search(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", line)
            if duration and "duration_s" not in found:
                h, m, s = duration.groups()
                found["duration_s"] = int(h) * 3600 + int(m) * 60 + float(s)
            rate = re.search(r"Video:.*?(\d+(?:\.\d+)?)(k?) (?:fps|tbr)", line)
            if rate and "source_fps" not in found:
                found["source_fps"] = float(rate[1]) * (1000 if rate[2] else 1)
            size = re.search(r"Video:.*?, (\d+)x(\d+)\b", line)
            if size and "source_size" not in found:
                found["source_size"] = (int(size[1]), int(size[2]))
        return found

    def failure(self):
        """One line saying why ffmpeg failed, from the tail of its log."""
        if any("matches no streams" in line for line in self.tail):
            return "no video stream"
        messages = []
        for line in self.tail:
            message = _GENERIC.sub("", _LOG_PREFIX.sub("", line).strip())
            if _ERROR.search(message) and message not in messages and "input file" not in message:
                messages.append(message)
        return "ffmpeg: " + ("; ".join(messages) or "exited with an error")[:300]
