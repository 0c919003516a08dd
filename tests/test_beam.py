"""--runner=beam: each stage on Beam's local runner, in worker processes of its own, gives what
the local path gives on the same inputs (frames and their manifest, record shards and their
manifest byte for byte, field rows), a bad video included, and resumes what a killed run left
without redoing it."""

import json
import pathlib
import shutil

import pandas as pd
import pytest

import videogen
from model_checks import box_model_folder
from chimpact import runner
from chimpact.data import extract, frames, packing, video
from chimpact.errors import UsageError
from chimpact.field import distances, videos
from chimpact.field.jobs import run_field

# Beam's local runner: one worker process where each element writes files of its own (a video's
# frames, rows, contact sheets), two where shards of one set are written side by side. Each
# worker starts TensorFlow (6 CPU s).
BEAM = runner.pipeline_args(extra=["--direct_num_workers=1"])
BEAM_TWO_WORKERS = runner.pipeline_args(extra=["--direct_num_workers=2"])
OPTIONS = video.DecodeOptions(fps=1.0)
GOOD = {"a clip.mp4": 3, "b.avi": 4, "c.asf": 2, "d.mp4": 5}  # seconds of each good video

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    """Four videos in three codecs, one with a space in its name, and one that is no video."""
    folder = tmp_path_factory.mktemp("beam_survey")
    videogen.make_video(folder / "a clip.mp4", 3, fps=10, size=(48, 32))
    videogen.make_video(folder / "b.avi", 4, fps=8, size=(40, 30), codec="mpeg4")
    videogen.make_video(folder / "c.asf", 2, fps=6, size=(48, 32), codec="msmpeg4")
    videogen.make_video(folder / "d.mp4", 5, fps=5, size=(48, 32))
    (folder / "broken.mp4").write_bytes(b"not a video")
    return folder


@pytest.fixture(scope="module")
def local_frames(survey, tmp_path_factory):
    out = tmp_path_factory.mktemp("local_frames")
    summary = extract.extract_frames(str(survey), str(out), OPTIONS, progress=False)
    assert (summary.ok, summary.failed) == (4, 1)
    return out


def contents(folder):
    """{path under `folder`: bytes} of every file in it."""
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(pathlib.Path(folder).rglob("*")) if path.is_file()}


def modified(folder, names):
    return {name: (pathlib.Path(folder) / name).stat().st_mtime_ns for name in names}


def refused(*args, **kwargs):
    """Stands in for a stage's per-element work in this process: on Beam, Beam's worker
    processes do that work, with their own imports."""
    raise AssertionError("an element's work ran in the driver, not in Beam's workers")


def test_pipeline_options_default_to_the_local_runner_with_a_worker_per_core():
    args = runner.pipeline_args("--direct_num_workers=3 --job_name='a b'", ["--x=1"])
    assert args == ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
                    "--default_sdk_harness_log_level=WARNING", "--direct_num_workers=3",
                    "--job_name=a b", "--x=1"]
    assert runner.pipeline_args("--runner=DataflowRunner --project=p") == [
        "--runner=DataflowRunner", "--project=p"]
    with pytest.raises(UsageError, match="--runner=NoSuch: Unexpected pipeline runner"):
        runner.pipeline_args("--runner=NoSuch")
    with pytest.raises(UsageError, match="--beam_options=--job_name='a: No closing quotation"):
        runner.pipeline_args("--job_name='a")
    with pytest.raises(UsageError, match="ram://out: ram:// lives in this process's memory"):
        runner.check_beam(["videos", "ram://out"])


def test_frames_on_beam_are_the_local_frames_and_a_killed_run_resumes(survey, local_frames,
                                                                     tmp_path, monkeypatch):
    out = tmp_path / "beam"
    # What a killed run leaves: one video extracted before it (a local run of part of the
    # folder), one by a Beam worker whose row waits for the driver that never wrote it.
    pd.DataFrame({"video_id": ["a clip.mp4"]}).to_csv(tmp_path / "first.csv", index=False)
    extract.extract_frames(str(survey), str(out), OPTIONS, videos_csv=str(tmp_path / "first.csv"),
                           progress=False)
    (out / extract.ELEMENT_ROWS).mkdir()
    settings = frames.settings_text(frames.settings_dict(OPTIONS, 95, None))
    extract._ElementWork(str(out), OPTIONS, 95)((str(survey / "b.avi"), "b.avi", None, False,
                                                 settings, ""))
    done = modified(out, ["a clip.mp4/00000.jpg", "b.avi/00000.jpg"])

    monkeypatch.setattr(extract, "_extract_video", refused)
    summary = extract.extract_frames(str(survey), str(out), OPTIONS, progress=False,
                                     beam_args=BEAM)
    assert (summary.ok, summary.failed, summary.already_done) == (4, 1, 2)
    assert contents(out) == contents(local_frames)  # every frame and the manifest
    assert modified(out, done) == done
    assert "not a video" not in (out / "manifest.csv").read_text()
    assert pd.read_csv(out / "manifest.csv").set_index("video_id").status.to_dict() == {
        **{name: "ok" for name in GOOD}, "broken.mp4": "error"}


def test_records_on_beam_are_the_local_shards_byte_for_byte_and_a_killed_run_resumes(
        local_frames, tmp_path, monkeypatch):
    pd.DataFrame([(name, t, 2.0 + t + i) for i, (name, seconds) in enumerate(GOOD.items())
                  for t in range(seconds)], columns=["video_id", "time", "distance"]).to_csv(
        tmp_path / "labels.csv", index=False)
    job = dict(labels_csv=str(tmp_path / "labels.csv"), frames_per_side=1, n_folds=2, shards=2,
               progress=False)
    reference = packing.create_records(str(local_frames), out_dir=str(tmp_path / "local"), **job)
    assert len(reference.shards) == 4
    # Killed after two shards: those, and the plan of the run they belong to.
    out = tmp_path / "beam"
    out.mkdir()
    kept = [shard.file for shard in reference.shards[:2]]
    for name in kept:
        shutil.copy2(tmp_path / "local" / name, out / name)
    (out / packing.PLAN).write_text(json.dumps({"fingerprint": reference.fingerprint}) + "\n")
    done = modified(out, kept)

    monkeypatch.setattr(packing, "write_shard", refused)
    manifest = packing.create_records(str(local_frames), out_dir=str(out),
                                      beam_args=BEAM_TWO_WORKERS, **job)
    assert manifest == reference
    assert contents(out) == contents(tmp_path / "local")
    assert modified(out, kept) == done


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return box_model_folder(tmp_path_factory.mktemp("beam_model"))


def test_every_second_on_beam_through_run_field_gives_the_local_rows_and_resumes(
        model_dir, survey, tmp_path, monkeypatch):
    assert run_field(model_dir, str(survey), out_csv=str(tmp_path / "local.csv"),
                     progress=False) == {"broken.mp4": "ffmpeg: moov atom not found; Invalid "
                                                       "data found when processing input"}
    local = pd.read_csv(tmp_path / "local.csv")
    # Killed at the second video: the first one's part waits; marked so that a re-run that
    # predicted it again would show.
    decoded, real = [], videos.decode_times

    def killed_at_the_second(*args, **kwargs):
        decoded.append(args[1])
        if len(decoded) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(videos, "decode_times", killed_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        run_field(model_dir, str(survey), out_csv=str(tmp_path / "beam.csv"), progress=False)
    part, = pathlib.Path(f"{tmp_path / 'beam.csv'}.parts").glob("*.csv")
    first = pd.read_csv(part)
    part.write_text(first.assign(distance=99.5).to_csv(index=False))

    # On Beam, with no video decoded in this process.
    monkeypatch.setattr(videos, "decode_times", refused)
    failures = run_field(model_dir, str(survey), out_csv=str(tmp_path / "beam.csv"),
                         progress=False, beam_args=BEAM)
    assert list(failures) == ["broken.mp4"] and "moov atom not found" in failures["broken.mp4"]
    beam = pd.read_csv(tmp_path / "beam.csv")
    resumed = beam.video_id == first.video_id[0]
    assert (beam.distance[resumed] == 99.5).all() and resumed.sum() == len(first)
    beam.loc[resumed, "distance"] = local.distance[resumed]
    pd.testing.assert_frame_equal(beam, local, rtol=1e-5)
    assert not pathlib.Path(f"{tmp_path / 'beam.csv'}.parts").exists()


def _detections():
    """MegaDetector's video-level output for the survey: an animal in each good video, the
    broken one listed too."""
    images = [{"file": name, "frame_rate": 5.0, "frames_processed": [0, 5, 10],
               "detections": [{"category": "1", "conf": 0.9, "frame_number": 5,
                               "bbox": [0.1 * i, 0.2, 0.3, 0.5]}]}
              for i, name in enumerate([*GOOD, "broken.mp4"])]
    return {"info": {"format_version": "1.4"}, "detection_categories": {"1": "animal"},
            "images": images}


def test_detections_on_beam_give_the_local_rows_and_contact_sheets(model_dir, survey, tmp_path,
                                                                   monkeypatch):
    (tmp_path / "md.json").write_text(json.dumps(_detections()))
    job = dict(detections_json=str(tmp_path / "md.json"), keep_empty=True, progress=False)
    local_failures = run_field(model_dir, str(survey), out_csv=str(tmp_path / "local.csv"),
                               annotate_dir=str(tmp_path / "local_sheets"), **job)
    monkeypatch.setattr(distances, "decode_detected", refused)
    beam_failures = run_field(model_dir, str(survey), out_csv=str(tmp_path / "beam.csv"),
                              annotate_dir=str(tmp_path / "beam_sheets"), beam_args=BEAM, **job)
    assert beam_failures == local_failures and list(local_failures) == ["broken.mp4"]
    local, beam = (pd.read_csv(tmp_path / f"{name}.csv") for name in ("local", "beam"))
    assert local.distance.notna().sum() == 4
    pd.testing.assert_frame_equal(beam, local, rtol=1e-5)
    sheets = contents(tmp_path / "beam_sheets")
    assert sheets == contents(tmp_path / "local_sheets") and len(sheets) == 4
