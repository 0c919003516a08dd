"""The CNN-LSTM distance regressor and the loading of a trained model folder, in Keras alone.

A sequence [volume_size, H, W, 3] of 0..255 frames goes through a frame encoder (a backbone with
global average pooling), an LSTM over time, Dense(relu) and a float32 Dense(1): metres.
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

from chimpact import model_folder, storage
from chimpact.errors import InputError

WEIGHTS_SUFFIX = ".weights.h5"
IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)
# --output_bias values: where the model's output starts, the training folds' median distance or
# zero (Keras' default, which the reference had).
OUTPUT_BIASES = ("median", "zero")
# --mixed_precision values: the Keras dtype policy a model folder is trained and predicted under.
PRECISIONS = ("none", "mixed_float16", "mixed_bfloat16")


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


def _efficientnet_b0(image_size, weights, pooling="avg"):
    """EfficientNet-B0 without top, 0..255 in, 1280 features out: pooled, or the feature map
    when `pooling` is None.

    Always built with weights=None so that every model has the same layers whatever its
    pretraining. keras.applications adds, only for weights='imagenet', a rescaling by
    1/sqrt(ImageNet stddev) after its Normalization layer (whose stored variance is the stddev, not
    its square); that rescaling is folded into the Normalization variance here for imagenet and
    for a weights file alike, so both get exactly the ImageNet normalisation.
    """
    shape = (*image_size, 3)
    network = keras.applications.EfficientNetB0(
        include_top=False, weights=None, input_shape=shape, pooling=pooling)
    if weights == "none":
        return network
    if weights == "imagenet":
        pretrained = keras.applications.EfficientNetB0(
            include_top=False, weights="imagenet", input_shape=shape, pooling=pooling)
        network.set_weights(pretrained.get_weights())
    else:
        _load_weights(network, weights)
    normalization = next(layer for layer in network.layers
                         if isinstance(layer, layers.Normalization))
    normalization.adapt_variance.assign(
        keras.ops.convert_to_numpy(normalization.adapt_variance) * np.array(IMAGENET_STDDEV_RGB))
    # The layer computes with tensors snapshotted from its variables: refresh them.
    normalization.finalize_state()
    return network


def _tiny(image_size, weights, pooling="avg"):
    """A three-convolution encoder for CPU tests and the demo; no pretrained weights. Each
    convolution is batch-normalised before its ReLU: without it, a run can stay at the constant
    median for good (its ReLUs die). The moving statistics follow the batches with momentum 0.9,
    not Keras' 0.99: a small model trained for few steps changes fast, and lagging statistics
    made validation losses spike (and the learning rate halve) on small worlds. Synchronized
    across replicas, so that every replica validates with the statistics that are saved."""
    if weights == "imagenet":
        raise InputError("--weights=imagenet: the tiny backbone has no pretrained weights")
    frames = keras.Input((*image_size, 3))
    x = layers.Rescaling(1.0 / 255.0)(frames)
    for filters in (16, 32, 64):
        x = layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9, synchronized=True)(x)
        x = layers.Activation("relu")(x)
    if pooling == "avg":
        x = layers.GlobalAveragePooling2D()(x)
    network = keras.Model(frames, x, name="tiny")
    if weights != "none":
        _load_weights(network, weights)
    return network


BACKBONES = {
    "efficientnet_b0": _efficientnet_b0,
    "tiny": _tiny,
}


def make_backbone(backbone, image_size, weights="none", pooling="avg"):
    """A frame encoder [N, H, W, 3] 0..255 -> [N, features] (pooling avg) or its feature map
    [N, h, w, features] (pooling None); weights: none|imagenet|PATH."""
    if backbone not in BACKBONES:
        raise InputError(f"--backbone={backbone}: expected one of {', '.join(BACKBONES)}")
    return BACKBONES[backbone](tuple(image_size), weights, pooling)


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


def build_model(backbone="efficientnet_b0", volume_size=7, image_size=(512, 512), weights="none",
                lstm_units=1024, dense_units=300, output_bias=0.0, use_boxes=False):
    """The CNN-LSTM: [B, volume_size, H, W, 3] frames in 0..255 -> [B, 1] float32 metres.

    Follows the global Keras dtype policy (mixed_float16 / mixed_bfloat16); the output layer
    stays float32. Its bias starts at `output_bias` metres: at the training labels' median, an
    MAE model starts where a constant predictor ends instead of spending its first epochs
    climbing there (OUTPUT_BIASES).

    With `use_boxes` the inputs are {"frames", "box" [B, 5] (boxes.VECTOR)}: each frame's
    features are its global average and its average inside the box (BoxPooling), and the box's
    geometry joins the LSTM's output before the Dense layer.
    """
    height, width = image_size
    encoder = make_backbone(backbone, image_size, weights, None if use_boxes else "avg")
    frames = keras.Input((volume_size, height, width, 3), name="frames")
    x = keras.ops.reshape(frames, (-1, height, width, 3))
    x = encoder(x)
    if use_boxes:
        box = keras.Input((5,), name="box")
        per_frame = keras.ops.reshape(keras.ops.repeat(box[:, None, :], volume_size, axis=1),
                                      (-1, 5))
        x = keras.ops.concatenate([layers.GlobalAveragePooling2D()(x),
                                   BoxPooling(name="box_pooling")(x, per_frame)], axis=-1)
    x = keras.ops.reshape(x, (-1, volume_size, x.shape[-1]))
    x = layers.LSTM(lstm_units, name="lstm")(x)
    if use_boxes:
        x = keras.ops.concatenate([x, keras.ops.cast(box_geometry(box), x.dtype)], axis=-1)
    x = layers.Dense(dense_units, activation="relu", name="dense")(x)
    distance = layers.Dense(1, dtype="float32", name="distance",
                            bias_initializer=keras.initializers.Constant(output_bias))(x)
    inputs = {"frames": frames, "box": box} if use_boxes else frames
    return keras.Model(inputs, distance, name=f"{backbone}_lstm")


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
        return build_model(config["backbone"], config["volume_size"],
                           tuple(config["image_size"]), "none", config["lstm_units"],
                           config["dense_units"], use_boxes=config.get("use_boxes", False))


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

