"""The distance models: what each family's backbone sees, shapes, dtypes, backbones and weights,
and the presets of models/."""

import pathlib
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from chimpact.errors import InputError
from chimpact.field import videos
from chimpact.training import model
from script_flags import define_flags

MODELS = pathlib.Path(__file__).resolve().parents[1] / "models"
PRESET = re.compile(r"^(down|full)-(a[124])p(\d\d)-f(\d)s(\d)$")


@pytest.fixture(autouse=True)
def seeded():
    """Models built from seed 0: unseeded, a tiny head of 4 ReLUs now and then comes out dead
    (a constant prediction, which no frame can change)."""
    keras.utils.set_random_seed(0)


def frames(batch=2, volume=3, size=(32, 32), dtype=np.uint8):
    return np.random.default_rng(0).integers(0, 256, (batch, volume, *size, 3)).astype(dtype)


def test_tiny_model_maps_uint8_sequences_to_float32_metres():
    network = model.build_model("tiny", 3, (32, 32), lstm_units=8, dense_units=4)
    out = network(frames())
    assert out.shape == (2, 1) and out.dtype == tf.float32
    np.testing.assert_allclose(network(frames(dtype=np.float32)), out, rtol=1e-5)
    # Time is folded into the batch: one backbone call, no per-frame TimeDistributed loop.
    assert not any(isinstance(layer, keras.layers.TimeDistributed) for layer in network.layers)
    assert sum(layer.name == "tiny" for layer in network.layers) == 1


def _backbone(network):
    """The image encoder of a distance model: its one nested keras.Model."""
    (encoder,) = [layer for layer in network.layers if isinstance(layer, keras.Model)]
    return encoder


def _head(network, features):
    """The layers after the backbone of a model without LSTM, applied to `features` by hand."""
    return np.asarray(network.get_layer("distance")(network.get_layer("dense")(features)))


def test_stacked_family_sees_each_sequence_as_one_image_of_its_frames_on_channels():
    network = model.build_model("tiny", 5, (32, 32), lstm_units=8, dense_units=4,
                                family="stacked")
    sequences = frames(volume=5)
    assert _backbone(network).input.shape == (None, 32, 32, 15)
    assert not any(isinstance(layer, keras.layers.LSTM) for layer in network.layers)
    # frame k is channels 3k..3k+2 of the one image, the head reads the backbone's features
    image = np.concatenate([sequences[:, k] for k in range(5)], axis=-1)
    np.testing.assert_allclose(np.asarray(network(sequences)),
                               _head(network, _backbone(network)(image)), rtol=1e-5, atol=1e-5)


def test_single_family_sees_the_centre_frame_alone():
    network = model.build_model("tiny", 1, (32, 32), lstm_units=8, dense_units=4,
                                family="single")
    assert _backbone(network).input.shape == (None, 32, 32, 3)
    assert not any(isinstance(layer, keras.layers.LSTM) for layer in network.layers)
    sequence = frames(volume=1)
    np.testing.assert_allclose(np.asarray(network(sequence)),
                               _head(network, _backbone(network)(sequence[:, 0])), rtol=1e-5,
                               atol=1e-5)
    # through the window raw videos and records share: only the labelled second's frame counts
    config = dict(frames_per_side=2, step=1, volume_size=1, frame_fill="clamp")
    pictures = np.random.default_rng(1).integers(0, 256, (6, 32, 32, 3)).astype(np.uint8)

    def predict(pictures):
        return np.asarray(network(videos.model_sequences(config, pictures, [3], 1.0)))

    before = predict(pictures)
    others = pictures.copy()
    others[[1, 2, 4, 5]] = 255 - others[[1, 2, 4, 5]]
    np.testing.assert_allclose(predict(others), before, rtol=1e-6)
    centre = pictures.copy()
    centre[3] = 255 - centre[3]
    assert np.abs(predict(centre) - before).max() > 1e-4


def test_cnn_lstm_family_reads_each_frame_then_time_in_order():
    network = model.build_model("tiny", 3, (32, 32), lstm_units=8, dense_units=4)
    assert _backbone(network).input.shape == (None, 32, 32, 3)
    assert isinstance(network.get_layer("lstm"), keras.layers.LSTM)
    sequences = frames()
    # the same frames in another order: another sequence to an LSTM (not to a mean over time)
    assert np.abs(np.asarray(network(sequences[:, ::-1])) - np.asarray(network(sequences))
                  ).max() > 1e-5


def test_each_sequence_is_predicted_independently_of_its_batch():
    network = model.build_model("tiny", 3, (32, 32), lstm_units=8, dense_units=4)
    batch = frames(batch=3)
    np.testing.assert_allclose(network(batch[1:2]), network(batch)[1:2], rtol=1e-5, atol=1e-6)


def test_mixed_precision_keeps_a_float32_output():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        network = model.build_model("tiny", 3, (32, 32), lstm_units=8, dense_units=4)
        assert network.get_layer("lstm").compute_dtype == "float16"
        assert network(frames()).dtype == tf.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_unknown_backbone_and_missing_weights_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="--backbone=resnet"):
        model.build_model("resnet", 3, (32, 32))
    with pytest.raises(InputError, match="not found"):
        model.build_model("tiny", 3, (32, 32), weights=str(tmp_path / "none.weights.h5"))
    with pytest.raises(InputError, match="imagenet"):
        model.build_model("tiny", 3, (32, 32), weights="imagenet")


def _normalization(network):
    return next(layer for layer in network.layers if isinstance(layer, keras.layers.Normalization))


@pytest.mark.slow
def test_efficientnet_b0_builds_with_no_weights_and_from_a_weights_file(tmp_path):
    """A weights file gets the ImageNet normalisation keras.applications gives 'imagenet':
    Keras stores the stddev as the Normalization variance and rescales by 1/sqrt(stddev)."""
    network = model.build_model("efficientnet_b0", 3, (32, 32), weights="none",
                                lstm_units=8, dense_units=4)
    assert network(frames()).shape == (2, 1)

    backbone = model.make_backbone("efficientnet_b0", (32, 32), "none")
    norm = _normalization(backbone)
    norm.adapt_mean.assign([0.485, 0.456, 0.406])
    norm.adapt_variance.assign([0.229, 0.224, 0.225])
    norm.finalize_state()
    for path in (str(tmp_path / "b0.weights.h5"), "ram://weights/b0.weights.h5"):
        backbone.save_weights(path)
        loaded = model.make_backbone("efficientnet_b0", (32, 32), path)
        np.testing.assert_array_equal(loaded.get_layer("stem_conv").kernel.numpy(),
                                      backbone.get_layer("stem_conv").kernel.numpy())
        pixels = frames(batch=1, volume=1, dtype=np.float32)[0]
        normalised = keras.Model(loaded.input, _normalization(loaded).output)(pixels)
        expected = (pixels / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
        np.testing.assert_allclose(normalised, expected, rtol=1e-4, atol=1e-4)
    full = model.build_model("efficientnet_b0", 3, (32, 32), weights=path,
                             lstm_units=8, dense_units=4)
    assert full(frames()).shape == (2, 1)


@pytest.mark.slow
def test_unit_input_scaling_feeds_x_over_255_whatever_the_weights(tmp_path):
    """input_scaling unit: the convolutions see x / 255, as the reference fed EfficientNet-B0,
    from a weights file holding ImageNet statistics too; EfficientNetV2 has none to replace."""
    backbone = model.make_backbone("efficientnet_b0", (32, 32), "none")
    _normalization(backbone).adapt_mean.assign([0.485, 0.456, 0.406])
    _normalization(backbone).adapt_variance.assign([0.229, 0.224, 0.225])
    path = str(tmp_path / "b0.weights.h5")
    backbone.save_weights(path)
    pixels = frames(batch=1, volume=1, dtype=np.float32)[0]
    for weights in ("none", path):
        loaded = model.make_backbone("efficientnet_b0", (32, 32), weights,
                                     input_scaling="unit")
        normalised = keras.Model(loaded.input, _normalization(loaded).output)(pixels)
        np.testing.assert_allclose(normalised, pixels / 255, rtol=1e-6, atol=1e-6)
    with pytest.raises(InputError, match="--input_scaling=unit: efficientnet_v2_s scales"):
        model.build_model("efficientnet_v2_s", 3, (32, 32), input_scaling="unit")


def parse_preset(path, *overrides):
    """The run_train.py flags that `path` sets (nested flagfiles resolved from the repo root)."""
    program = define_flags(MODELS.parent / "run_train.py")

    flags.FLAGS.unparse_flags()
    flags.FLAGS(["run_train.py", f"--flagfile={path}", *overrides])
    # By name: a second run of the script registers fresh copies of the flags it defined.
    own = {flag.name for flag in flags.FLAGS.get_flags_for_module(program["__name__"])}
    return {name: flags.FLAGS[name].value for name in own}


@pytest.mark.slow
def test_every_preset_parses_and_builds_its_model_small(monkeypatch):
    monkeypatch.chdir(MODELS.parent)
    presets = sorted(p for p in MODELS.glob("*.flags") if PRESET.match(p.stem))
    assert len(presets) == 12
    built = {}
    families = [MODELS / "stacked-v2l-270x480.flags", MODELS / "single-b7-360x640.flags"]
    for path in presets + sorted(MODELS.glob("demo*.flags")) + families:
        values = parse_preset(f"models/{path.name}", "--image_size=32,32")
        match = PRESET.match(path.stem)
        if match:
            _, aug, prob, volume, step = match.groups()
            assert (values["aug"], values["aug_prob"], values["volume_size"], values["step"]) == (
                aug, int(prob) / 100, int(volume), int(step))
            assert (values["backbone"], values["weights"], values["batch_size"],
                    values["epochs"], values["lstm_units"], values["dense_units"],
                    values["input_scaling"]) == (
                "efficientnet_b0", "imagenet", 96, 40, 1024, 300, "unit")
            assert parse_preset(f"models/{path.name}")["image_size"] == ["512", "512"]
        if path in families:
            family, height, width = re.match(r"(\w+)-\w+-(\d+)x(\d+)$", path.stem).groups()
            assert (values["family"], parse_preset(f"models/{path.name}")["image_size"]) == (
                family, [height, width])
        key = (values["backbone"], values["volume_size"], values["lstm_units"],
               values["dense_units"], values["family"])
        if key not in built:
            # weights=none: no download in tests; the architecture is the same.
            built[key] = model.build_model(key[0], key[1], (32, 32), "none", key[2], key[3],
                                           family=key[4])
        out = built[key](frames(batch=1, volume=key[1]))
        assert out.shape == (1, 1)
    flags.FLAGS.unparse_flags()
