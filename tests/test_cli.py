"""The entry scripts start without TensorFlow: --help, a bad flag value and a bad flag
combination answer before it loads; the names the flags offer are the ones the library builds."""

import pathlib
import subprocess
import sys

import pytest

from chimpact import settings

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPTS = ("create_frames.py", "create_tfrecords.py", "run_train.py", "run_infer.py",
           "ensemble.py")
# Runs a script as `python SCRIPT ARGS...` would, then reports whether TensorFlow was imported.
PROBE = """
import runpy, sys
script, *args = sys.argv[1:]
sys.argv = [script, *args]
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit as exit:
    print(f"exit={exit.code!r}", file=sys.stderr)
print("tensorflow" in sys.modules)
"""


def probe(script, *args):
    done = subprocess.run([sys.executable, "-c", PROBE, script, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    *output, tensorflow = done.stdout.strip().splitlines()
    return tensorflow == "True", "\n".join(output) + done.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_answers_without_tensorflow(script):
    tensorflow, output = probe(script, "--help")
    assert not tensorflow
    assert f"python {script} --" in output and f"{script}:\n  --" in output


@pytest.mark.parametrize("script, args, message", [
    ("run_train.py", ["--family=lstm"], "--family=lstm: value should be one of"),
    ("run_train.py", ["--tfrec_dir=r", "--out_dir=o", "--image_size=1,2,3"],
     "error: --image_size=1,2,3: expected HEIGHT,WIDTH"),
    ("run_infer.py", ["--model_dir=m", "--aggregate=max"], "--aggregate=max: value should be"),
    ("create_frames.py", ["--video_dir=v", "--out_dir=o", "--gamma=maybe"], "--gamma=maybe"),
    ("create_tfrecords.py", ["--frames_dir=f", "--labels_csv=l"], "error: --out_dir is required"),
])
def test_usage_errors_answer_before_tensorflow(script, args, message):
    tensorflow, output = probe(script, *args)
    assert not tensorflow
    assert message in output
    assert "exit=1" in output


def test_the_names_the_flags_offer_are_the_ones_the_library_builds():
    from chimpact import augment, model

    assert tuple(model.BACKBONES) == settings.BACKBONES
    assert tuple(augment.AUG_SETS) == settings.AUG_SETS
