"""Turns a strategy name into a tf.distribute strategy (TPU, several GPUs, several machines, CPU)
or, under Keras' JAX backend, into its keras.distribution counterpart (training.distribution),
which answers the same calls: scope(), num_replicas_in_sync, distribute_datasets_from_function,
and is_chief / is_multi_worker here.

An explicitly requested TPU that cannot be reached is an error, never a silent fallback.
Create the strategy before any other TensorFlow work: TPU initialisation and
MultiWorkerMirroredStrategy both need a fresh runtime.
"""

import contextlib
import json
import os
import socket
import urllib.parse

import keras
import tensorflow as tf

from chimpact.errors import InputError
from chimpact.settings import STRATEGIES
from chimpact.training import distribution

_CONNECT_TIMEOUT_S = 10


def make_strategy(name="auto", tpu=None, training=False):
    """The strategy `name`: auto|tpu|mirrored|multiworker|default.

    auto: a TPU when `tpu` is given, MirroredStrategy when several GPUs are visible, else the
    default (single device) strategy. `tpu` is a TPU name, grpc://HOST:PORT or `local` (TPU VM).
    multiworker reads the cluster from the TF_CONFIG environment variable.
    """
    if name not in STRATEGIES:
        raise InputError(f"--strategy={name}: expected one of {', '.join(STRATEGIES)}")
    if is_jax():
        # TensorFlow only reads the input under JAX: it is kept off the GPUs that JAX uses.
        tf.config.set_visible_devices([], "GPU")
        return distribution.data_parallel(name, tpu, training)
    if name == "auto":
        if tpu:
            name = "tpu"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if tpu and name != "tpu":
        raise InputError(f"--tpu={tpu} conflicts with --strategy={name}")
    if name == "tpu":
        return _tpu_strategy(tpu)
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise InputError("--strategy=multiworker: set TF_CONFIG to describe the cluster")
        try:
            json.loads(os.environ["TF_CONFIG"])
        except ValueError as e:
            raise InputError(f"TF_CONFIG is not valid JSON: {e}")
        return _MultiWorkerStrategy()
    return tf.distribute.get_strategy()


def is_jax():
    return keras.backend.backend() == "jax"


def current():
    """The strategy in effect: the one whose scope this is, or the default."""
    return distribution.current() if is_jax() else tf.distribute.get_strategy()


def of_model(network):
    """The strategy `network` was built under."""
    return distribution.current() if is_jax() else network.distribute_strategy


def _check_reachable(address):
    """Fails fast on a grpc:// address nobody listens on (TF would wait for minutes)."""
    parsed = urllib.parse.urlparse(address)
    try:
        socket.create_connection((parsed.hostname, parsed.port), _CONNECT_TIMEOUT_S).close()
    except (OSError, TypeError, ValueError) as e:
        raise InputError(f"--tpu={address}: cannot reach the TPU: {e} ({_TPU_HINTS['grpc']})")


_TPU_HINTS = {
    "local": "--tpu=local needs a TPU VM whose TensorFlow is tensorflow-tpu (it brings libtpu) "
             "and no other process holding the TPU",
    "grpc": "is the TPU node up, in this VM's network, and listening on that port (8470)?",
    "name": "a TPU name is looked up through the Cloud TPU API from a VM in the TPU's project "
            "and zone; elsewhere give grpc://HOST:8470",
}


def _tpu_strategy(tpu):
    """TPUStrategy for a TPU name, grpc://HOST:PORT, `local` (TPU VM) or None (from the env)."""
    kind = "local" if tpu == "local" else "grpc" if tpu and tpu.startswith("grpc://") else "name"
    if kind == "grpc":
        _check_reachable(tpu)
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        if tpu != "local":
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except Exception as e:  # the resolver raises many types; all mean "no TPU here"
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise InputError(f"--tpu={tpu or '(from the environment)'}: cannot reach the TPU: "
                         f"{first_line} ({_TPU_HINTS[kind]})")
    return tf.distribute.TPUStrategy(resolver)


class _MultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """MultiWorkerMirroredStrategy whose reduce() takes what Keras 3's trainer passes it.

    Keras 3 (keras-team/keras#20585) reduces a whole (x, y, weight) batch only to learn its
    shapes, and per-replica scalar logs with axis=0; the stock strategy rejects both. Here nests
    are reduced leaf by leaf, scalars across replicas, and leaves whose dtype collectives cannot
    carry (our uint8 frames) give the local value: their shape is all Keras uses.
    """

    def reduce(self, reduce_op, value, axis):
        parent = super()

        def reduce_leaf(leaf):
            local = self.experimental_local_results(leaf)[0]
            if local.dtype not in _REDUCIBLE:
                return local
            return parent.reduce(reduce_op, leaf, None if local.shape.rank == 0 else axis)

        return tf.nest.map_structure(reduce_leaf, value)


_REDUCIBLE = (tf.bfloat16, tf.float16, tf.float32, tf.float64, tf.int32, tf.int64)


def is_multi_worker(strategy):
    """True when the strategy spans several processes (the chief alone predicts and writes)."""
    if isinstance(strategy, distribution.JaxDataParallel):
        return strategy.is_multi_worker
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    cluster = strategy.cluster_resolver.cluster_spec()
    return sum(cluster.num_tasks(job) for job in cluster.jobs) > 1


def alone(strategy):
    """The scope in which a process of a multi-worker `strategy` builds and runs a network by
    itself: under JAX without the distribution (set for the whole process), under TensorFlow
    outside the strategy's scope, which it already is."""
    if isinstance(strategy, distribution.JaxDataParallel):
        return strategy.alone()
    return contextlib.nullcontext()


def is_chief(strategy):
    """True for the process that writes outputs: the only one, or the chief (or worker 0)."""
    if isinstance(strategy, distribution.JaxDataParallel):
        return strategy.is_chief
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief
