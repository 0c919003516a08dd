"""Glue for the entry programs: TensorFlow loaded late and quietly, sizes read, InputError
reported as one line and an exit status (2 for usage, 1 for failed work)."""

import contextlib
import functools
import logging
import os
import pathlib
import re
import sys
import sysconfig

from chimpact.errors import InputError, UsageError


MIN_TENSORFLOW = (2, 16)
_INSTALL = ("pip install -e '.[cpu]' (CPU) or -e '.[gpu]' (NVIDIA GPUs); a TPU VM keeps its "
            "own tensorflow-tpu")


def require_tensorflow():
    """Imports TensorFlow, or exits with a one-line error unless 2.16 or newer is importable.
    The entry scripts call it in `main`, once their flags are read: --help and usage errors
    never wait for TensorFlow. Its C++ start-up lines (oneDNN, CPU features, absl's
    InitializeLog), which TensorFlow 2.21 prints whatever TF_CPP_MIN_LOG_LEVEL says, are
    dropped unless the user asks for TensorFlow's info or warnings (TF_CPP_MIN_LOG_LEVEL=0
    or 1); unset, it becomes 1, which drops the C++ info lines of the run itself (such as
    "TFRecordDataset `buffer_size` is unspecified", logged by every TFRecordDataset, given a
    buffer_size or not) and keeps its warnings."""
    asked = os.environ.get("TF_CPP_MIN_LOG_LEVEL") in ("0", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    try:
        if asked:
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


BACKEND_HELP = ("Keras backend: tensorflow or jax (TPU VMs, GPUs through JAX; TensorFlow still "
                "reads the input). Default: the KERAS_BACKEND environment variable, else "
                "tensorflow. A model folder predicts the same under either.")


def select_backend(backend):
    """Sets Keras' backend to `backend` (None: KERAS_BACKEND's or Keras' default) before Keras
    loads; exits with a one-line error when JAX is asked for and not importable. Call it before
    require_tensorflow (which does not load Keras)."""
    if backend:
        loaded = sys.modules.get("keras")
        if loaded is not None and loaded.backend.backend() != backend:
            raise UsageError(f"--backend={backend}: Keras already runs on "
                             f"{loaded.backend.backend()} in this process")
        os.environ["KERAS_BACKEND"] = backend
    if os.environ.get("KERAS_BACKEND") == "jax":
        # JAX logs at INFO each platform it did not find (no libtpu on a GPU or CPU machine).
        logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
        try:
            import jax  # noqa: F401
        except ImportError as e:
            sys.exit(f"error: --backend=jax: JAX is not importable ({e}): pip install -e "
                     "'.[jax]' (CPU), '.[tpu]' (TPU VM) or '.[cuda]' (NVIDIA GPUs)")


SIZE_HELP = ("WIDTHxHEIGHT (ffmpeg's way: 640x360), HEIGHT,WIDTH (Keras' way: 360,640) or one "
             "number for a square")


def image_size(value, flag="image_size"):
    """A size flag as (height, width), given in any of SIZE_HELP's forms (a list flag's items
    joined by commas); None when unset; UsageError otherwise."""
    text = (",".join(value) if isinstance(value, (list, tuple)) else value or "").replace(" ", "")
    if not text:
        return None
    ffmpeg = re.fullmatch(r"(\d+)[xX](\d+)", text)
    keras = re.fullmatch(r"(\d+),(\d+)", text)
    if ffmpeg:
        size = (int(ffmpeg[2]), int(ffmpeg[1]))
    elif keras:
        size = (int(keras[1]), int(keras[2]))
    else:
        size = (int(text),) * 2 if text.isdigit() else (0, 0)
    if min(size) < 1:
        raise UsageError(f"--{flag}={text}: expected {SIZE_HELP}")
    return size


def entry_script(name):
    """The path of the entry script `name` (create_frames.py, ...), for whatever runs it (the
    `chimpact` command, the demo): beside the package in a checkout, else in the folder pip
    installed the package's scripts into (setup.py `scripts`); InputError when neither holds it."""
    for folder in (pathlib.Path(__file__).resolve().parents[1],
                   pathlib.Path(sysconfig.get_path("scripts"))):
        if (folder / name).is_file():
            return folder / name
    raise InputError(f"{name} is not installed beside chimpact: reinstall the package "
                     "(pip install .)")


def _orientation(height, width):
    return "portrait" if height > width else "landscape" if width > height else "square"


def flipped_size(flag, size, source):
    """The warning line when the `size` (height, width) asked with --`flag` turns the `source`
    pictures' (height, width) orientation, landscape to portrait or back: most often WIDTH,HEIGHT
    given where the comma form is HEIGHT,WIDTH; None when both keep it (or one is square)."""
    wanted, found = _orientation(*size), _orientation(*source)
    if "square" in (wanted, found) or wanted == found:
        return None
    return (f"--{flag}={size[0]},{size[1]} makes {wanted} frames ({size[1]} wide, {size[0]} "
            f"high) of {found} pictures ({source[1]}x{source[0]}): the comma form is "
            f"HEIGHT,WIDTH; for {found} frames give --{flag}={size[0]}x{size[1]} "
            "(WIDTHxHEIGHT)")


INTERRUPTED = 130  # the shell's status for a program ended by Ctrl-C (128 + SIGINT)


def reports_input_errors(main):
    """Wraps an absl `main(argv)` so that an InputError prints `error: ...` and exits 1 (2 for
    a UsageError: a bad flag value or combination), and Ctrl-C says in one line that a re-run
    resumes, instead of a traceback, and exits 130."""

    @functools.wraps(main)
    def wrapped(argv):
        try:
            return main(argv)
        except InputError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2 if isinstance(e, UsageError) else 1)
        except KeyboardInterrupt:
            _close_progress_bars()
            print("interrupted: what was finished is kept; the same command resumes it",
                  file=sys.stderr)
            sys.exit(INTERRUPTED)

    return wrapped


def _close_progress_bars():
    """Closes the tqdm bars still drawn (a loop over one that Ctrl-C left keeps it open until
    collected), each ending its line, so that what follows starts on a fresh one."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(tqdm.tqdm, "_instances", ()) if tqdm else ()):
        bar.close()


JIT_COMPILE_FLAG = ("auto", "true", "false")
JIT_COMPILE_HELP = ("XLA compilation of the model's graphs (Keras compile's jit_compile): auto "
                    "lets Keras choose (on for one GPU, off on CPUs and under tf.distribute), "
                    "true forces it (as a TPU always compiles), false turns it off.")


def jit_compile(value):
    """The --jit_compile flag as Keras' compile takes it: "auto", True or False."""
    return {"auto": "auto", "true": True, "false": False}[value]
