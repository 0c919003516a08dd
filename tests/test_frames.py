"""create_frames.py: which picture each frame shows, gamma rules, bad inputs, resume, gfile."""

import dataclasses
import io
import math
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from PIL import Image

from chimpact.data import extract, frames, video
from chimpact.errors import InputError, UsageError
from videogen import frame_number, make_video

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> (codec, source fps, seconds, (width, height)); each picture shows its frame number.
CLIPS = {
    "long clip.mp4": ("h264", 30, 61, (96, 64)),
    "odd.avi": ("mpeg4", 7.5, 9, (97, 63)),
    "odd.asf": ("msmpeg4", 30, 4, (97, 64)),
    "short.mp4": ("h264", 7.5, 1, (64, 48)),
    "slow.asf": ("msmpeg4", 7.5, 5, (96, 64)),
}
OVEREXPOSED = "over.mp4"
FLASH = "flash.avi"  # a normal video whose second 2 is a white camera flash


def read_frame(frames_dir, video_id, index):
    """RGB array of one extracted frame, through tf.io.gfile (works for ram:// too)."""
    data = tf.io.gfile.GFile(frames.frame_path(frames_dir, video_id, index), "rb").read()
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def manifest_rows(frames_dir):
    return frames.read_manifest(frames_dir).set_index("video_id")


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    for name, (codec, fps, seconds, size) in CLIPS.items():
        make_video(folder / name, seconds, fps, size, codec)
    make_video(folder / OVEREXPOSED, 4, 30, (96, 64), "h264", overexposed=True)
    make_video(folder / FLASH, 5, 30, (96, 64), "mpeg4", flash_seconds=(2,))
    return folder


@pytest.fixture(scope="module")
def extracted(clip_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("frames")
    summary = extract.extract_frames(str(clip_dir), str(out), video.DecodeOptions(),
                                     workers=2, progress=False)
    return out, summary


def test_frame_k_shows_the_picture_at_second_k(extracted):
    out, summary = extracted
    assert (summary.ok, summary.failed) == (len(CLIPS) + 2, 0)
    rows = manifest_rows(out)
    for name, (_, src_fps, seconds, size) in CLIPS.items():
        n_source = int(round(seconds * src_fps))
        # Frames run to the end of the last picture, at n_source / src_fps seconds.
        expected = math.ceil(n_source / src_fps - 1e-9)
        row = rows.loc[name]
        assert (row.n_frames, row.width, row.height, row.status) == (expected, *size, "ok")
        assert row.duration_s == pytest.approx(n_source / src_fps, abs=0.07)
        assert sorted(os.listdir(out / name)) == [frames.frame_name(k) for k in range(expected)]
        shown = [frame_number(read_frame(str(out), name, k)) for k in range(expected)]
        assert shown == [math.floor(k * src_fps) for k in range(expected)], name


def test_gamma_auto_corrects_only_overexposed_videos(extracted):
    out, _ = extracted
    rows = manifest_rows(out)
    assert bool(rows.loc[OVEREXPOSED].gamma_corrected)
    assert not any(rows.loc[name].gamma_corrected for name in [*CLIPS, FLASH])
    # eq=gamma=0.1 maps luma v to v**10 on the limited-range plane: white (Y 235) becomes
    # Y 113, RGB ~112, and mid-grey becomes black.
    corrected = read_frame(str(out), OVEREXPOSED, 1)
    bottom = corrected[corrected.shape[0] * 5 // 8:]
    assert bottom.mean() == pytest.approx(112, abs=6)
    assert video.white_ratio(corrected, 250) == 0
    # One flash frame does not darken the video: it stays white, the others untouched.
    assert read_frame(str(out), FLASH, 2).min() > 240
    assert frame_number(read_frame(str(out), FLASH, 3)) == 90


def test_gamma_off_and_on(clip_dir):
    plain, info = video.decode_video(str(clip_dir / OVEREXPOSED), gamma="off")
    assert not info["gamma_corrected"]
    assert video.white_ratio(plain[0], 250) > 0.4
    assert [frame_number(f) for f in plain] == [0, 30, 60, 90]
    forced, info = video.decode_video(str(clip_dir / "short.mp4"), gamma="on")
    assert info["gamma_corrected"] and forced.max() < 20


def test_labelled_frames_decide_overexposure(clip_dir, tmp_path):
    path = str(clip_dir / FLASH)
    at_flash, info = video.decode_video(path, labelled_frames=[2])
    assert info["gamma_corrected"] and at_flash[2].mean() < 150
    elsewhere, info = video.decode_video(path, labelled_frames=[0, 4, 99])
    assert not info["gamma_corrected"] and elsewhere[2].min() > 240
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"video_id": [FLASH, FLASH, "short.mp4"], "time": [0, 2, 0],
                  "distance": [1.0, 2.0, 3.0]}).to_csv(labels, index=False)
    assert extract.labelled_frames(str(labels), 1.0) == {FLASH: [0, 2], "short.mp4": [0]}
    out = tmp_path / "frames"
    extract.extract_frames(str(clip_dir), str(out), video.DecodeOptions(),
                           videos_csv=str(labels), labels_csv=str(labels), progress=False)
    rows = manifest_rows(out)
    assert bool(rows.loc[FLASH].gamma_corrected) and not rows.loc["short.mp4"].gamma_corrected
    assert video.is_overexposed([0.1, 0.5, 0.3], 0.2)
    assert not video.is_overexposed([0.1, 0.5, 0.1], 0.2)
    assert not video.is_overexposed([0.1, 0.5, 0.1], 0.2, labelled_frames=[7])


def test_size_and_videos_csv(clip_dir, tmp_path):
    table = tmp_path / "videos.csv"
    pd.DataFrame({"video_id": ["odd.avi", "short.mp4", "gone.mp4"]}).to_csv(table, index=False)
    out = tmp_path / "frames"
    options = video.DecodeOptions(size=(48, 36))
    summary = extract.extract_frames(str(clip_dir), str(out), options, quality=80,
                                     videos_csv=str(table), progress=False)
    assert (summary.ok, summary.failed) == (2, 1)
    assert summary.failures == {"gone.mp4": f"not in --video_dir={clip_dir}"}
    rows = manifest_rows(out)
    gone = rows.loc["gone.mp4"]
    assert gone.status == "error" and "not in --video_dir" in gone.error
    assert set(os.listdir(out)) == {"odd.avi", "short.mp4", "manifest.csv"}
    image = read_frame(str(out), "odd.avi", 4)
    assert image.shape == (36, 48, 3) and frame_number(image) == 30
    assert (rows.loc["odd.avi"].width, rows.loc["odd.avi"].height) == (48, 36)
    same = extract.extract_frames(str(clip_dir), str(out), options, quality=80,
                                  videos_csv=str(table), progress=False)
    assert same.already_done == 2
    with pytest.raises(UsageError) as refused:
        extract.extract_frames(str(clip_dir), str(out), video.DecodeOptions(size=(64, 48)),
                               videos_csv=str(table), progress=False)
    assert str(refused.value) == (
        f"--out_dir={out}: holds frames made with size=48x36 quality=80, not size=64x48 "
        "quality=95: use another --out_dir, or --overwrite to redo them")
    assert read_frame(str(out), "odd.avi", 4).shape == (36, 48, 3)
    bigger = extract.extract_frames(str(clip_dir), str(out), video.DecodeOptions(size=(64, 48)),
                                    videos_csv=str(table), overwrite=True, progress=False)
    assert bigger.already_done == 0 and read_frame(str(out), "odd.avi", 4).shape == (48, 64, 3)


def test_a_size_that_turns_the_videos_orientation_is_warned(clip_dir, tmp_path, caplog):
    """--size=64,48 (WIDTH,HEIGHT where the comma form is HEIGHT,WIDTH) of a 64x48 video: one
    warning line before the work, which goes on as asked; the right way round, none."""
    table = tmp_path / "videos.csv"
    pd.DataFrame({"video_id": ["short.mp4"]}).to_csv(table, index=False)
    for size, out in [((64, 48), "landscape"), ((48, 64), "portrait")]:
        caplog.clear()
        extract.extract_frames(str(clip_dir), str(tmp_path / out), video.DecodeOptions(size=size),
                               videos_csv=str(table), progress=False)
        assert read_frame(str(tmp_path / out), "short.mp4", 0).shape == (size[1], size[0], 3)
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert warnings == ([] if out == "landscape" else [
            "--size=64,48 makes portrait frames (48 wide, 64 high) of landscape pictures (64x48): "
            "the comma form is HEIGHT,WIDTH; for landscape frames give --size=64x48 "
            "(WIDTHxHEIGHT)"])


def test_changed_settings_redo_the_video(clip_dir, tmp_path):
    table = tmp_path / "videos.csv"
    pd.DataFrame({"video_id": ["short.mp4"], "time": [0]}).to_csv(table, index=False)
    out = str(tmp_path / "frames")

    def redone(options, quality=95, labels_csv=None, overwrite=False):
        summary = extract.extract_frames(str(clip_dir), out, options, quality=quality,
                                         videos_csv=str(table), labels_csv=labels_csv,
                                         overwrite=overwrite, progress=False)
        assert (summary.ok, summary.failed) == (1, 0)
        return summary.already_done == 0

    options = video.DecodeOptions(gamma="off")
    assert redone(options) and not redone(options)
    for change in [dict(gamma="on"), dict(gamma_value=0.5), dict(gamma="auto"),
                   dict(white_threshold=200), dict(white_ratio=0.5), dict(size=(32, 24)),
                   dict(size=None), dict(fps=2.0)]:
        options = dataclasses.replace(options, **change)
        with pytest.raises(UsageError, match="use another --out_dir, or --overwrite"):
            redone(options)  # other settings: refused, not mixed in
        assert redone(options, overwrite=True) and not redone(options), change
        first = read_frame(out, "short.mp4", 0)
        if change == dict(gamma="on"):
            assert first.max() < 20
        if "size" in change:
            assert first.shape == ((24, 32, 3) if change["size"] else (48, 64, 3))
    assert redone(options, 50, overwrite=True) and not redone(options, quality=50)
    assert redone(options, 50, str(table)) and not redone(options, 50, str(table))
    assert manifest_rows(out).loc["short.mp4"].settings == (
        "fps=2.0 size=native gamma=auto gamma_value=0.5 white_threshold=200 white_ratio=0.5 "
        "quality=50 labelled=True")


@pytest.mark.parametrize("unrelated", ["thesis.pdf", "photos/", "short.mp4"])
def test_a_folder_of_other_files_is_refused_as_out_dir(clip_dir, tmp_path, unrelated):
    """A thesis, a folder of photos, or the videos themselves (a file named like a video, where
    its frames' folder would go): refused in one line, nothing written."""
    out = tmp_path / "frames"
    out.mkdir()
    if unrelated.endswith("/"):
        (out / unrelated).mkdir()
    else:
        (out / unrelated).write_text("mine")
    with pytest.raises(UsageError) as refused:
        extract.extract_frames(str(clip_dir), str(out), video.DecodeOptions(), progress=False)
    assert str(refused.value) == (f"--out_dir={out}: holds {unrelated.rstrip('/')}, which "
                                  "create_frames.py did not write: give an empty or new folder")
    assert sorted(os.listdir(out)) == [unrelated.rstrip("/")]


def test_a_video_whose_frames_cannot_be_written_fails_alone(clip_dir, tmp_path):
    videos, out = tmp_path / "videos", tmp_path / "frames"
    videos.mkdir()
    # Its temporary folder (name + ".tmp-0123abcd") has a name longer than a file system allows.
    too_long = "x" * 246 + ".mp4"
    for name in ["short.mp4", too_long]:
        os.link(clip_dir / "short.mp4", videos / name)
    summary = extract.extract_frames(str(videos), str(out), video.DecodeOptions(),
                                     progress=False)
    assert (summary.ok, summary.failed) == (1, 1)
    rows = manifest_rows(out)
    assert rows.loc["short.mp4"].status == "ok" and rows.loc[too_long].status == "error"
    assert rows.loc[too_long].error.startswith("cannot encode or write frames: ")


def test_remote_paths_through_gfile(clip_dir):
    src, out = "ram://chimpact-test/videos", "ram://chimpact-test/frames"
    tf.io.gfile.makedirs(src)
    tf.io.gfile.copy(str(clip_dir / "odd.asf"), f"{src}/odd.asf", overwrite=True)
    summary = extract.extract_frames(src, out, video.DecodeOptions(), progress=False)
    assert (summary.ok, summary.failed) == (1, 0)
    assert manifest_rows(out).loc["odd.asf"].n_frames == 4
    assert frame_number(read_frame(out, "odd.asf", 3)) == 90
    again = extract.extract_frames(src, out, video.DecodeOptions(), progress=False)
    assert again.already_done == 1


def test_resume_after_a_kill(clip_dir, tmp_path):
    out = tmp_path / "frames"
    first = extract.extract_frames(str(clip_dir), str(out), video.DecodeOptions(gamma="off"),
                                   progress=False)
    assert first.ok == len(CLIPS) + 2
    # A kill can leave a half-written temporary folder, a finished folder whose manifest row
    # was never written, and an ok row whose folder was removed.
    leftover = out / "odd.avi.tmp-0123abcd"
    leftover.mkdir()
    (leftover / "00000.jpg").write_bytes(b"half")
    rows = frames.read_manifest(str(out))
    rows[rows.video_id != "odd.asf"].to_csv(out / "manifest.csv", index=False)
    shutil.rmtree(out / "short.mp4")
    kept = os.stat(out / "long clip.mp4" / "00000.jpg").st_mtime_ns
    second = extract.extract_frames(str(clip_dir), str(out), video.DecodeOptions(gamma="off"),
                                    progress=False)
    assert (second.ok, second.failed, second.already_done) == (first.ok, 0, first.ok - 2)
    assert not leftover.exists()
    assert len(os.listdir(out / "short.mp4")) == 2 and len(os.listdir(out / "odd.asf")) == 4
    assert set(manifest_rows(out).index) == set(CLIPS) | {OVEREXPOSED, FLASH}
    assert os.stat(out / "long clip.mp4" / "00000.jpg").st_mtime_ns == kept
    third = extract.extract_frames(str(clip_dir), str(out), video.DecodeOptions(gamma="off"),
                                   overwrite=True, progress=False)
    assert third.already_done == 0 and third.ok == first.ok


@pytest.mark.slow
def test_resume_after_kill_9(clip_dir, tmp_path):
    videos, out = tmp_path / "videos", tmp_path / "frames"
    videos.mkdir()
    for i in range(40):
        os.link(clip_dir / "long clip.mp4", videos / f"copy{i:02d}.mp4")
    process = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "create_frames.py"), f"--video_dir={videos}",
         f"--out_dir={out}", "--workers=1", "--gamma=off"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while process.poll() is None and not (out / "copy00.mp4").exists():
            time.sleep(0.01)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -9  # killed mid-run, not finished
    summary = extract.extract_frames(str(videos), str(out), video.DecodeOptions(gamma="off"),
                                     progress=False)
    assert (summary.ok, summary.failed) == (40, 0)
    assert sorted(os.listdir(out)) == sorted([*os.listdir(videos), "manifest.csv"])
    assert all(len(os.listdir(out / name)) == 61 for name in os.listdir(videos))


def test_timeout_kills_ffmpeg(clip_dir):
    with pytest.raises(video.VideoError, match="timed out after 0.001 s"):
        video.decode_video(str(clip_dir / "long clip.mp4"), timeout=0.001)


def test_input_errors_are_one_line(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        extract.list_videos(str(tmp_path / "absent"))
    (tmp_path / "notes.txt").write_text("not a video")
    with pytest.raises(InputError, match="holds no video files"):
        extract.list_videos(str(tmp_path))
    with pytest.raises(InputError, match="gamma"):
        video.DecodeOptions(gamma="maybe")
    labels = tmp_path / "labels.csv"
    for time_s in ["", "soon"]:
        labels.write_text(f"video_id,time\na.mp4,3\nb.mp4,{time_s}\n")
        with pytest.raises(InputError, match=r"labels.csv line 3: time .* is not a number"):
            extract.labelled_frames(str(labels), 1.0)


@pytest.fixture
def bad_dir(clip_dir, tmp_path):
    """Two good videos and one of each kind of bad input."""
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(clip_dir / "short.mp4", folder / "good one.mp4")
    shutil.copy(clip_dir / "odd.asf", folder / "good.asf")
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "text.mp4").write_text("this is not a video\n" * 20)
    long_mp4 = (clip_dir / "long clip.mp4").read_bytes()
    (folder / "cut.mp4").write_bytes(long_mp4[: len(long_mp4) // 2])
    avi = make_video(folder / "whole.avi", 20, 30, codec="mpeg4").read_bytes()
    (folder / "whole.avi").unlink()
    (folder / "cut.avi").write_bytes(avi[: len(avi) // 2])
    subprocess.run([video.ffmpeg_binary(), "-loglevel", "error", "-f", "lavfi", "-i",
                    "sine=d=1", "-c:a", "aac", str(folder / "sound.mp4")], check=True)
    os.symlink(folder / "nowhere", folder / "unreadable.mp4")
    (folder / "readme.md").write_text("ignored: not a video extension")
    return folder


BAD_REASONS = {
    "empty.mp4": "empty file",
    "text.mp4": "Invalid data found",
    "cut.mp4": "moov atom not found",
    "cut.avi": "corrupt or truncated",
    "sound.mp4": "no video stream",
    "unreadable.mp4": "no such file",
}


@pytest.mark.slow
def test_create_frames_cli_reports_bad_inputs(bad_dir, tmp_path):
    out = tmp_path / "frames"
    command = [sys.executable, os.path.join(ROOT, "create_frames.py"),
               f"--video_dir={bad_dir}", f"--out_dir={out}", "--workers=2"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 1, result.stderr
    assert result.stdout.strip().splitlines()[-1] == f"2 ok, {len(BAD_REASONS)} failed"
    # Each failed video named on its own line with its reason, not only in manifest.csv.
    named = dict(line.split(": ", 1) for line in result.stderr.splitlines()
                 if line.split(": ", 1)[0] in BAD_REASONS)
    assert sorted(named) == sorted(BAD_REASONS), result.stderr
    assert all(reason in named[name] for name, reason in BAD_REASONS.items()), named
    rows = manifest_rows(out)
    assert list(rows.columns) == frames.MANIFEST_COLUMNS[1:]
    assert (rows.loc[["good one.mp4", "good.asf"], "status"] == "ok").all()
    for name, reason in BAD_REASONS.items():
        assert rows.loc[name].status == "error" and reason in rows.loc[name].error, name
        assert not (out / name).exists()
    missing = subprocess.run([*command[:2], f"--video_dir={tmp_path / 'absent'}",
                              f"--out_dir={out}"], capture_output=True, text=True, cwd=ROOT)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines()[-1].startswith("error: --video_dir=")


def test_real_clips(shared_dir, tmp_path):
    out = tmp_path / "frames"
    summary = extract.extract_frames(str(shared_dir / "videos"), str(out),
                                     video.DecodeOptions(), progress=False)
    rows = manifest_rows(out)
    assert summary.failed == 0 and summary.ok == len(rows) >= 9
    for name, row in rows.iterrows():
        assert abs(row.n_frames - row.duration_s) <= 1, name
        assert len(os.listdir(out / name)) == row.n_frames
        assert read_frame(str(out), name, row.n_frames - 1).shape == (row.height, row.width, 3)


def test_creation_time_is_the_containers_and_never_an_unset_clock(shared_dir, tmp_path):
    source = make_video(tmp_path / "plain.mp4", 1, fps=5, size=(32, 32))
    assert video.creation_time(str(source)) is None
    stamped = tmp_path / "stamped.mp4"
    subprocess.run([video.ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-i",
                    str(source), "-c", "copy", "-metadata", "creation_time=2021-03-01T07:10:00Z",
                    str(stamped)], check=True)
    assert video.creation_time(str(stamped)).startswith("2021-03-01T07:10:00")
    # this real ASF's camera wrote the Unix epoch: no time
    assert video.creation_time(str(shared_dir / "videos" / "PICT0021.ASF")) is None
    assert video.creation_time(str(tmp_path / "absent.mp4")) is None
