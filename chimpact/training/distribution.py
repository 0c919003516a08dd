"""Training and prediction under Keras' JAX backend: keras.distribution.DataParallel over the
devices, behind the part of tf.distribute.Strategy that chimpact calls (scope,
num_replicas_in_sync, distribute_datasets_from_function), so that train.py, pipeline.py and
infer.py run one code path under either backend (training.strategy picks the implementation).

TensorFlow stays the input library (tf.data on the CPU) beside JAX: every batch is the global
batch, which Keras' JAX trainer splits over the devices along the batch axis (and, on several
processes, Keras shards the tf.data stream per process: each takes its slice of every global
batch). The distribution is set for the whole process before any model is built, so that every
variable is laid out on the device mesh. Batch statistics (BatchNormalization) are over the
global batch: under jit the sharded computation reduces across the devices by itself.

Several hosts (a TPU pod slice, GPU machines, or processes of one machine): every process runs
the same command with --strategy=multiworker; keras.distribution.initialize() joins them (a
Cloud TPU finds its peers itself; elsewhere KERAS_DISTRIBUTION_JOB_ADDRESSES, _NUM_PROCESSES and
_PROCESS_ID say who is who), process 0 is the chief that writes and predicts the out-of-fold
rows alone (outside the distribution, on its first device).
"""

import contextlib
import os

import keras

from chimpact.errors import InputError

# What keras.distribution.initialize() reads where the platform does not say it (not a TPU).
CLUSTER_VARIABLES = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                     "KERAS_DISTRIBUTION_PROCESS_ID")


class JaxDataParallel:
    """A keras.distribution.DataParallel (None: no distribution, one device)."""

    def __init__(self, distribution=None):
        import jax

        self.distribution = distribution
        self.num_replicas_in_sync = (distribution.device_mesh.devices.size
                                     if distribution is not None else 1)
        self.is_chief = jax.process_index() == 0
        self.is_multi_worker = jax.process_count() > 1

    def scope(self):
        return self.distribution.scope() if self.distribution else contextlib.nullcontext()

    @contextlib.contextmanager
    def alone(self):
        """No distribution: what is built and run inside stays on this process's devices (the
        chief's out-of-fold prediction while the others wait)."""
        keras.distribution.set_distribution(None)
        try:
            yield
        finally:
            keras.distribution.set_distribution(self.distribution)

    def distribute_datasets_from_function(self, dataset_fn):
        """The dataset of global batches (no tf.distribute.InputContext): Keras splits each."""
        return dataset_fn(None)


def data_parallel(name, tpu=None, training=False):
    """The JAX counterpart of training.strategy.make_strategy's `name`: auto, mirrored and tpu
    use every device of this machine, default one, multiworker (`training` only) every device
    of every process that joins. Keras alone: benchmarks/device_check.py trains under it where
    there is no TensorFlow."""
    import jax

    if tpu not in (None, "local"):
        raise InputError(f"--tpu={tpu}: under JAX a TPU VM runs on its own chips (--tpu=local "
                         "or none); a TPU node at an address needs KERAS_BACKEND=tensorflow")
    if name == "multiworker":
        if not training:
            raise InputError("--strategy=multiworker: prediction runs on one host under JAX "
                             "(--strategy=auto uses its devices)")
        _join_processes()
    devices = keras.distribution.list_devices()
    if name == "tpu" and jax.default_backend() != "tpu":
        raise InputError(f"--strategy=tpu: JAX sees no TPU here (its devices: "
                         f"{jax.default_backend()})")
    distribution = keras.distribution.DataParallel(
        devices=devices[:1] if name == "default" else devices)
    keras.distribution.set_distribution(distribution)
    return JaxDataParallel(distribution)


def _join_processes():
    """keras.distribution.initialize(), from CLUSTER_VARIABLES or the TPU's own; InputError
    when the processes cannot be joined."""
    import jax

    given = [name for name in CLUSTER_VARIABLES if os.environ.get(name)]
    if given and len(given) < len(CLUSTER_VARIABLES):
        missing = sorted(set(CLUSTER_VARIABLES) - set(given))
        raise InputError(f"--strategy=multiworker: {', '.join(given)} set without "
                         f"{', '.join(missing)}")
    # Processes on CPUs (tests, a CPU cluster) reduce through Gloo; TPUs and GPUs ignore it.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        keras.distribution.initialize()
    except (RuntimeError, ValueError) as e:
        raise InputError(f"--strategy=multiworker: the processes did not join ({e}); on a "
                         f"machine that is not a Cloud TPU set {', '.join(CLUSTER_VARIABLES)}")


def current():
    """The distribution set in this process (none: one device)."""
    return JaxDataParallel(keras.distribution.distribution())
