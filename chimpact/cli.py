"""Glue for the absl entry scripts: report InputError as one line and a non-zero exit."""

import contextlib
import functools
import os
import re
import sys

from chimpact.errors import InputError


MIN_TENSORFLOW = (2, 16)
_INSTALL = ("pip install -e '.[cpu]' (CPU) or -e '.[gpu]' (NVIDIA GPUs); a TPU VM keeps its "
            "own tensorflow-tpu")


def require_tensorflow():
    """Imports TensorFlow, or exits with a one-line error unless 2.16 or newer is importable.
    The entry scripts call it in `main`, once their flags are read: --help and usage errors
    never wait for TensorFlow. Its C++ start-up lines (oneDNN, CPU features, absl's
    InitializeLog) are dropped unless the user sets TF_CPP_MIN_LOG_LEVEL."""
    try:
        if "TF_CPP_MIN_LOG_LEVEL" in os.environ:
            import tensorflow as tf
        else:
            with _stderr_dropped():
                import tensorflow as tf
    except ImportError as e:
        sys.exit(f"error: chimpact needs TensorFlow {'.'.join(map(str, MIN_TENSORFLOW))} or "
                 f"newer and none is importable ({e}): {_INSTALL}")
    version = tuple(int(part) for part in re.findall(r"\d+", tf.__version__)[:2])
    if version < MIN_TENSORFLOW:
        sys.exit(f"error: TensorFlow {tf.__version__} is too old: chimpact needs "
                 f"{'.'.join(map(str, MIN_TENSORFLOW))} or newer: {_INSTALL}")


@contextlib.contextmanager
def _stderr_dropped():
    """Sends file descriptor 2 (where C++ libraries write) to nowhere for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def image_size(values, flag="image_size"):
    """An --image_size list flag as (height, width): HEIGHT,WIDTH, or one SIZE for SIZExSIZE;
    None when unset; InputError otherwise."""
    if not values:
        return None
    try:
        sizes = [int(v) for v in values]
    except ValueError:
        sizes = []
    if len(sizes) == 1:
        sizes *= 2
    if len(sizes) != 2 or min(sizes) < 1:
        raise InputError(f"--{flag}={','.join(values)}: expected HEIGHT,WIDTH or one SIZE "
                         "(e.g. 512 for 512,512)")
    return tuple(sizes)


def reports_input_errors(main):
    """Wraps an absl `main(argv)` so that an InputError prints `error: ...` and exits 1."""

    @functools.wraps(main)
    def wrapped(argv):
        try:
            return main(argv)
        except InputError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)

    return wrapped


JIT_COMPILE_FLAG = ("auto", "true", "false")
JIT_COMPILE_HELP = ("XLA compilation of the model's graphs (Keras compile's jit_compile): auto "
                    "lets Keras choose (on for one GPU, off on CPUs and under tf.distribute), "
                    "true forces it (as a TPU always compiles), false turns it off.")


def jit_compile(value):
    """The --jit_compile flag as Keras' compile takes it: "auto", True or False."""
    return {"auto": "auto", "true": True, "false": False}[value]
