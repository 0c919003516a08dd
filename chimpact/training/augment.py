"""Sequence augmentations: one random op per example, applied identically to every frame.

Frames are [T, H, W, 3] tensors (uint8, or float in 0..255); every op keeps the shape and dtype.
Each geometric op has a box op (BOX_OPS) that moves an animal's box (chimpact.boxes.VECTOR) with
the picture: the box of the op's corners, clipped to the frame; colour ops leave boxes alone.
Only TF ops are used (no py_function), so the ops run inside tf.data on any host, and the random
choice comes from stateless ops seeded per example, so a run is reproducible.
The sets follow the reference solution: `a1` geometric, `a2` adds colour, `a4` adds blur.
"""

import functools
import math

import numpy as np
import tensorflow as tf

from chimpact.errors import InputError

CROP_FRACTION = 0.7
BLUR_SIGMA = 5.0


def _to_float(frames):
    return tf.cast(frames, tf.float32)


def _restore(values, dtype):
    """Back to the input dtype; integer pixels are rounded and clipped, not wrapped."""
    if dtype.is_integer:
        return tf.cast(tf.clip_by_value(tf.round(values), dtype.min, dtype.max), dtype)
    return tf.cast(values, dtype)


def flip_left_right(frames):
    return tf.image.flip_left_right(frames)


def flip_up_down(frames):
    return tf.image.flip_up_down(frames)


def _sample_bilinear(images, x, y):
    """images [N, H, W, C] float sampled at source points (x, y) [H', W'] (pixel centres at
    integers), bilinearly; a neighbour outside the image counts as 0, as in
    ImageProjectiveTransformV3 with fill_mode CONSTANT. Gathers only, so XLA compiles it."""
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]])
    flat = tf.reshape(padded, [-1, (height + 2) * (width + 2), channels])
    # Past one pixel outside, every neighbour is padding: clipping there changes nothing.
    x = tf.clip_by_value(x, -1.0, float(width))
    y = tf.clip_by_value(y, -1.0, float(height))
    x0, y0 = tf.floor(x), tf.floor(y)
    wx, wy = tf.reshape(x - x0, [1, -1, 1]), tf.reshape(y - y0, [1, -1, 1])
    col0, row0 = tf.cast(x0, tf.int32) + 1, tf.cast(y0, tf.int32) + 1
    col1, row1 = tf.minimum(col0 + 1, width + 1), tf.minimum(row0 + 1, height + 1)

    def at(rows, cols):
        return tf.gather(flat, tf.reshape(rows * (width + 2) + cols, [-1]), axis=1)

    top = at(row0, col0) * (1 - wx) + at(row0, col1) * wx
    bottom = at(row1, col0) * (1 - wx) + at(row1, col1) * wx
    return tf.reshape(top * (1 - wy) + bottom * wy, [-1, *x.shape, channels])


def rotate(frames, degrees):
    """Counter-clockwise rotation about the image centre, same size, black corners.

    Same convention as tf.image.rot90, which right angles of square frames use (exact); other
    angles and shapes are sampled bilinearly like tf.raw_ops.ImageProjectiveTransformV3, but
    with ops that XLA compiles (TPUs, jit_compile=True).
    """
    height, width = frames.shape[1], frames.shape[2]
    if degrees % 90 == 0 and height == width:
        return tf.image.rot90(frames, (degrees // 90) % 4)
    x, y = rotation_points(height, width, degrees)
    return _restore(_sample_bilinear(_to_float(frames), tf.constant(x), tf.constant(y)),
                    frames.dtype)


def rotation_points(height, width, degrees):
    """(x, y) [H, W] float32: where `rotate` samples each output pixel of a frame of that
    size (pixel centres at integers), computed once from the shape."""
    angle = math.radians(degrees)
    # Exact values at right angles, so that their sample points are whole pixels.
    cos, sin = (round(v) if degrees % 90 == 0 else v for v in (math.cos(angle), math.sin(angle)))
    x_offset = ((width - 1) - (cos * (width - 1) - sin * (height - 1))) / 2
    y_offset = ((height - 1) - (sin * (width - 1) + cos * (height - 1))) / 2
    cols, rows = np.meshgrid(np.arange(width, dtype=np.float32),
                             np.arange(height, dtype=np.float32))
    return ((cos * cols - sin * rows + x_offset).astype(np.float32),
            (sin * cols + cos * rows + y_offset).astype(np.float32))


def rotate_and_crop(frames, degrees):
    """Rotation by a non-right angle, then the central 70% (no black corners) resized back."""
    height, width = frames.shape[1], frames.shape[2]
    cropped = tf.image.central_crop(_to_float(rotate(frames, degrees)), CROP_FRACTION)
    return _restore(tf.image.resize(cropped, [height, width]), frames.dtype)


def grayscale(frames):
    gray = tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(_to_float(frames)))
    return _restore(gray, frames.dtype)


def grayscale_brightness(frames, delta):
    """Grayscale, then brightness shifted by `delta` on a 0..1 scale."""
    return _restore(_to_float(grayscale(frames)) + delta * 255.0, frames.dtype)


def hue(frames, delta):
    """Hue rotated by `delta` turns (tf.image.adjust_hue)."""
    return _restore(tf.image.adjust_hue(_to_float(frames) / 255.0, delta) * 255.0, frames.dtype)


def _gaussian_kernel(size, sigma):
    offsets = np.arange(size, dtype=np.float32) - (size - 1) / 2
    kernel = np.exp(-offsets ** 2 / (2 * sigma ** 2))
    return kernel / kernel.sum()


def gaussian_blur(frames, size, sigma=BLUR_SIGMA):
    """Separable Gaussian blur: two depthwise convolutions with reflected borders."""
    channels = frames.shape[-1]
    kernel = tf.constant(_gaussian_kernel(size, sigma))
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    x = tf.pad(_to_float(frames), [[0, 0], [before, after], [before, after], [0, 0]], "REFLECT")
    vertical = tf.tile(tf.reshape(kernel, [size, 1, 1, 1]), [1, 1, channels, 1])
    horizontal = tf.tile(tf.reshape(kernel, [1, size, 1, 1]), [1, 1, channels, 1])
    x = tf.nn.depthwise_conv2d(x, vertical, [1, 1, 1, 1], "VALID")
    x = tf.nn.depthwise_conv2d(x, horizontal, [1, 1, 1, 1], "VALID")
    return _restore(x, frames.dtype)


OPS = {
    "flip_lr": flip_left_right,
    "flip_ud": flip_up_down,
    "rot90": functools.partial(rotate, degrees=90),
    "rot180": functools.partial(rotate, degrees=180),
    "rot270": functools.partial(rotate, degrees=270),
    "rot45": functools.partial(rotate_and_crop, degrees=45),
    "rot135": functools.partial(rotate_and_crop, degrees=135),
    "rot225": functools.partial(rotate_and_crop, degrees=225),
    "rot315": functools.partial(rotate_and_crop, degrees=315),
    "gray": grayscale,
    "gray_bright+0.4": functools.partial(grayscale_brightness, delta=0.4),
    "gray_bright+0.8": functools.partial(grayscale_brightness, delta=0.8),
    "gray_bright-0.4": functools.partial(grayscale_brightness, delta=-0.4),
    "hue0.4": functools.partial(hue, delta=0.4),
    "hue0.8": functools.partial(hue, delta=0.8),
    "blur10": functools.partial(gaussian_blur, size=10),
    "blur20": functools.partial(gaussian_blur, size=20),
}


def _move_box(box, image_size, move):
    """`box` [..., 5] (x1, y1, x2, y2 in 0..1, present) with its corners moved by `move` (x, y in
    pixels -> x, y in pixels), as the box of the moved corners clipped to the frame."""
    height, width = image_size
    x1, y1, x2, y2, present = tf.unstack(tf.cast(box, tf.float32), axis=-1)
    xs, ys = move(tf.stack([x1, x2, x1, x2], -1) * width, tf.stack([y1, y1, y2, y2], -1) * height)
    xs, ys = tf.clip_by_value(xs / width, 0.0, 1.0), tf.clip_by_value(ys / height, 0.0, 1.0)
    return tf.stack([tf.reduce_min(xs, -1), tf.reduce_min(ys, -1), tf.reduce_max(xs, -1),
                     tf.reduce_max(ys, -1), present], axis=-1)


def corner_move(name, image_size):
    """Where op `name` moves a point of a frame of `image_size`: (x, y) pixels -> (x, y) pixels,
    in arithmetic alone (the model's test-time views, chimpact.predict.views, share it in
    keras.ops); None for the ops that move nothing. A rotation's is `rotate`'s (counter-clockwise
    about the centre), then the central crop of rotate_and_crop at angles off the right ones."""
    height, width = image_size
    if name == "flip_lr":
        return lambda x, y: (width - x, y)
    if name == "flip_ud":
        return lambda x, y: (x, height - y)
    if not name.startswith("rot"):
        return None
    degrees = int(name[3:])
    crop = 1.0 if degrees % 90 == 0 else CROP_FRACTION
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)

    def move(x, y):
        dx, dy = x - width / 2, y - height / 2
        x, y = cos * dx + sin * dy, -sin * dx + cos * dy
        return width / 2 + x / crop, height / 2 + y / crop

    return move


def _box_op(name):
    def box_op(box, image_size):
        move = corner_move(name, image_size)
        return box if move is None else _move_box(box, image_size, move)

    return box_op


# name -> function(box [..., 5], (height, width)) -> the box where OPS[name] moves the animal.
BOX_OPS = {name: _box_op(name) for name in OPS}

_A1 = ["flip_lr", "flip_ud", "rot90", "rot180", "rot270", "rot45", "rot135", "rot225", "rot315"]
AUG_SETS = {
    "none": [],
    "a1": _A1,
    "a2": _A1 + ["gray", "gray_bright+0.4", "gray_bright+0.8", "gray_bright-0.4",
                 "hue0.4", "hue0.8"],
    "a4": _A1 + ["gray", "blur10", "blur20"],
}


def op_names(aug):
    """The op names of augmentation set `aug`; InputError for an unknown set."""
    if aug not in AUG_SETS:
        raise InputError(f"--aug={aug}: expected one of {', '.join(AUG_SETS)}")
    return AUG_SETS[aug]


def augment(frames, aug, prob, seed, box=None):
    """With probability `prob`, one op of set `aug` drawn uniformly, applied to all frames (and
    to the animal's `box` when given: then returns (frames, box)).

    `seed` is a stateless seed (int tensor of shape [2]): the same seed gives the same result.
    """
    names = op_names(aug)
    if not names or prob <= 0:
        return frames if box is None else (frames, box)
    apply_seed, choice_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    chosen = tf.random.stateless_uniform([], choice_seed, 0, len(names), dtype=tf.int32)
    applied = tf.random.stateless_uniform([], apply_seed) < prob
    branch = tf.where(applied, chosen, len(names))
    if box is None:
        branches = [functools.partial(OPS[name], frames) for name in names] + [lambda: frames]
        return tf.ensure_shape(tf.switch_case(branch, branches), frames.shape)
    image_size = frames.shape[1:3]

    def view(name):
        return lambda: (OPS[name](frames), BOX_OPS[name](box, image_size))

    branches = [view(name) for name in names] + [lambda: (frames, tf.cast(box, tf.float32))]
    viewed, moved = tf.switch_case(branch, branches)
    return tf.ensure_shape(viewed, frames.shape), tf.ensure_shape(moved, box.shape)


IDENTITY = "identity"


def tta_names(aug, count):
    """The names of the first `count` test-time views: identity, then the ops of set `aug`."""
    names = op_names(aug)
    if not 1 <= count <= len(names) + 1:
        raise InputError(f"--tta={count}: must be 1..{len(names) + 1} for --aug={aug}")
    return [IDENTITY] + names[:count - 1]
