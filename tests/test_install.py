"""Installing chimpact leaves the platform's TensorFlow alone (a TPU VM's tensorflow-tpu, a
tensorflow-cpu), and entry scripts say in one line when no usable TensorFlow is there."""

import importlib.metadata
import json
import pathlib
import subprocess
import sys
import sysconfig

import pytest

from model_checks import ROOT, start_python

TENSORFLOWS = ("tensorflow", "tensorflow-cpu", "tensorflow-tpu", "tensorflow-intel")


def throwaway_venv(path):
    """A new virtual environment that sees this one's packages (a .pth file), as a machine
    whose TensorFlow is already installed; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = str(path / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                                         "['purelib'])"], capture_output=True, text=True,
                          check=True).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (pathlib.Path(site) / "platform-tensorflow.pth").write_text("\n".join(sorted(ours)) + "\n")
    return python


def dry_run(python, project, report):
    """pip's offline dry run of an editable install of `project` into `python`'s environment."""
    return subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--dry-run", "--no-index",
         "--no-build-isolation", "--quiet", "--report", str(report), "-e", str(project)],
        capture_output=True, text=True)


@pytest.mark.slow
def test_installing_beside_the_platform_tensorflow_pulls_no_other(tmp_path):
    present = [name for name in TENSORFLOWS if _installed(name)]
    assert present, "no TensorFlow distribution installed here"
    python = throwaway_venv(tmp_path / "venv")
    done = dry_run(python, ROOT, tmp_path / "report.json")
    assert done.returncode == 0, done.stderr[-2000:]
    would_install = {item["metadata"]["name"].lower()
                     for item in json.loads((tmp_path / "report.json").read_text())["install"]}
    assert would_install == {"chimpact"}

    # The control: a project naming another TensorFlow distribution than the one present
    # (what setup.py did with `tensorflow`) is not satisfied by it.
    other = next(name for name in TENSORFLOWS if name not in present)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "setup.py").write_text(
        f"from setuptools import setup\nsetup(name='other', install_requires=['{other}>=2.16'])\n")
    refused = dry_run(python, tmp_path / "other", tmp_path / "other.json")
    assert refused.returncode != 0 and f"for {other}" in refused.stderr.lower(), refused.stderr


def _installed(name):
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.parametrize("module, reason", [
    ('raise ImportError("libtensorflow_framework.so.2: cannot open shared object file")',
     "none is importable (libtensorflow_framework.so.2"),
    ('__version__ = "2.15.1"', "TensorFlow 2.15.1 is too old"),
])
def test_entry_scripts_refuse_a_missing_or_old_tensorflow_in_one_line(tmp_path, module, reason):
    (tmp_path / "tensorflow").mkdir()
    (tmp_path / "tensorflow" / "__init__.py").write_text(module + "\n")
    # Flags that pass the usage checks (--help needs no TensorFlow): the work is what needs it.
    commands = {"create_frames.py": ["--video_dir=v", "--out_dir=o"],
                "create_tfrecords.py": ["--inspect=r"],
                "run_train.py": ["--tfrec_dir=r", "--out_dir=o"],
                "run_infer.py": ["--model_dir=m"]}
    for script, args in commands.items():
        job = start_python([script, *args], {"PYTHONPATH": f"{tmp_path}:{ROOT}"})
        output, _ = job.communicate(timeout=60)
        assert job.returncode == 1, (script, output)
        assert output.startswith("error: ") and reason in output, (script, output)
        assert output.count("\n") == 1 and "pip install -e '.[cpu]'" in output, output
