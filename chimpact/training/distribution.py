"""Training and prediction under Keras' JAX backend: keras.distribution.DataParallel over the
devices, behind the part of tf.distribute.Strategy that chimpact calls (scope,
num_replicas_in_sync, distribute_datasets_from_function), so that train.py, pipeline.py and
infer.py run one code path under either backend (training.strategy picks the implementation).

TensorFlow stays the input library (tf.data on the CPU) beside JAX: every batch is the global
batch, which Keras' JAX trainer splits over the devices along the batch axis (and, on several
processes, Keras shards the tf.data stream per process). The distribution is set for the whole
process before any model is built, so that every variable is laid out on the device mesh.
Batch statistics (BatchNormalization) are over the global batch: under jit the sharded
computation reduces across the devices by itself.
"""

import contextlib

import keras

from chimpact.errors import InputError


class JaxDataParallel:
    """A keras.distribution.DataParallel (None: no distribution, one device)."""

    def __init__(self, distribution=None):
        self.distribution = distribution
        self.num_replicas_in_sync = (distribution.device_mesh.devices.size
                                     if distribution is not None else 1)

    def scope(self):
        return self.distribution.scope() if self.distribution else contextlib.nullcontext()

    def distribute_datasets_from_function(self, dataset_fn):
        """The dataset of global batches (no tf.distribute.InputContext): Keras splits each."""
        return dataset_fn(None)

    # One process (data_parallel refuses several): it is the chief.
    is_chief = True
    is_multi_worker = False


def data_parallel(name, tpu=None):
    """The JAX counterpart of training.strategy.make_strategy's `name`: auto, mirrored and tpu
    use every device of this machine, default one. Several processes (multiworker, a TPU pod
    slice of several hosts) are refused: the chief predicts the out-of-fold rows alone, which
    a distribution spanning processes cannot do. TensorFlow, which only reads the input here,
    is kept off the GPUs that JAX uses."""
    import jax
    import tensorflow as tf

    if tpu not in (None, "local"):
        raise InputError(f"--tpu={tpu}: under JAX a TPU VM runs on its own chips (--tpu=local "
                         "or none); a TPU node at an address needs KERAS_BACKEND=tensorflow")
    if name == "multiworker":
        raise InputError("--strategy=multiworker: not under JAX yet (one host's devices only); "
                         "use KERAS_BACKEND=tensorflow with TF_CONFIG")
    tf.config.set_visible_devices([], "GPU")
    devices = keras.distribution.list_devices()
    if name == "tpu" and jax.default_backend() != "tpu":
        raise InputError(f"--strategy=tpu: JAX sees no TPU here (its devices: "
                         f"{jax.default_backend()})")
    distribution = keras.distribution.DataParallel(
        devices=devices[:1] if name == "default" else devices)
    keras.distribution.set_distribution(distribution)
    return JaxDataParallel(distribution)


def current():
    """The distribution set in this process (none: one device)."""
    return JaxDataParallel(keras.distribution.distribution())
