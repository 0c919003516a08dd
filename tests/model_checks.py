"""What model tests share: one tiny configuration, Python processes in the repository root, and
folders built once per test run for every xdist worker.

Checks that need a fresh TensorFlow runtime (strategies, XLA, kills) run in such a process.
"""

import fcntl
import json
import os
import pathlib
import subprocess
import sys
import textwrap

ROOT = pathlib.Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
# The smallest model worth training: run_train.py's keyword arguments and flags.
TINY = dict(backbone="tiny", weights="none", volume_size=3, lstm_units=32, dense_units=16)
TINY_FLAGS = ["--backbone=tiny", "--weights=none", "--volume_size=3", "--lstm_units=32",
              "--dense_units=16", "--batch_size=8", "--lr=3e-3", "--aug=a1", "--verbose=2"]
# Keras on JAX over two CPU devices (keras.distribution.DataParallel splits each batch over
# them as over a TPU VM's chips), with the XLA flags conftest.py gives every test process.
JAX = {"KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3", "XLA_FLAGS": " ".join(
    [os.environ.get("XLA_FLAGS", ""), "--xla_force_host_platform_device_count=2"]).strip()}


def start_python(args, extra_env=None, **kwargs):
    """A Python process in the repository root (chimpact and tests/ importable), its stdout and
    stderr merged into one text pipe."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{TESTS}", "PYTHONUNBUFFERED": "1",
           **(extra_env or {})}
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs)


def finish(process, timeout=300):
    """The output of `process`, which must exit 0 within `timeout` seconds."""
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-3000:]
    return output


def python_output(code, timeout=300, **env):
    """The output of `code` (dedented) run by a fresh interpreter, which must exit 0."""
    return finish(start_python(["-c", textwrap.dedent(code)],
                               {"TF_CPP_MIN_LOG_LEVEL": "3", **env}), timeout)


def last_json_line(output):
    """The last line of `output`, where a subprocess check prints its JSON result."""
    return json.loads(output.strip().splitlines()[-1])


def untrained_model_folder(path, config, biases=None):
    """model.write_untrained_folder at a pathlib.Path; returns the path as a string."""
    from chimpact.training import model

    return model.write_untrained_folder(str(path), config, biases)


# A model conditioned on boxes, on 3 frames of 32x32: the field tests' model.
BOX_MODEL = dict(backbone="tiny", weights="none", volume_size=3, image_size=[32, 32],
                 lstm_units=4, dense_units=4, frames_per_side=1, step=1, n_folds=2,
                 folds=[0, 1], use_boxes=True)


def box_model_folder(path):
    """A BOX_MODEL folder as run_train.py leaves it: two untrained folds and an oof.csv whose
    errors (true - predicted) run from -3 to +5 m (the intervals' offsets); returns the path
    as a string."""
    import numpy as np
    import pandas as pd

    untrained_model_folder(path, BOX_MODEL)
    errors = np.linspace(-3, 5, 81)
    pd.DataFrame({"video_id": "v.mp4", "time": range(81), "distance": 10 + errors, "pred": 10.0,
                  "fold": 0}).to_csv(pathlib.Path(path) / "oof.csv", index=False)
    return str(path)


def built_once(tmp_path_factory, name, build):
    """A folder `name` that `build(folder)` fills once per test run, shared by every pytest-xdist
    worker: the first worker that asks builds it under a file lock, the others wait for it and
    reuse it (a module fixture would build it again on each worker that runs the module)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own
    folder, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            folder.mkdir(exist_ok=True)
            build(folder)
            done.touch()
    return folder
