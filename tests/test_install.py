"""Installing chimpact leaves the platform's TensorFlow alone (a TPU VM's tensorflow-tpu, a
tensorflow-cpu), and entry scripts say in one line when no usable TensorFlow is there."""

import importlib.metadata
import json
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import zipfile

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
                "run_infer.py": ["--model_dir=m"],
                "run_field.py": ["--model_dir=m", "--video_dir=v"]}
    for script, args in commands.items():
        job = start_python([script, *args], {"PYTHONPATH": f"{tmp_path}:{ROOT}"})
        output, _ = job.communicate(timeout=60)
        assert job.returncode == 1, (script, output)
        assert output.startswith("error: ") and reason in output, (script, output)
        assert output.count("\n") == 1 and "pip install -e '.[cpu]'" in output, output


@pytest.mark.slow
def test_the_wheel_gives_a_chimpact_command_that_works_from_any_folder(tmp_path):
    """`pip install .` (a wheel, not editable) into a fresh environment: the command, the
    presets and the programs come with it, and answer from a folder that is not the repo."""
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "runs", "build", "*.egg-info", "__pycache__", ".pytest_cache"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index",
                            "--no-build-isolation", "--quiet", "-w", str(tmp_path / "dist"),
                            str(source)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel, = (tmp_path / "dist").glob("chimpact-*.whl")
    packed = zipfile.ZipFile(wheel).namelist()
    assert {"chimpact/presets/full-a4p50-f7s1.flags", "chimpact/presets/reference.flags",
            "chimpact_flags.py"} <= set(packed)
    python = throwaway_venv(tmp_path / "venv")
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", python, "install",
                                "--no-deps", "--no-index", "--quiet", str(wheel)],
                               capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-2000:]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def chimpact(*args):
        done = subprocess.run([str(tmp_path / "venv" / "bin" / "chimpact"), *args],
                              cwd=elsewhere, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "PYTHONPATH": ""})
        return done.returncode, done.stdout, done.stderr

    where = subprocess.run([python, "-c", "import chimpact; print(chimpact.__file__)"],
                           cwd=elsewhere, capture_output=True, text=True).stdout
    assert where.startswith(str(tmp_path / "venv")), where
    assert chimpact("--version")[:2] == (0, "chimpact 0.1.0\n")
    assert chimpact("train", "--version")[:2] == (0, "chimpact 0.1.0\n")
    code, listed, _ = chimpact("train", "--preset=list")
    assert code == 0 and listed.splitlines()[0].startswith("demo ")
    assert "full-a4p50-f7s1            Reference model 11 of 12" in listed
    own_flag = {"frames": "--video_dir", "records": "--frames_dir", "train": "--preset",
                "infer": "--export", "field": "--detections", "ensemble": "--model_dirs"}
    for command, flag in own_flag.items():
        code, usage, _ = chimpact(command, "--help")
        assert f"\n    chimpact {command} --" in usage, (command, usage)
        assert f"\n  {flag}: " in usage, (command, usage)
    # A preset by name from this folder, its nested reference.flags expanded, then the work:
    # one line about the records that are not there, exit 1.
    code, _, error = chimpact("train", "--preset=full-a4p50-f7s1", "--weights=none",
                              f"--tfrec_dir={elsewhere / 'absent'}", "--out_dir=out")
    assert code == 1 and error.startswith("error: ") and error.count("\n") == 1, error
    assert "absent" in error and not (elsewhere / "out").exists()
    assert chimpact("train", "--preset=nope")[::2] == (2, "error: --preset=nope: no such preset "
                                                          "(--preset=list shows them)\n")
    assert chimpact("bogus")[0] == 2

    # The demo runs the installed entry scripts (as `chimpact` finds them), not files beside
    # the package in site-packages: its commands name them, and its first two stages (a tiny
    # world, then the installed create_frames.py on it) run from this folder. (The whole demo
    # runs in tests/test_demo.py.)
    demo = subprocess.run([python, "-c", """if True:
        import json
        from chimpact.demo import demo
        stages, _ = demo.commands("demo", n_videos=4)
        for name, argv in stages[:2]:
            demo.run_stage(name, argv, "demo")
        print(json.dumps(stages))"""], cwd=elsewhere, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": ""})
    assert demo.returncode == 0, (demo.stdout + demo.stderr)[-3000:]
    stages = dict(json.loads(demo.stdout.splitlines()[-1]))
    scripts = {argv[1] for argv in stages.values() if argv[1].endswith(".py")}
    assert scripts == {str(tmp_path / "venv" / "bin" / name) for name in (
        "create_frames.py", "create_tfrecords.py", "run_train.py", "run_infer.py", "ensemble.py",
        "run_field.py")}, scripts
    assert "--preset=demo" in stages["train-demo"]
    assert len(list((elsewhere / "demo" / "frames").rglob("*.jpg"))) > 4
