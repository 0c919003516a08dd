"""benchmarks/device_check.sh, which a lent GPU machine runs with Keras and JAX and no TensorFlow:
it must run the day one is lent, so it runs here on CPU (--quick), and nothing it imports of
chimpact may import TensorFlow."""

import ast
import os
import pathlib
import re
import subprocess
import sys

import pytest

from model_checks import JAX

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "device_check.py"


def module_imports(path):
    """The modules `path` imports when it is loaded (its top-level statements, not its
    functions')."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def loaded_by(path):
    """Every module that loading `path` loads: its imports, and the imports of the repository's
    own modules (chimpact's, packages' __init__ included, and the entry scripts') in turn."""
    seen, todo, loaded = set(), [path], set()
    while todo:
        for name in module_imports(todo.pop()):
            loaded.add(name)
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):
                if parts[0] != "chimpact" and not (ROOT / f"{parts[0]}.py").is_file():
                    break
                base = ROOT.joinpath(*parts[:depth])
                for candidate in (base / "__init__.py", base.with_suffix(".py")):
                    if candidate.is_file() and candidate not in seen:
                        seen.add(candidate)
                        todo.append(candidate)
    return loaded


def test_what_the_device_check_loads_of_chimpact_never_imports_tensorflow():
    # The step that run_train.py trains, and run_train.py itself, whose flags the check loads
    # (TensorFlow only once its main runs).
    loaded = loaded_by(SCRIPT) | loaded_by(ROOT / "run_train.py")
    assert {"chimpact_flags", "chimpact.training.step", "chimpact.training.model",
            "keras"} <= loaded
    assert not [name for name in loaded if name.split(".")[0] == "tensorflow"]


@pytest.mark.slow
def test_the_quick_device_check_times_every_family_against_the_tpu():
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "device_check.sh"), "--quick"], capture_output=True,
        text=True, timeout=600,
        env={**os.environ, "PYTHON": sys.executable, **JAX})
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "run_train.py's step, mixed_bfloat16, jax on 2 x cpu"
    # Each family's demo preset at its own frames and size (models/demo*.flags), 4 sequences
    # on each device.
    for family, preset, frames in (("cnn_lstm", "demo", 3), ("stacked", "demo-stacked", 3),
                                   ("single", "demo-single", 1)):
        assert re.search(rf"^{family} +{preset} \(tiny, {frames} frames, 48x64, batch 8\): "
                         r"train +\d+\.\d sequences/s .* predict +\d+\.\d$", done.stdout,
                         re.MULTILINE), done.stdout
    assert re.fullmatch(r"ratio to the reference's TPU v3-8 \(68 training sequences/s\): "
                        r"cnn_lstm \d+\.\d\dx, stacked \d+\.\d\dx, single \d+\.\d\dx", lines[-1])
