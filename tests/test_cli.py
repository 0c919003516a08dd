"""The entry scripts start without TensorFlow: --help, a bad flag value and a bad flag
combination answer before it loads (exit 2); presets expand where they stand; the names the
flags offer are the ones the library builds."""

import pathlib
import subprocess
import sys

import pytest

from chimpact import cli, commands, presets, settings
from chimpact.errors import UsageError

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPTS = tuple(commands.SCRIPTS.values())
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
    assert (ROOT / script).exists()
    tensorflow, output = probe(script, "--help")
    assert not tensorflow
    assert f"python {script} --" in output and f"{script}:\n  --" in output


@pytest.mark.parametrize("script, args, message", [
    ("run_train.py", ["--family=lstm"], "--family=lstm: value should be one of"),
    ("run_train.py", ["--tfrec_dir=r", "--out_dir=o", "--image_size=1,2,3"],
     "error: --image_size=1,2,3: expected WIDTHxHEIGHT (ffmpeg's way: 640x360), HEIGHT,WIDTH"),
    ("run_infer.py", ["--model_dir=m", "--aggregate=max"], "--aggregate=max: value should be"),
    ("create_frames.py", ["--video_dir=v", "--out_dir=o", "--gamma=maybe"], "--gamma=maybe"),
    ("run_field.py", ["--model_dir=m"], "Flag --video_dir must have a value other than None"),
    ("create_tfrecords.py", ["--frames_dir=f", "--labels_csv=l"], "error: --out_dir is required"),
])
def test_usage_errors_answer_before_tensorflow(script, args, message):
    tensorflow, output = probe(script, *args)
    assert not tensorflow
    assert message in output
    assert "exit=2" in output


def test_the_names_the_flags_offer_are_the_ones_the_library_builds():
    from chimpact import augment, model

    assert tuple(model.BACKBONES) == settings.BACKBONES
    assert tuple(augment.AUG_SETS) == settings.AUG_SETS


def test_a_preset_expands_where_it_stands_with_the_presets_it_names():
    reference = presets.flags_of("reference")
    full = presets.flags_of("full-a4p50-f7s1")
    assert "--backbone=efficientnet_b0" in reference and "--aug=a4" not in reference
    # reference.flags first (named on the preset's first line), then its own flags.
    assert full[:len(reference)] == reference and "--aug=a4" in full[len(reference):]
    assert not [line for line in full if line.startswith(("#", "--flagfile"))]
    argv = commands._with_presets(["run_train.py", "--epochs=3", "--preset=full-a4p50-f7s1",
                                   "--epochs=2"])
    assert argv == ["run_train.py", "--epochs=3", *full, "--epochs=2"]
    assert "--epochs=40" in full  # so the flag after it is the one absl keeps


def test_unknown_preset_and_the_list():
    tensorflow, output = probe("run_train.py", "--preset=nope", "--tfrec_dir=r", "--out_dir=o")
    assert not tensorflow and "error: --preset=nope: no such preset" in output
    assert "exit=2" in output
    tensorflow, output = probe("run_train.py", "--preset=list")
    listed = dict(line.split(None, 1) for line in output.splitlines()
                  if line and not line.startswith("exit="))
    assert set(listed) == {path.stem for path in (ROOT / "models").glob("*.flags")}
    assert listed["reference"].startswith("Settings shared by the 12 reference presets")


@pytest.mark.parametrize("given, size", [
    ("640x360", (360, 640)), ("360,640", (360, 640)), (["360", "640"], (360, 640)),
    (["640x360"], (360, 640)), ("512", (512, 512)), (["512"], (512, 512)), ("", None),
    (None, None),
])
def test_one_size_syntax_everywhere(given, size):
    assert cli.image_size(given) == size


@pytest.mark.parametrize("given", ["640by360", "1,2,3", "0x360", "-5", "x360", ["64", "x"]])
def test_a_size_in_no_form_is_a_usage_error(given):
    with pytest.raises(UsageError, match="expected WIDTHxHEIGHT .* or one number"):
        cli.image_size(given, "size")


def test_decoding_and_the_synthetic_world_start_without_tensorflow():
    """A local video is decoded and a world generated without TensorFlow (only a gs:// path
    loads it), so `python -m chimpact.synth` starts at once."""
    done = subprocess.run([sys.executable, "-c", "import sys; import chimpact.synth, "
                           "chimpact.video; print('tensorflow' in sys.modules)"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


@pytest.mark.parametrize("script, flag, kind", [
    ("create_frames.py", "--out_dir", "folder"), ("create_tfrecords.py", "--out_dir", "folder"),
    ("run_train.py", "--out_dir", "folder"), ("run_infer.py", "--out_csv", "file"),
    ("run_infer.py", "--export", "folder"), ("run_field.py", "--out_csv", "file"),
    ("run_field.py", "--annotate", "folder"), ("ensemble.py", "--out_dir", "folder"),
])
def test_an_output_that_cannot_be_written_is_one_line_before_any_work(tmp_path, script, flag,
                                                                      kind):
    blocker = tmp_path / ("folder" if kind == "file" else "file.txt")
    blocker.mkdir() if kind == "file" else blocker.write_text("in the way")
    needed = {"create_frames.py": ["--video_dir=v", "--out_dir=o"],
              "create_tfrecords.py": ["--frames_dir=f", "--labels_csv=l", "--out_dir=o"],
              "run_train.py": ["--tfrec_dir=r", "--out_dir=o"],
              "run_infer.py": ["--model_dir=m", "--submission_csv=s"],
              "run_field.py": ["--model_dir=m", "--video_dir=v", "--detections=d"],
              "ensemble.py": ["--model_dirs=m", "--out_dir=o"]}[script]
    for target in (blocker, blocker / "below"):
        if kind == "file" and target != blocker:
            continue
        tensorflow, output = probe(script, *needed, f"{flag}={target}")
        expected = (f"--{flag[2:]}={target}: is a {'file' if kind == 'folder' else 'folder'}"
                    if target == blocker else f"{blocker} is a file, so no {kind} can be made")
        assert not tensorflow and expected in output and "exit=1" in output, output
        assert [line for line in output.splitlines() if line.startswith("error:")] == [
            next(line for line in output.splitlines() if expected in line)]
    assert sorted(path.name for path in tmp_path.iterdir()) == [blocker.name]
