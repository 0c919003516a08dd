"""Augmentation ops: shapes, dtypes, one transform for all frames, eager and inside tf.data."""

import numpy as np
import pytest
import tensorflow as tf

from chimpact.errors import InputError
from chimpact.training import augment


def sequence(dtype=tf.uint8, frames=3, size=(32, 32), seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, (frames, *size, 3))
    return tf.constant(pixels, dtype)


def in_dataset(op, frames):
    """`op` applied inside tf.data.map (graph mode), as the pipeline does."""
    return next(iter(tf.data.Dataset.from_tensors(frames).map(op)))


@pytest.mark.parametrize("name", sorted(augment.OPS))
@pytest.mark.parametrize("dtype", [tf.uint8, tf.float32])
def test_op_keeps_shape_and_dtype_eagerly_and_in_dataset(name, dtype):
    frames = sequence(dtype, size=(32, 24))
    for result in (augment.OPS[name](frames), in_dataset(augment.OPS[name], frames)):
        assert result.shape == frames.shape
        assert result.dtype == dtype


@pytest.mark.parametrize("name", sorted(augment.OPS))
def test_op_transforms_every_frame_identically(name):
    frames = tf.repeat(sequence(frames=1), 3, axis=0)
    result = augment.OPS[name](frames).numpy()
    np.testing.assert_array_equal(result[1], result[0])
    np.testing.assert_array_equal(result[2], result[0])


@pytest.mark.parametrize("name,turns", [("rot90", 1), ("rot180", 2), ("rot270", 3)])
def test_right_angle_rotations_equal_tf_image_rot90(name, turns):
    frames = sequence()
    expected = tf.image.rot90(frames, turns).numpy()
    np.testing.assert_array_equal(augment.OPS[name](frames).numpy(), expected)
    np.testing.assert_array_equal(in_dataset(augment.OPS[name], frames).numpy(), expected)


def test_diagonal_rotation_crops_away_the_black_corners():
    white = tf.fill([2, 40, 40, 3], tf.constant(255, tf.uint8))
    for name in ("rot45", "rot135", "rot225", "rot315"):
        assert augment.OPS[name](white).numpy().min() == 255


def test_blur_keeps_flat_images_and_smooths_noise():
    flat = tf.fill([1, 32, 32, 3], tf.constant(100, tf.uint8))
    np.testing.assert_array_equal(augment.OPS["blur20"](flat).numpy(), flat.numpy())
    noise = sequence(tf.float32)
    assert np.std(augment.OPS["blur10"](noise).numpy()) < np.std(noise.numpy()) / 3


def test_grayscale_makes_channels_equal():
    gray = augment.OPS["gray"](sequence()).numpy()
    np.testing.assert_array_equal(gray[..., 0], gray[..., 1])
    np.testing.assert_array_equal(gray[..., 0], gray[..., 2])


def test_augment_is_reproducible_and_applies_at_the_given_rate():
    frames = sequence(frames=2, size=(16, 16))

    def run(prob, seed=7):
        dataset = tf.data.Dataset.range(200).map(lambda i: augment.augment(
            frames, "a4", prob, tf.stack([tf.constant(seed, tf.int64), i])))
        return [f.numpy() for f in dataset]

    first, again = run(0.5), run(0.5)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    changed = np.mean([not np.array_equal(f, frames.numpy()) for f in first])
    assert 0.35 < changed < 0.65
    assert all(np.array_equal(f, frames.numpy()) for f in run(0.0))
    other_seed = run(0.5, seed=8)
    assert not all(np.array_equal(a, b) for a, b in zip(first, other_seed))


def test_sets_follow_the_reference():
    assert len(augment.AUG_SETS["a1"]) == 9
    assert augment.AUG_SETS["a2"][:9] == augment.AUG_SETS["a1"]
    assert len(augment.AUG_SETS["a2"]) == 15
    assert augment.AUG_SETS["a4"] == augment.AUG_SETS["a1"] + ["gray", "blur10", "blur20"]
    frames = sequence()
    assert augment.augment(frames, "none", 1.0, tf.constant([1, 2])) is frames


def test_unknown_set_and_too_many_views_are_input_errors():
    with pytest.raises(InputError, match="--aug=a3"):
        augment.op_names("a3")
    assert len(augment.tta_names("a1", 10)) == 10
    with pytest.raises(InputError, match="--tta=11"):
        augment.tta_names("a1", 11)
