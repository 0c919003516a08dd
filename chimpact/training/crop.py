"""The camera's info bar cut off the bottom of the frames (run_train.py --crop_bottom).

Frames come at the model folder's image_size (records resized, raw videos decoded at it); the
bottom round(fraction * height) rows are removed before any augmentation or test-time view, on
every path (training, records inference, raw videos, the export), and the boxes' y coordinates
follow. Plain slicing and arithmetic: numpy arrays and TensorFlow tensors alike.
"""

import numpy as np

from chimpact.errors import InputError


def check(fraction):
    """InputError unless `fraction` leaves part of the frame."""
    if not 0.0 <= fraction < 1.0:
        raise InputError(f"--crop_bottom={fraction}: must be at least 0 and below 1")


def kept_rows(height, fraction):
    """Rows left of a frame `height` rows high."""
    check(fraction)
    return height - int(round(fraction * height))


def model_size(image_size, fraction):
    """(height, width) the model sees for frames of `image_size`."""
    height, width = image_size
    return kept_rows(height, fraction), width


def crop_frames(frames, fraction):
    """`frames` [..., H, W, C] without their bottom rows."""
    if not fraction:
        return frames
    return frames[..., :kept_rows(frames.shape[-3], fraction), :, :]


def crop_box(box, height, fraction):
    """Boxes [..., 5] (boxes.VECTOR, 0..1 of a frame `height` rows high) in 0..1 of the cropped
    frame: y scaled, clipped at its new bottom."""
    if not fraction:
        return box
    scale = height / kept_rows(height, fraction)
    scaled = box * np.array([1.0, scale, 1.0, scale, 1.0], np.float32)
    return (scaled + 1.0 - abs(scaled - 1.0)) / 2.0  # min(scaled, 1), for arrays and tensors
