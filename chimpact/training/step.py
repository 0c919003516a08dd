"""The compiled network that run_train.py trains: the model of training.model with its
optimizer, loss and metric, in Keras alone (no TensorFlow), so that benchmarks/device_check.py
times this very training step on an accelerator with JAX and no TensorFlow."""

import keras

from chimpact.training import model

HUBER_DELTA = 1.0


def make_optimizer(settings, steps_per_epoch):
    """Adam or AdamW at settings' lr, constant (halved on plateaus by PlateauHalving) or along a
    cosine from lr to 0 over all the epochs' steps (its position is the optimizer's step count,
    which the checkpoint holds)."""
    rate = settings["lr"]
    if settings["schedule"] == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(rate, settings["epochs"] * steps_per_epoch)
    if settings["optimizer"] == "adamw":
        return keras.optimizers.AdamW(rate, weight_decay=settings["weight_decay"])
    return keras.optimizers.Adam(rate)


def make_loss(name):
    return keras.losses.Huber(HUBER_DELTA) if name == "huber" else "mae"


def compiled_model(settings, steps_per_epoch, output_bias=0.0):
    """The network of `settings` (a model folder's config) compiled for training, in the
    current distribution scope."""
    with model.precision(settings["mixed_precision"]):
        network = model.build_model(settings["backbone"], settings["volume_size"],
                                    model.input_size(settings), settings["weights"],
                                    settings["lstm_units"], settings["dense_units"], output_bias,
                                    settings["use_boxes"], settings["family"],
                                    settings["input_scaling"])
    # Weighted, so that the padding of the validation batches (weight 0) does not count. Under
    # mixed_float16, compile wraps the optimizer in a LossScaleOptimizer (its scale is
    # checkpointed).
    network.compile(optimizer=make_optimizer(settings, steps_per_epoch),
                    loss=make_loss(settings["loss"]),
                    weighted_metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
                    jit_compile=settings["jit_compile"])
    # The optimizer's variables now, eagerly: Keras would create them inside the first traced
    # training step (without a tf.distribute strategy of its own), where each variable costs
    # milliseconds to lift out of the graph (EfficientNet-B0: its training starts 17-24 s later).
    network.optimizer.build(network.trainable_variables)
    return network
