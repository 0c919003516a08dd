"""What TPUs and GPUs do that CPUs do not: XLA compilation of every device graph, mixed precision
from training to submission. Keras never compiles with XLA on a CPU-only machine unless told to,
so these tests tell it to (jit_compile=True), as a TPU always does."""

import json
import math
import shutil

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from chimpact import storage
from chimpact.predict import infer
from chimpact.predict.jobs import run_infer
from chimpact.training import augment, checkpoint, model_folder, step, train
from model_checks import TINY, finish, last_json_line, start_python
from sequence_records import write_records

ANGLES = (10, 45, 90, 135, 180, 225, 270, 315)


def frames(size, seed=0, count=3):
    return tf.constant(np.random.default_rng(seed).integers(0, 256, (count, *size, 3)), tf.uint8)


def projective_rotation(frames, degrees):
    """The rotation the views used before: tf.raw_ops.ImageProjectiveTransformV3 (not XLA)."""
    height, width = frames.shape[1], frames.shape[2]
    cos, sin = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    x_offset = ((width - 1) - (cos * (width - 1) - sin * (height - 1))) / 2
    y_offset = ((height - 1) - (sin * (width - 1) + cos * (height - 1))) / 2
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(frames, tf.float32),
        transforms=tf.constant([[cos, -sin, x_offset, sin, cos, y_offset, 0.0, 0.0]]),
        output_shape=tf.constant([height, width]), fill_value=tf.constant(0.0),
        interpolation="BILINEAR", fill_mode="CONSTANT")


@pytest.mark.parametrize("size", [(32, 32), (27, 48)])
def test_rotations_equal_the_projective_transform_they_replace(size):
    pixels = tf.cast(frames(size), tf.float32)
    for degrees in ANGLES:
        np.testing.assert_allclose(augment.rotate(pixels, degrees).numpy(),
                                   projective_rotation(pixels, degrees).numpy(), atol=1e-3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="ImageProjectiveTransformV3"):
        tf.function(lambda f: projective_rotation(f, 45), jit_compile=True)(pixels)


@pytest.mark.parametrize("size", [(32, 32), (24, 40)])
@pytest.mark.parametrize("name", sorted(augment.OPS) + [augment.IDENTITY])
def test_every_view_and_augmentation_compiles_alone_with_xla(name, size):
    op = augment.OPS.get(name, lambda f: f)
    sequence = frames(size)
    eager = op(sequence).numpy().astype(int)
    compiled = tf.function(op, jit_compile=True)(sequence).numpy().astype(int)
    assert compiled.shape == eager.shape
    # XLA may round a float differently: at most one grey level, on few pixels.
    assert np.abs(compiled - eager).max() <= 1 and np.mean(compiled != eager) < 0.01


@pytest.mark.slow
def test_one_epoch_under_xla_in_bfloat16_predicts_as_without(tmp_path):
    """mixed_bfloat16, a TPU's precision: the tiny backbone's training, validation and prediction
    graphs compiled with XLA, FoldAverage's 10 views under XLA and the export marked for XLA give
    the non-XLA predictions; EfficientNet-B0's training step compiled with XLA (its one compile,
    about 33 CPU seconds: the costly one) computes the loss and the update that the step without
    XLA does. In float32 the same graphs compile with XLA in other tests: the families' training
    and export (test_families), the box model's 10 views against eager (test_field), B0's
    forward graph (test_reference_import's imported fold 0)."""
    write_records(tmp_path / "rec", (8, 8), image_size=(32, 32))
    results = last_json_line(finish(start_python(
        ["tests/xla_training.py", str(tmp_path / "rec"), str(tmp_path / "bf16"),
         "tiny:mixed_bfloat16:10", "efficientnet_b0:mixed_bfloat16:step"]), timeout=600))
    tiny = results["tiny:mixed_bfloat16:10"]
    # Measured (XLA:CPU against no XLA, predictions near 15.5 m): at most 3.1e-4 m apart (float32:
    # 1e-6 m). Swapping any two of the views moves some prediction by 2.0e-3 m or more: the
    # tolerance lies between, so a mixed-up view fails.
    assert tiny["xla"] is True and tiny["xla_predictor"]
    assert np.isfinite(tiny["losses"]).all() and np.isfinite(tiny["mae"])
    assert tiny["mae"] == pytest.approx(tiny["val_losses"][0], rel=1e-3)
    with_xla, without = np.array(tiny["with_xla"]), np.array(tiny["without"])
    assert with_xla.shape == without.shape == (8, 10)
    np.testing.assert_allclose(with_xla, without, atol=1e-3, rtol=0)
    np.testing.assert_allclose(tiny["served"], with_xla.mean(axis=1), atol=1e-3, rtol=0)

    stepped = results["efficientnet_b0:mixed_bfloat16:step"]
    # Measured against the eager step: the losses 1.3% apart, B0's stochastic depth drawing
    # other masks in the two steps; the predictions after the step 1.5e-3 m apart.
    assert stepped["xla"] is True and np.isfinite(stepped["losses"]).all()
    assert stepped["losses"][0] == pytest.approx(stepped["losses"][1], rel=0.03)
    np.testing.assert_allclose(stepped["with_xla"], stepped["without"], rtol=0, atol=1e-2)


@pytest.mark.slow
def test_bfloat16_folder_predicts_its_oof_rows_as_training_did(tmp_path):
    write_records(tmp_path / "rec", (10, 9))
    out = tmp_path / "bf16"
    train.train(tmp_path / "rec", out, folds=[0, 1], epochs=2, batch_size=4,
                mixed_precision="mixed_bfloat16", verbose=0, **TINY)
    oof = pd.read_csv(out / "oof.csv")
    run_infer(str(out), oof=True, batch_size=3)
    again = oof.merge(pd.read_csv(out / model_folder.OOF_TTA), on=["video_id", "time"],
                      suffixes=("", "_infer"))
    assert len(again) == len(oof) == 19
    np.testing.assert_allclose(again.pred_infer, again.pred, atol=1e-5)

    # The same weights predicted in float32 (what run_infer.py did before) differ by ten times
    # the tolerance above: the test would see a precision mismatch.
    shutil.copytree(out, tmp_path / "f32")
    config = model_folder.read_config(str(out))
    storage.atomic_write(str(tmp_path / "f32" / model_folder.CONFIG),
                    json.dumps({**config, "mixed_precision": "none"}))
    float32 = infer.predict_oof(str(tmp_path / "f32"))
    assert np.abs(float32.pred.to_numpy() - oof.pred.to_numpy()).max() > 1e-4


class Killed(Exception):
    """The job dying."""


def _loss_scale(network):
    """(index among the optimizer's variables, variable) of a compiled network's loss scale."""
    return next((i, v) for i, v in enumerate(network.optimizer.variables)
                if v.path.endswith("dynamic_scale"))


@pytest.mark.slow
def test_float16_trains_with_loss_scaling_and_resumes_with_it(tmp_path, monkeypatch, caplog):
    write_records(tmp_path / "rec", (6, 6))
    run = dict(tfrec_dir=tmp_path / "rec", out_dir=tmp_path / "fp16", folds=[0], batch_size=4,
               mixed_precision="mixed_float16", verbose=0, **TINY)
    path = str(tmp_path / "fp16" / "fold0" / model_folder.CHECKPOINT)

    def dies(*args):
        raise Killed

    monkeypatch.setattr(train, "_predict_fold", dies)
    with pytest.raises(Killed):
        train.train(epochs=1, **run)
    progress, arrays = checkpoint.load(path)
    assert progress["epoch"] == 1
    settings = {**model_folder.read_config(str(tmp_path / "fp16")), "lr": 1e-3}
    network = step.compiled_model(settings, steps_per_epoch=3)
    assert isinstance(network.optimizer, keras.optimizers.LossScaleOptimizer)
    checkpoint.restore(network, arrays, path)
    index, scale = _loss_scale(network)
    assert float(scale) == 2.0 ** 15  # Keras' initial scale: three steps neither grow nor halve it
    # As if overflowing steps had halved it seven times before the kill: the checkpoint holds 256.
    scale.assign(256.0)
    checkpoint.save(path, network, progress)
    name = sorted(n for n in arrays if n.startswith("optimizer/"))[index]
    assert checkpoint.load(path)[1][name] == 256.0

    caplog.set_level("INFO")
    with pytest.raises(Killed):
        train.train(epochs=2, **run)
    assert "fold 0: resuming at epoch 2" in caplog.messages
    progress, arrays = checkpoint.load(path)
    assert progress["epoch"] == 2
    # the resumed optimizer scaled its losses by 256 (halved again at most, by an overflow)
    assert arrays[name] in (128.0, 256.0), arrays[name]
    monkeypatch.undo()
    scores = train.train(epochs=2, **run)
    history = pd.read_csv(tmp_path / "fp16" / "fold0" / "history.csv")
    assert list(history.epoch) == [0, 1] and np.isfinite(history.loss).all()
    assert np.isfinite(scores["overall"]["mae"])
