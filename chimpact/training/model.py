"""The distance regressors of the three model families and the loading of a trained model
folder, in Keras alone.

A sequence [volume_size, H, W, 3] of 0..255 frames goes through a backbone with global average
pooling (per frame then an LSTM over time; once over the frames stacked on channels; or over the
single frame), Dense(relu) and a float32 Dense(1): metres.
The model owns its preprocessing, so callers feed raw pixels. Time is folded into the batch with a
reshape: Keras' TimeDistributed would call the backbone once per frame in a Python loop.
Keras and keras.ops only, no TensorFlow (files through chimpact.storage, which imports it for
gs:// paths alone): the model builds under any Keras backend, which benchmarks/bench_train.py
uses to time it with JAX on a GPU.
"""

import contextlib

import keras
import numpy as np
from keras import layers

from chimpact import storage
from chimpact.errors import InputError
from chimpact.training import crop, model_folder
from chimpact.settings import (FAMILIES, INPUT_SCALINGS, OUTPUT_BIASES,  # noqa: F401
                               PRECISIONS)

WEIGHTS_SUFFIX = ".weights.h5"
IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)


@contextlib.contextmanager
def precision(mixed_precision):
    """Builds models under the dtype policy `mixed_precision` (none: float32) and restores the
    global policy afterwards; a model keeps the policy it was built with."""
    if mixed_precision not in PRECISIONS:
        raise InputError(f"--mixed_precision={mixed_precision}: expected one of "
                         f"{', '.join(PRECISIONS)}")
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(
        "float32" if mixed_precision == "none" else mixed_precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _load_weights(network, weights):
    """Loads a local or gs:// weights file into `network`."""
    if not storage.exists(weights):
        raise InputError(f"{weights}: weights file not found")
    with storage.local_copy(weights) as local:
        try:
            network.load_weights(local)
        except (ValueError, OSError) as e:
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InputError(f"--weights={weights}: cannot be loaded into "
                             f"{network.name}: {first_line}") from e


def _normalization(network):
    return next(layer for layer in network.layers if isinstance(layer, layers.Normalization))


def _set_normalization(network, mean, variance):
    """Sets the input Normalization layer of `network` to `mean` and `variance` per channel."""
    normalization = _normalization(network)
    normalization.adapt_mean.assign(np.broadcast_to(mean, normalization.adapt_mean.shape))
    normalization.adapt_variance.assign(
        np.broadcast_to(variance, normalization.adapt_variance.shape))
    # The layer computes with tensors snapshotted from its variables: refresh them.
    normalization.finalize_state()


def _keras_application(constructor, imagenet_normalization):
    """A backbone from keras.applications: built with weights=None so that every model has the
    same layers whatever its pretraining, then given the ImageNet weights or a weights file.

    EfficientNet V1 (`imagenet_normalization`): keras.applications adds, only for
    weights='imagenet', a rescaling by 1/sqrt(ImageNet stddev) after its Normalization layer
    (whose stored variance is the stddev, not its square); that rescaling is folded into the
    Normalization variance here for imagenet and for a weights file alike, so both get exactly
    the ImageNet normalisation. With input_scaling unit the Normalization is the identity
    instead: the convolutions see x / 255, as the reference's did. EfficientNetV2 maps 0..255
    to -1..1 with no weights of its own.
    """

    def build(shape, weights, pooling, input_scaling):
        network = constructor(include_top=False, weights=None, input_shape=shape, pooling=pooling)
        if weights == "imagenet":
            pretrained = constructor(include_top=False, weights="imagenet", input_shape=shape,
                                     pooling=pooling)
            network.set_weights(pretrained.get_weights())
        elif weights != "none":
            _load_weights(network, weights)
        if imagenet_normalization and input_scaling == "unit":
            _set_normalization(network, 0.0, 1.0)
        elif imagenet_normalization and weights != "none":
            normalization = _normalization(network)
            _set_normalization(network, keras.ops.convert_to_numpy(normalization.adapt_mean),
                               keras.ops.convert_to_numpy(normalization.adapt_variance)
                               * np.array(IMAGENET_STDDEV_RGB))
        return network

    return build


def _tiny(shape, weights, pooling, input_scaling):
    """A three-convolution encoder for CPU tests and the demo; no pretrained weights. Each
    convolution is batch-normalised before its ReLU: without it, a run can stay at the constant
    median for good (its ReLUs die). The moving statistics follow the batches with momentum 0.9,
    not Keras' 0.99: a small model trained for few steps changes fast, and lagging statistics
    made validation losses spike (and the learning rate halve) on small worlds. Synchronized
    across tf.distribute replicas, so that every replica validates with the statistics that are
    saved (under JAX the statistics are the global batch's already: Keras refuses the flag)."""
    del input_scaling  # x / 255 under either: the tiny encoder has no ImageNet statistics
    frames = keras.Input(shape)
    x = layers.Rescaling(1.0 / 255.0)(frames)
    for filters in (16, 32, 64):
        x = layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9,
                                      synchronized=keras.backend.backend() == "tensorflow")(x)
        x = layers.Activation("relu")(x)
    if pooling == "avg":
        x = layers.GlobalAveragePooling2D()(x)
    network = keras.Model(frames, x, name="tiny")
    if weights != "none":
        _load_weights(network, weights)
    return network


# The keras.applications backbones, each with whether it takes EfficientNet V1's normalisation.
APPLICATIONS = {
    "efficientnet_b0": (keras.applications.EfficientNetB0, True),
    "efficientnet_b7": (keras.applications.EfficientNetB7, True),
    "efficientnet_v2_s": (keras.applications.EfficientNetV2S, False),
    "efficientnet_v2_m": (keras.applications.EfficientNetV2M, False),
    "efficientnet_v2_l": (keras.applications.EfficientNetV2L, False),
}
# --backbone values (settings.BACKBONES): builders (shape (H, W, 3), weights none|imagenet|PATH,
# pooling avg|None, input_scaling INPUT_SCALINGS).
BACKBONES = {**{name: _keras_application(*application)
                for name, application in APPLICATIONS.items()}, "tiny": _tiny}


def check_weights(backbone, weights):
    """InputError, before anything is written, unless `backbone` can get `weights`: none, a
    weights file that exists, or imagenet fetched now (or found in Keras' cache, ~/.keras or
    KERAS_HOME), so that a machine without network fails in one line, not after a fold."""
    if weights == "none":
        return
    if weights != "imagenet":
        if not storage.exists(weights):
            raise InputError(f"--weights={weights}: weights file not found")
        return
    if backbone not in APPLICATIONS:
        raise InputError(f"--weights=imagenet: the {backbone} backbone has no pretrained weights")
    try:
        APPLICATIONS[backbone][0](include_top=False, weights="imagenet", input_shape=(64, 64, 3))
    except Exception as e:  # Keras raises a bare Exception for a failed download
        reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise InputError(f"--weights=imagenet: Keras cannot fetch {backbone}'s ImageNet weights "
                         f"({reason}): connect this machine to the network once (Keras keeps "
                         "them), or pass --weights=none or --weights=PATH of a .weights.h5 "
                         "file") from e


def adapt_stem(source, target):
    """Copies the weights of a 3-channel backbone `source` into its twin `target` built for
    3 * copies channels (frames stacked on channels): equal shapes are copied; the first
    convolution's kernel is tiled over the copies and divided by their number, per-channel
    input statistics (Normalization) are tiled. So the adapted stem on `copies` copies of a frame
    computes what the pretrained stem computes on that frame, and ImageNet weights still serve."""
    for mine, theirs in zip(target.weights, source.weights):
        value = keras.ops.convert_to_numpy(theirs)
        if tuple(mine.shape) != value.shape:
            axis = next(i for i, (a, b) in enumerate(zip(mine.shape, value.shape)) if a != b)
            copies = mine.shape[axis] // value.shape[axis]
            if mine.shape[axis] != copies * value.shape[axis]:
                raise InputError(f"{source.name}: weight {theirs.path} {value.shape} cannot be "
                                 f"adapted to {tuple(mine.shape)}")
            value = np.concatenate([value] * copies, axis=axis)
            if value.ndim == 4:  # a convolution kernel: the copies share the input's weight
                value = value / copies
        mine.assign(value)
    # Normalization layers compute with tensors snapshotted from their variables.
    for layer in target.layers:
        if isinstance(layer, layers.Normalization) and layer.built:
            layer.finalize_state()
    return target


def check_input_scaling(backbone, input_scaling):
    """InputError unless `backbone` can take its pixels scaled as `input_scaling` says: unit
    (x / 255) replaces ImageNet statistics, which EfficientNetV2 (its own -1..1) has none of."""
    if input_scaling not in INPUT_SCALINGS:
        raise InputError(f"--input_scaling={input_scaling}: expected one of "
                         f"{', '.join(INPUT_SCALINGS)}")
    if input_scaling == "unit" and backbone.startswith("efficientnet_v2"):
        raise InputError(f"--input_scaling=unit: {backbone} scales its input to -1..1 itself "
                         "and has no ImageNet statistics to replace: use imagenet")


def make_backbone(backbone, image_size, weights="none", pooling="avg", channels=3,
                  input_scaling="imagenet"):
    """An image encoder [N, H, W, channels] 0..255 -> [N, features] (pooling avg) or its feature
    map [N, h, w, features] (pooling None); weights: none|imagenet|PATH, always of the 3-channel
    backbone (adapt_stem carries them to more channels: frames stacked on channels);
    `input_scaling` (INPUT_SCALINGS): what its convolutions see of the pixels."""
    if backbone not in BACKBONES:
        raise InputError(f"--backbone={backbone}: expected one of {', '.join(BACKBONES)}")
    check_input_scaling(backbone, input_scaling)
    build = BACKBONES[backbone]
    if channels == 3 or weights == "none":
        return build((*image_size, channels), weights, pooling, input_scaling)
    return adapt_stem(build((*image_size, 3), weights, pooling, input_scaling),
                      build((*image_size, channels), "none", pooling, input_scaling))


class BoxPooling(layers.Layer):
    """The mean of a feature map [N, h, w, C] weighted by how much of each cell the box [N, 5]
    (boxes.VECTOR) covers: what the picture shows inside the box. An absent box is the whole
    frame, so its pooling is the global average."""

    def call(self, features, box):
        height, width = features.shape[1], features.shape[2]
        box = keras.ops.cast(box, features.dtype)

        def coverage(low, high, cells):
            edges = keras.ops.arange(cells + 1, dtype=features.dtype) / cells
            start = keras.ops.maximum(edges[None, :-1], low[:, None])
            end = keras.ops.minimum(edges[None, 1:], high[:, None])
            return keras.ops.relu(end - start) * cells  # [N, cells], 1 for a cell inside

        rows = coverage(box[:, 1], box[:, 3], height)
        cols = coverage(box[:, 0], box[:, 2], width)
        weights = rows[:, :, None, None] * cols[:, None, :, None]
        total = keras.ops.sum(weights, axis=(1, 2))
        return keras.ops.sum(features * weights, axis=(1, 2)) / keras.ops.maximum(total, 1e-3)


def box_geometry(box):
    """[B, 5] boxes.VECTOR -> [B, 9]: the corners, width, height, their logarithms (the apparent
    size falls as 1 / distance) and whether there is a box."""
    x1, y1, x2, y2, present = (box[:, i:i + 1] for i in range(5))
    width, height = x2 - x1, y2 - y1
    return keras.ops.concatenate([x1, y1, x2, y2, width, height, keras.ops.log(width + 0.01),
                                  keras.ops.log(height + 0.01), present], axis=1)


def check_family(family, volume_size):
    """InputError unless `family` is known and can read `volume_size` frames per sequence."""
    if family not in FAMILIES:
        raise InputError(f"--family={family}: expected one of {', '.join(FAMILIES)}")
    if family == "single" and volume_size != 1:
        raise InputError(f"--volume_size={volume_size}: the single family reads the centre "
                         "frame alone: use --volume_size=1")


def build_model(backbone="efficientnet_b0", volume_size=7, image_size=(512, 512), weights="none",
                lstm_units=1024, dense_units=300, output_bias=0.0, use_boxes=False,
                family="cnn_lstm", input_scaling="imagenet"):
    """The distance model: [B, volume_size, H, W, 3] frames in 0..255 -> [B, 1] float32 metres.

    `family` (FAMILIES) decides what the backbone sees: cnn_lstm, each frame, then an LSTM over
    time (the reference); stacked, the frames concatenated on channels into one image (2nd
    place: the stem adapted to 3 * volume_size channels); single, the one frame (1st place,
    volume_size 1). Dense(relu) and the float32 Dense(1) follow in all three.

    Follows the global Keras dtype policy (mixed_float16 / mixed_bfloat16); the output layer
    stays float32. Its bias starts at `output_bias` metres: at the training labels' median, an
    MAE model starts where a constant predictor ends instead of spending its first epochs
    climbing there (OUTPUT_BIASES).

    With `use_boxes` the inputs are {"frames", "box" [B, 5] (boxes.VECTOR)}: each image's
    features are its global average and its average inside the box (BoxPooling), and the box's
    geometry joins the sequence's features before the Dense layer.

    `input_scaling` (INPUT_SCALINGS): the backbone's own ImageNet preprocessing, or x / 255
    alone (unit), as the reference fed its EfficientNet-B0.
    """
    check_family(family, volume_size)
    height, width = image_size
    stacked = family == "stacked"
    images_per_sequence = 1 if stacked else volume_size
    encoder = make_backbone(backbone, image_size, weights, None if use_boxes else "avg",
                            3 * volume_size if stacked else 3, input_scaling)
    frames = keras.Input((volume_size, height, width, 3), name="frames")
    if stacked:  # [B, T, H, W, 3] -> [B, H, W, T * 3], frame by frame
        x = keras.ops.reshape(keras.ops.transpose(frames, (0, 2, 3, 1, 4)),
                              (-1, height, width, 3 * volume_size))
    else:
        x = keras.ops.reshape(frames, (-1, height, width, 3))
    x = encoder(x)
    if use_boxes:
        box = keras.Input((5,), name="box")
        per_image = keras.ops.reshape(
            keras.ops.repeat(box[:, None, :], images_per_sequence, axis=1), (-1, 5))
        x = keras.ops.concatenate([layers.GlobalAveragePooling2D()(x),
                                   BoxPooling(name="box_pooling")(x, per_image)], axis=-1)
    if family == "cnn_lstm":
        x = keras.ops.reshape(x, (-1, volume_size, x.shape[-1]))
        x = layers.LSTM(lstm_units, name="lstm")(x)
    if use_boxes:
        x = keras.ops.concatenate([x, keras.ops.cast(box_geometry(box), x.dtype)], axis=-1)
    x = layers.Dense(dense_units, activation="relu", name="dense")(x)
    distance = layers.Dense(1, dtype="float32", name="distance",
                            bias_initializer=keras.initializers.Constant(output_bias))(x)
    inputs = {"frames": frames, "box": box} if use_boxes else frames
    name = f"{backbone}_lstm" if family == "cnn_lstm" else f"{backbone}_{family}"
    return keras.Model(inputs, distance, name=name)


def set_jit_compile(network, jit_compile):
    """Sets how `network` (a model used for prediction only, hence never compiled) compiles its
    predict step: "auto" leaves Keras' choice, True or False forces it."""
    if jit_compile != "auto":
        network.jit_compile = jit_compile
    return network


def save_weights(network, path):
    """Writes the weights of `network` alone (no optimizer state, unlike Model.save_weights on
    a compiled model) to `path` (a .weights.h5, local or gs://) through a temporary name."""
    temporary = storage.temp_name(path[:-len(WEIGHTS_SUFFIX)]) + WEIGHTS_SUFFIX
    keras.Model(network.inputs, network.outputs, name=network.name).save_weights(temporary)
    storage.rename(temporary, path)


def build_from_config(config):
    """An untrained model with the architecture recorded in a config.json dict, under the
    folder's mixed precision policy, so that it predicts with the arithmetic it was trained with.

    Built with weights='none': the fold weights carry everything, pretrained or not.
    """
    with precision(config.get("mixed_precision", "none")):
        return build_model(config["backbone"], config["volume_size"], input_size(config), "none",
                           config["lstm_units"], config["dense_units"],
                           use_boxes=config.get("use_boxes", False),
                           family=config.get("family", "cnn_lstm"),
                           input_scaling=config.get("input_scaling", "imagenet"))


def input_size(config):
    """(height, width) of the frames a model folder's networks read: its image_size less the
    rows --crop_bottom removes."""
    return crop.model_size(tuple(config["image_size"]), config.get("crop_bottom", 0.0))


def write_untrained_folder(model_dir, config, biases=None):
    """Writes a model folder as run_train.py leaves it (config.json and a weights file per fold
    of config["folds"]), untrained, each fold's output bias 5 + fold metres (or `biases[fold]`)
    so that its distances look like distances: what benchmarks and tests time and check the
    prediction stages on without training first. Returns `model_dir`."""
    storage.makedirs(model_dir)
    model_folder.write_config(model_dir, config)
    for fold in config["folds"]:
        keras.utils.set_random_seed(fold)
        network = build_from_config(config)
        network.get_layer("distance").bias.assign([5.0 + fold if biases is None
                                                   else biases[fold]])
        storage.makedirs(model_folder.fold_dir(model_dir, fold))
        save_weights(network, model_folder.fold_weights_path(model_dir, fold))
    return model_dir


def load_fold_models(model_dir, folds=None, strategy=None):
    """{fold: keras.Model with that fold's best weights} for the trained `folds` (default all).

    Models are built in `strategy`'s scope when one is given.
    """
    config = model_folder.read_config(model_dir)
    trained = config["folds"]
    folds = trained if folds is None else [int(f) for f in folds]
    missing = sorted(set(folds) - set(trained))
    if missing:
        raise InputError(f"{model_dir}: folds {missing} were not trained (trained: {trained})")
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    models = {}
    with scope:
        for fold in folds:
            fold_model = build_from_config(config)
            _load_weights(fold_model, model_folder.fold_weights_path(model_dir, fold))
            models[fold] = fold_model
    return models

