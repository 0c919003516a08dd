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
    """Every module that loading `path` loads: its imports, and the chimpact modules' imports
    in turn (packages' __init__ included)."""
    seen, todo, loaded = set(), [path], set()
    while todo:
        for name in module_imports(todo.pop()):
            loaded.add(name)
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):
                if parts[0] != "chimpact":
                    break
                base = ROOT.joinpath(*parts[:depth])
                for candidate in (base / "__init__.py", base.with_suffix(".py")):
                    if candidate.is_file() and candidate not in seen:
                        seen.add(candidate)
                        todo.append(candidate)
    return loaded


def test_what_the_device_check_loads_of_chimpact_never_imports_tensorflow():
    loaded = loaded_by(SCRIPT)
    assert "chimpact.training.model" in loaded and "keras" in loaded
    assert not [name for name in loaded if name.split(".")[0] == "tensorflow"]


@pytest.mark.slow
def test_the_quick_device_check_times_every_family_against_the_tpu():
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "device_check.sh"), "--quick"], capture_output=True,
        text=True, timeout=600,
        env={**os.environ, "PYTHON": sys.executable, "KERAS_BACKEND": "tensorflow",
             "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("tiny at 64x64, mixed_bfloat16, batch 4, tensorflow")
    for family in ("cnn_lstm", "stacked", "single"):
        assert re.search(rf"^{family} +\(\d frames\): train +\d+\.\d sequences/s .* predict +"
                         r"\d+\.\d$", done.stdout, re.MULTILINE), done.stdout
    assert re.fullmatch(r"ratio to the reference's TPU v3-8 \(68 training sequences/s\): "
                        r"cnn_lstm \d+\.\d\dx, stacked \d+\.\d\dx, single \d+\.\d\dx", lines[-1])
