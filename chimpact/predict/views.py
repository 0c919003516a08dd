"""The test-time views inside the prediction model, in keras.ops: training.augment's geometric
ops (flips, rotations, the central crop after a rotation by a non-right angle) and their box
moves, as one graph under TensorFlow and JAX, compiled with XLA or not.

training.augment keeps the TensorFlow ops that tf.data runs while training (under either
backend, tf.data reads the records); tests/test_infer.py holds these views to them, pixel for
pixel and box for box. The sample points of a rotation depend on the frame's shape alone, so
they are computed once, in numpy, and the graph only gathers and weighs.
"""

import functools

import keras
import numpy as np
from keras import ops

from chimpact.training import augment


def _restore(values, dtype):
    """Back to `dtype`; uint8 pixels are rounded and clipped, not wrapped."""
    if dtype == "uint8":
        return ops.cast(ops.clip(ops.round(values), 0, 255), dtype)
    return ops.cast(values, dtype)


def _dtype(frames):
    return keras.backend.standardize_dtype(frames.dtype)


def _rotation_samples(height, width, degrees):
    """For each output pixel, its four source pixels in the zero-padded frame (flat indices
    [4, H*W]) and their bilinear weights [4, H*W]: augment.rotate's sample points."""
    x, y = augment.rotation_points(height, width, degrees)
    x, y = np.clip(x, -1.0, float(width)), np.clip(y, -1.0, float(height))
    x0, y0 = np.floor(x), np.floor(y)
    wx, wy = (x - x0).ravel(), (y - y0).ravel()
    col0, row0 = x0.astype(np.int32).ravel() + 1, y0.astype(np.int32).ravel() + 1
    col1, row1 = np.minimum(col0 + 1, width + 1), np.minimum(row0 + 1, height + 1)
    indices = np.stack([row0 * (width + 2) + col0, row0 * (width + 2) + col1,
                        row1 * (width + 2) + col0, row1 * (width + 2) + col1])
    weights = np.stack([(1 - wx) * (1 - wy), wx * (1 - wy), (1 - wx) * wy, wx * wy])
    return indices, weights.astype(np.float32)


def rotate(frames, degrees):
    """Counter-clockwise rotation of [N, H, W, C] frames about their centre, same size, black
    corners (augment.rotate)."""
    height, width, channels = frames.shape[1], frames.shape[2], frames.shape[3]
    if degrees % 90 == 0 and height == width:
        return ops.rot90(frames, k=(degrees // 90) % 4, axes=(1, 2))
    indices, weights = _rotation_samples(height, width, degrees)
    padded = ops.pad(ops.cast(frames, "float32"), [[0, 0], [1, 1], [1, 1], [0, 0]])
    flat = ops.reshape(padded, (-1, (height + 2) * (width + 2), channels))
    sampled = sum(ops.take(flat, indices[k], axis=1) * weights[k][None, :, None]
                  for k in range(4))
    return _restore(ops.reshape(sampled, (-1, height, width, channels)), _dtype(frames))


def rotate_and_crop(frames, degrees):
    """Rotation, then the central augment.CROP_FRACTION resized back (augment.rotate_and_crop:
    tf.image.central_crop's rows and columns, bilinear resizing without antialiasing)."""
    height, width = frames.shape[1], frames.shape[2]
    top = int((height - height * augment.CROP_FRACTION) / 2)
    left = int((width - width * augment.CROP_FRACTION) / 2)
    rotated = ops.cast(rotate(frames, degrees), "float32")
    cropped = rotated[:, top:height - top, left:width - left]
    resized = ops.image.resize(cropped, (height, width), interpolation="bilinear",
                               antialias=False)
    return _restore(resized, _dtype(frames))


def _move_box(box, image_size, move):
    """`box` [..., 5] (x1, y1, x2, y2 in 0..1, present) with its corners moved by `move`, as the
    box of the moved corners clipped to the frame (augment._move_box)."""
    height, width = image_size
    box = ops.cast(box, "float32")
    x1, y1, x2, y2, present = (box[..., i] for i in range(5))
    xs, ys = move(ops.stack([x1, x2, x1, x2], -1) * width,
                  ops.stack([y1, y1, y2, y2], -1) * height)
    xs, ys = ops.clip(xs / width, 0.0, 1.0), ops.clip(ys / height, 0.0, 1.0)
    return ops.stack([ops.min(xs, -1), ops.min(ys, -1), ops.max(xs, -1), ops.max(ys, -1),
                      present], axis=-1)


def _box_view(box, image_size, name):
    return _move_box(box, image_size, augment.corner_move(name, image_size))


def _views():
    """{name: (frames view, box view)} of augment's `a1` set."""
    frames_views = {"flip_lr": functools.partial(ops.flip, axis=2),
                    "flip_ud": functools.partial(ops.flip, axis=1)}
    for degrees in (90, 180, 270):
        frames_views[f"rot{degrees}"] = functools.partial(rotate, degrees=degrees)
    for degrees in (45, 135, 225, 315):
        frames_views[f"rot{degrees}"] = functools.partial(rotate_and_crop, degrees=degrees)
    return {name: (view, functools.partial(_box_view, name=name))
            for name, view in frames_views.items()}


VIEWS = _views()


def tta_views(aug, count):
    """The first `count` test-time views of set `aug` (augment.tta_names): (frames views, box
    views), the identity first."""
    names = augment.tta_names(aug, count)[1:]
    return ([lambda frames: frames] + [VIEWS[name][0] for name in names],
            [lambda box, image_size: box] + [VIEWS[name][1] for name in names])
