"""The entry scripts start without TensorFlow: --help, a bad flag value and a bad flag
combination answer before it loads (exit 2); presets expand where they stand; the names the
flags offer are the ones the library builds."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

import chimpact_flags
from chimpact import cli, commands, presets, settings
from chimpact.errors import InputError, UsageError
import videogen
from sequence_records import write_records

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


def probe(script, *args, env=None):
    done = subprocess.run([sys.executable, "-c", PROBE, script, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env=None if env is None else {**os.environ, **env})
    *output, tensorflow = done.stdout.strip().splitlines()
    return tensorflow == "True", "\n".join(output) + done.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_answers_without_tensorflow(script):
    assert (ROOT / script).exists()
    tensorflow, output = probe(script, "--help")
    assert not tensorflow
    assert f"python {script} --" in output and f"{script}:\n  --" in output
    assert "exit=0" in output
    # A usage line continued with a backslash stays two lines (the docstring is raw).
    assert not re.search(r"\S {4,}--\w", output.split(f"{script}:\n")[0]), output


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
    from chimpact.training import augment, model

    assert tuple(model.BACKBONES) == settings.BACKBONES
    assert tuple(augment.AUG_SETS) == settings.AUG_SETS


def test_a_preset_expands_where_it_stands_with_the_presets_it_names():
    reference = presets.flags_of("reference")
    full = presets.flags_of("full-a4p50-f7s1")
    assert "--backbone=efficientnet_b0" in reference and "--aug=a4" not in reference
    # reference.flags first (named on the preset's first line), then its own flags.
    assert full[:len(reference)] == reference and "--aug=a4" in full[len(reference):]
    assert not [line for line in full if line.startswith(("#", "--flagfile"))]
    argv = chimpact_flags.with_presets(["run_train.py", "--epochs=3",
                                        "--preset=full-a4p50-f7s1", "--epochs=2"])
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
    loads it), so `python -m chimpact.demo.synth` starts at once."""
    done = subprocess.run([sys.executable, "-c", "import sys; import chimpact.demo.synth, "
                           "chimpact.data.video; print('tensorflow' in sys.modules)"], cwd=ROOT,
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


# Every HTTPS request goes to a proxy on a closed local port: refused at once, with or without a
# network, as on a machine cut off from Google Cloud Storage.
NO_NETWORK = {"HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
              "NO_PROXY": "", "no_proxy": ""}
BUCKET = "gs://chimpact-unreachable"


@pytest.mark.parametrize("script, args, flag", [
    ("create_frames.py", [f"--video_dir={BUCKET}/videos", "--out_dir=OUT"], "video_dir"),
    ("create_tfrecords.py", ["--frames_dir=OUT/f", f"--labels_csv={BUCKET}/labels.csv",
                             "--out_dir=OUT"], "labels_csv"),
    ("run_train.py", [f"--tfrec_dir={BUCKET}/records", "--out_dir=OUT"], "tfrec_dir"),
    ("run_infer.py", ["--model_dir=OUT/m", f"--export={BUCKET}/export"], "export"),
    ("run_field.py", [f"--model_dir={BUCKET}/model", "--video_dir=OUT/v"], "model_dir"),
    ("ensemble.py", [f"--model_dirs=OUT/a,{BUCKET}/b", "--out_dir=OUT"], "model_dirs"),
])
def test_an_unreachable_bucket_is_one_line_before_any_work(tmp_path, script, args, flag):
    """Input or output, a gs:// path whose bucket Google Cloud Storage does not answer for is
    one line naming the flag (exit 1), before TensorFlow loads and before anything is made."""
    out = tmp_path / "out"
    tensorflow, output = probe(script, *[a.replace("OUT", str(out)) for a in args],
                               env=NO_NETWORK)
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in output, output
    assert errors[0].startswith(f"error: --{flag}=") and \
        f"cannot reach Google Cloud Storage for {BUCKET} (" in errors[0]
    assert not tensorflow and "exit=1" in output and not out.exists()


def test_imagenet_weights_that_cannot_be_fetched_are_one_line_before_anything_is_written(
        tmp_path):
    """The default --weights=imagenet on a machine that cannot download them (nor has them in
    Keras' cache) stops before the model folder is made, saying how to go on without; so does a
    weights file that is not there (what run_train.py runs, in this process)."""
    from chimpact.training import train  # TensorFlow, which this module's other tests avoid

    write_records(tmp_path / "rec", (2, 2))
    out, missing = tmp_path / "model", tmp_path / "nope.weights.h5"
    done = subprocess.run(
        [sys.executable, "run_train.py", f"--tfrec_dir={tmp_path / 'rec'}", f"--out_dir={out}",
         "--backbone=efficientnet_b0", "--weights=imagenet", "--volume_size=3", "--epochs=1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, **NO_NETWORK, "KERAS_HOME": str(tmp_path / "keras")})
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and lines[0].startswith(
        "error: --weights=imagenet: Keras cannot fetch efficientnet_b0's ImageNet weights (URL "
        "fetch failure"), lines
    assert "or pass --weights=none or --weights=PATH" in lines[0]
    assert not out.exists()
    with pytest.raises(InputError, match=f"^--weights={missing}: file not found"):
        train.train(str(tmp_path / "rec"), str(out), backbone="efficientnet_b0",
                    weights=str(missing), volume_size=3, epochs=1)
    assert not out.exists()


def test_each_stage_says_what_it_does_at_info_and_verbosity_silences_it(tmp_path, caplog):
    """create_frames.py logs what it reads, writes and skips at INFO by default (absl's
    --verbosity=0); --verbosity=-1 keeps warnings only; a re-run says what is already done."""
    from chimpact.data import extract, video

    (tmp_path / "videos").mkdir()
    videogen.make_video(tmp_path / "videos" / "a.mp4", 2, fps=5, size=(48, 32))

    def frames(*flags):
        done = subprocess.run([sys.executable, "create_frames.py",
                               f"--video_dir={tmp_path / 'videos'}",
                               f"--out_dir={tmp_path / 'frames'}", *flags],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return [line for line in done.stderr.splitlines() if "extract.py" in line]

    assert frames("--verbosity=-1") == [] and (tmp_path / "frames" / "a.mp4").is_dir()
    said = frames()
    assert len(said) == 1 and said[0].startswith("I") and said[0].endswith(
        f"] {tmp_path / 'videos'} -> {tmp_path / 'frames'}: 0 videos to decode at 1 fps, "
        "1 already done, 0 missing"), said
    # The first run's line, from the library in this process (the command's INFO lines are
    # the library's, shown above).
    with caplog.at_level("INFO", logger=extract.__name__):
        extract.extract_frames(str(tmp_path / "videos"), str(tmp_path / "fresh"),
                               video.DecodeOptions(fps=1.0), progress=False)
    assert f"{tmp_path / 'videos'} -> {tmp_path / 'fresh'}: 1 videos to decode at 1 fps, 0 " \
           "already done, 0 missing" in caplog.messages


def test_ctrl_c_is_one_line_saying_a_rerun_resumes_and_exits_130(capsys):
    @cli.reports_input_errors
    def main(argv):
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as done:
        main(["script"])
    assert done.value.code == 130
    assert capsys.readouterr().err == (
        "interrupted: what was finished is kept; the same command resumes it\n")


def test_ctrl_c_during_a_progress_bar_is_said_on_a_line_of_its_own(capsys):
    import tqdm

    @cli.reports_input_errors
    def main(argv):
        # A bar that Ctrl-C leaves open (a second Ctrl-C in the `finally` that would close it).
        bar = tqdm.tqdm(total=10, unit="video", file=sys.stderr)
        bar.update(3)
        raise KeyboardInterrupt

    with pytest.raises(SystemExit):
        main(["script"])
    lines = capsys.readouterr().err.split("\n")
    assert lines[-2:] == ["interrupted: what was finished is kept; the same command resumes it",
                          ""], lines
    assert "3/10" in lines[-3], lines


@pytest.mark.parametrize("script, args, flag", [
    ("ensemble.py", ["--model_dirs={here},{absent}", "--out_dir={here}/out"], "model_dirs"),
    ("run_infer.py", ["--model_dir={absent}", "--oof"], "model_dir"),
])
def test_a_model_folder_that_is_not_there_is_named_as_such(tmp_path, script, args, flag):
    """Not "no config.json" nor "oof.csv: missing": the folder itself, with its flag."""
    absent = tmp_path / "runs" / "b0"
    tensorflow, output = probe(script, *[arg.format(here=tmp_path, absent=absent)
                                         for arg in args])
    assert [line for line in output.splitlines() if line.startswith("error:")] == [
        f"error: --{flag}={absent}: folder not found"], output
    assert "exit=1" in output and not (tmp_path / "out").exists()


@pytest.mark.parametrize("script", ["run_field.py", "create_frames.py"])
def test_help_heads_the_flags_with_the_script_name_not_its_path(tmp_path, script):
    """Started by its full path (as an installed script is, from a virtual environment's bin/),
    --help names the script, not the folder it lies in."""
    done = subprocess.run([sys.executable, str(ROOT / script), "--helpfull"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    headings = [line for line in done.stdout.splitlines() if line.endswith(".py:")]
    assert headings == [f"{script}:"], headings
