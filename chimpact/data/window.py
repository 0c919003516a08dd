"""The sequence window: which frames make the example of a labelled second.

Records store the frames at `time + d * step` seconds for d in -frames_per_side..frames_per_side
(`2 * frames_per_side + 1` frames), clamped into the video at both ends; a model reads the
`volume_size` centred ones. The records writer, the records parser and raw-video inference all
ask this module, so the three agree frame for frame. A frame whose time lies past either end is
the first or last frame (fill clamp, the reference's) or black (fill zero, the 2nd place's).
"""

from chimpact.data import frames
from chimpact.errors import InputError

FILLS = ("clamp", "zero")


def stored_frames(frames_per_side):
    """Frames stored per example."""
    return 2 * frames_per_side + 1


def frame_window(time, fps, n_frames, frames_per_side, step):
    """Frame indices at `time + d * step` seconds for d in -frames_per_side..frames_per_side,
    clamped into the video, and for each whether it lay outside (was clamped)."""
    wanted = [frames.frame_index(time + d * step, fps)
              for d in range(-frames_per_side, frames_per_side + 1)]
    window = [min(max(i, 0), n_frames - 1) for i in wanted]
    return window, [w != i for w, i in zip(window, wanted)]


def outside_bits(outside):
    """The stored frames lying outside the video as an integer, bit d for frame d."""
    return sum(1 << d for d, out in enumerate(outside) if out)


def check_fill(fill):
    if fill not in FILLS:
        raise InputError(f"--frame_fill={fill}: expected one of {', '.join(FILLS)}")


def centre(stored, volume_size):
    """The first of the `volume_size` centred frames of `stored` ones; InputError when the
    records cannot serve that volume (even, or more frames than stored)."""
    if volume_size < 1 or volume_size % 2 == 0 or volume_size > stored:
        raise InputError(
            f"--volume_size={volume_size}: must be odd and at most the {stored} "
            "frames stored per example"
        )
    return (stored - volume_size) // 2


def volume_window(time, fps, n_frames, frames_per_side, step, volume_size):
    """The frame indices a model of `volume_size` frames reads for the second `time` (the
    centred part of the stored window), and for each whether it lay outside the video."""
    first = centre(stored_frames(frames_per_side), volume_size)
    window, outside = frame_window(time, fps, n_frames, frames_per_side, step)
    return window[first:first + volume_size], outside[first:first + volume_size]
