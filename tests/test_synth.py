"""The synthetic world: geometry in the pixels and boxes, the challenge's tables, same seed same bytes."""

import dataclasses
import filecmp
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from chimpact.data.video import ffmpeg_binary
from chimpact.demo import synth
from chimpact.errors import InputError

REAL = "data/deep-chimpact"
TABLES = ["train_labels.csv", "submission_format.csv", "train_metadata.csv", "test_metadata.csv"]
SMALL = dict(n_videos=4, seed=3, width=64, height=48, fps=4, min_duration_s=15, max_duration_s=22)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    synth.write_world(str(out), progress=False, **SMALL)
    return out


def decode(path, width, height):
    raw = subprocess.run([ffmpeg_binary(), "-loglevel", "error", "-i", str(path), "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def test_distance_grid_is_the_challenges():
    assert len(synth.DISTANCES) == 35
    assert synth.DISTANCES[:3] == (0.0, 0.5, 1.0) and synth.DISTANCES[-1] == 25.0
    assert 13.5 in synth.DISTANCES and 8.5 not in synth.DISTANCES and 9.0 in synth.DISTANCES
    assert synth.DISTANCE_WEIGHTS.sum() == pytest.approx(1.0)


def test_apparent_height_in_pixels_is_inverse_to_distance():
    """Rendering twice with the same lighting and noise, once with the animal away, isolates its pixels."""
    width, height, fps = 160, 120, 2
    checked = 0
    for plan in synth.plan_world(30, seed=5, fps=fps, max_duration_s=25):
        camera = synth.Camera.of(plan.site, width, height)
        background = synth.site_background(plan.site, width, height)
        away = dataclasses.replace(plan, key_columns=(50.0,) * len(plan.key_columns))
        frames = synth.render_video(plan, width, height, fps, background)
        empty = synth.render_video(away, width, height, fps, background)
        for time_s, distance in zip(plan.label_times, plan.distances):
            k = time_s * fps
            (left, top, right, bottom), _, _ = synth.animal_box(plan, camera, k)
            inside = left >= 0 and top >= 0 and right <= width and bottom <= height
            if not inside or distance < 1 or bottom - top < 8:
                continue
            rows = np.flatnonzero((frames[k] != empty[k]).any(axis=(1, 2)))
            expected = camera.focal_px * plan.animal_height_m / distance
            measured = rows.max() - rows.min() + 1 if rows.size else 0
            # A bush in front may hide the top or the feet: only unoccluded animals must match.
            if abs(measured - expected) <= 1.5:
                checked += 1
            else:
                assert measured < expected, (plan.video_id, time_s, measured, expected)
    assert checked >= 20


def test_metadata_boxes_follow_the_geometry():
    """Within a video (one animal, one camera) box height times distance is constant, h = f * H / Z;
    across videos the log box height falls with slope -1 against the log distance."""
    plans = synth.plan_world(200, seed=1, fps=10)
    tables = synth.world_tables(plans, 128, 96, 10, seed=1)
    rows = tables["train_metadata.csv"].merge(tables["train_labels.csv"])
    whole = rows[(rows.y1 > 0) & (rows.y2 < 1) & (rows.x1 > 0) & (rows.x2 < 1) & (rows.distance > 0)]
    product = (whole.y2 - whole.y1) * whole.distance
    per_video = product.groupby(whole.video_id)
    assert (per_video.size() >= 2).sum() >= 20
    assert (per_video.std(ddof=0) / per_video.mean()).max() < 0.01
    slope = np.polyfit(np.log(whole.distance), np.log(whole.y2 - whole.y1), 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.05)


def test_written_tables_are_the_planned_ones(world):
    plans = synth.plan_world(SMALL["n_videos"], SMALL["seed"], SMALL["fps"], min_duration_s=15,
                             max_duration_s=22)
    tables = synth.world_tables(plans, SMALL["width"], SMALL["height"], SMALL["fps"], SMALL["seed"])
    for name, table in tables.items():
        pd.testing.assert_frame_equal(pd.read_csv(world / name), table, check_dtype=False, atol=1e-6)


def test_distance_does_not_depend_on_site_or_id():
    plans = synth.plan_world(3000, seed=2, fps=10)
    labels = pd.DataFrame([(p.site.site_id, p.video_id, d) for p in plans for d in p.distances],
                          columns=["site_id", "video_id", "distance"])
    site_means = labels.groupby("site_id").distance.mean()
    assert (site_means - labels.distance.mean()).abs().max() < 0.6
    first_letter = labels.groupby(labels.video_id.str[0]).distance.mean()
    assert (first_letter - labels.distance.mean()).abs().max() < 1.5
    median_mae = (labels.distance - labels.distance.median()).abs().mean()
    assert 2.8 < median_mae < 4.0  # the real tables: 3.38 m


def test_tables_match_the_real_ones(world, shared_dir):
    for name in TABLES:
        real = pd.read_csv(shared_dir / REAL / name)
        ours = pd.read_csv(world / name)
        assert list(ours.columns) == list(real.columns), name
        assert dict(ours.dtypes) == dict(real.dtypes), name
    real_grid = sorted(pd.read_csv(shared_dir / REAL / "train_labels.csv").distance.unique())
    assert list(synth.DISTANCES) == real_grid
    real_submission = pd.read_csv(shared_dir / REAL / "submission_format.csv")
    assert set(pd.read_csv(world / "submission_format.csv").distance) == set(real_submission.distance)
    assert set(pd.read_csv(world / "train_metadata.csv").park) <= set(
        pd.read_csv(shared_dir / REAL / "train_metadata.csv").park)


def test_tables_follow_the_conventions(world):
    labels = pd.read_csv(world / "train_labels.csv")
    submission = pd.read_csv(world / "submission_format.csv")
    train_meta = pd.read_csv(world / "train_metadata.csv")
    test_meta = pd.read_csv(world / "test_metadata.csv")
    assert list(labels.columns) == ["video_id", "time", "distance"]
    assert list(train_meta.columns) == ["video_id", "time", "x1", "y1", "x2", "y2", "probability", "park",
                                        "site_id"]
    assert set(labels.distance) <= set(synth.DISTANCES)
    assert (labels.time % 10 == 0).all() and labels.time.dtype == np.int64
    assert labels.video_id.str.fullmatch(r"[a-z]{4}\.mp4").all()
    assert (submission.distance == 1.0).all()
    assert labels[["video_id", "time"]].equals(train_meta[["video_id", "time"]])
    assert submission[["video_id", "time"]].equals(test_meta[["video_id", "time"]])
    assert not set(labels.video_id) & set(submission.video_id)
    videos = sorted(os.listdir(world / "videos"))
    assert videos == sorted(set(labels.video_id) | set(submission.video_id))
    boxes = pd.concat([train_meta, test_meta])[["x1", "y1", "x2", "y2", "probability"]].dropna()
    assert ((boxes >= 0) & (boxes <= 1)).all().all()
    assert train_meta.site_id.str.fullmatch(r"[a-z]{3}").all()


def test_videos_have_the_planned_length_and_label_frames(world):
    plans = {p.video_id: p for p in synth.plan_world(SMALL["n_videos"], SMALL["seed"], SMALL["fps"],
                                                     min_duration_s=15, max_duration_s=22)}
    for video_id, plan in plans.items():
        frames = decode(world / "videos" / video_id, SMALL["width"], SMALL["height"])
        assert len(frames) == plan.duration_s * SMALL["fps"]
        assert max(plan.label_times) * SMALL["fps"] < len(frames)


def test_overexposed_videos_trigger_gamma_correction(tmp_path):
    """The frames stage corrects a video when most frames have over 20% of values above 250."""
    plans = synth.plan_world(40, seed=4, fps=2, overexposed_fraction=0.5, max_duration_s=20)[:10]
    assert {p.overexposed for p in plans} == {True, False}
    for plan in plans:
        frames = synth.render_video(plan, 64, 48, 2)
        path = tmp_path / plan.video_id
        synth.encode_mp4([frames], 64, 48, 2, str(path))
        white = (decode(path, 64, 48) > 250).reshape(len(frames), -1).mean(axis=1) > 0.2
        assert (white.mean() > 0.5) == plan.overexposed, plan.video_id


@pytest.mark.slow
def test_same_seed_same_bytes_and_cli(world, tmp_path):
    args = [f"--{k}={v}" for k, v in SMALL.items()]
    subprocess.run([sys.executable, "-m", "chimpact.demo.synth", f"--out_dir={tmp_path}", *args], check=True,
                   capture_output=True)
    names = sorted(os.listdir(world / "videos"))
    match, mismatch, errors = filecmp.cmpfiles(world / "videos", tmp_path / "videos", names, shallow=False)
    assert mismatch == [] and errors == [] and len(match) == SMALL["n_videos"]
    for name in TABLES + ["test_labels.csv", "world.json"]:
        assert (world / name).read_bytes() == (tmp_path / name).read_bytes(), name


def test_other_seed_other_world(world, tmp_path):
    synth.write_world(str(tmp_path), progress=False, **{**SMALL, "seed": 4})
    assert (world / "train_labels.csv").read_bytes() != (tmp_path / "train_labels.csv").read_bytes()


def test_rerun_reuses_videos_and_refuses_another_world(world):
    before = {p.name: p.stat().st_mtime_ns for p in (world / "videos").iterdir()}
    synth.write_world(str(world), progress=False, **SMALL)
    assert {p.name: p.stat().st_mtime_ns for p in (world / "videos").iterdir()} == before
    with pytest.raises(InputError, match="world.json"):
        synth.write_world(str(world), progress=False, **{**SMALL, "seed": 9})


def test_bad_sizes_are_input_errors(tmp_path, capsys):
    from chimpact.demo import survey

    with pytest.raises(InputError, match="--width=63"):
        synth.write_world(str(tmp_path), n_videos=2, width=63, progress=False)
    assert survey.main([f"--out_dir={tmp_path}", "--height=30"]) == 1
    assert capsys.readouterr().err.startswith("error: --width=128 --height=30: need even sizes")
    assert list(tmp_path.iterdir()) == []


def test_writes_through_gfile():
    out = "ram://synth-world"
    synth.write_world(out, progress=False, **{**SMALL, "n_videos": 2, "max_duration_s": 15})
    assert len(tf.io.gfile.listdir(f"{out}/videos")) == 2
    assert tf.io.gfile.exists(f"{out}/train_labels.csv")


def test_crowded_scenes_keep_the_named_animal_and_draw_the_others():
    single = synth.plan_world(20, seed=5, fps=4)
    crowded = synth.plan_world(20, seed=5, fps=4, max_animals=3, multi_fraction=0.5)
    # The labels name the same animal as in the world of one animal per video.
    assert [dataclasses.replace(p, companions=()) for p in crowded] == single
    counts = [len(p.animals) for p in crowded]
    assert set(counts) == {1, 2, 3} and 5 <= sum(c > 1 for c in counts) <= 15

    plan = next(p for p in crowded if len(p.animals) == 3)
    camera = synth.Camera.of(plan.site, 96, 72)
    background, _ = synth.site_background(plan.site, 96, 72)
    frame = synth.render_video(dataclasses.replace(plan, night=False), 96, 72, 4)[0]
    drawn = 0
    for animal in plan.animals:
        (left, top, right, bottom), _, _ = synth.animal_box(animal, camera, 0)
        rows = slice(max(int(top), 0), max(int(bottom), 0))
        cols = slice(max(int(left), 0), max(int(right), 0))
        inside = frame[rows, cols].astype(float)
        if inside.size and (right - left) * (bottom - top) > 20:
            drawn += np.mean(inside.mean(-1) < background[rows, cols].mean(-1) - 30) > 0.1
    assert drawn >= 2

    output, truth = synth.test_detections(crowded, 96, 72, 4)
    detections = [(image["file"], d["frame_number"] // 4, d["bbox"]) for image in output["images"]
                  for d in image["detections"]]
    assert len(detections) == len(truth) > 0
    assert output["detection_categories"]["1"] == "animal"
    for (file, time, (x, y, width, height)), row in zip(detections, truth.itertuples()):
        assert (file, time) == (row.video_id, row.time)
        np.testing.assert_allclose([x, y, x + width, y + height], [row.x1, row.y1, row.x2, row.y2],
                                   atol=1e-5)


def test_a_survey_at_new_cameras_with_setup_clips_deployments_and_both_layouts(tmp_path):
    from chimpact.data import extract
    from chimpact.demo import survey
    from chimpact.field import calibration, deployments, megadetector

    survey.write_survey(str(tmp_path), seed=7, width=64, height=48, fps=2,
                        videos_per_deployment=2, progress=False)
    setups = {f"{site}/{survey.SETUP_ID}" for site in pd.read_csv(
        tmp_path / "deployments.csv").deploymentID}
    # every camera lies outside the training world's range in height, horizon or lens
    for camera in survey.CAMERAS:
        assert any(not low <= camera[name] <= high
                   for name, (low, high) in synth.CAMERA_RANGES.items())
    videos = deployments.read_videos(str(tmp_path / "videos.csv"), deployments.read_deployments(
        str(tmp_path / "deployments.csv")))
    found = extract.video_ids(str(tmp_path / "videos"), folders=True)
    assert sorted(videos) == found and len(found) == 3 * 3 and setups <= set(found)
    assert all(deployment == video_id.split("/")[0]
               for video_id, (deployment, _) in videos.items())
    # the references: five marks per camera, increasing, each box whole inside the frame
    references = calibration.read_calibration(str(tmp_path / "calibration.csv"))
    assert set(references.video_id) == setups
    for _, marks in references.groupby("deployment_id"):
        assert len(marks) == survey.N_MARKS and marks.distance.is_monotonic_increasing
        assert marks.distance.iloc[-1] == survey.FAR_MARK_M
        assert ((marks[["x1", "y1"]] > 0).all(axis=1) & (marks[["x2", "y2"]] < 1).all(axis=1)).all()
    # both MegaDetector layouts read into the same detections of the survey videos alone
    layouts = [megadetector.read_detections(str(tmp_path / name))
               for name in ("detections.json", "detections.frames.json")]
    tables = [{v.file: (v.frame_rate, v.frames_processed, v.detections.to_numpy().tolist())
               for v in layout.videos} for layout in layouts]
    assert tables[0] == tables[1] and set(tables[0]) == set(found) - setups
    truth = pd.read_csv(tmp_path / "animals.csv")
    assert len(truth) == sum(len(v.detections) for v in layouts[0].videos)
    # a horizon above the centre row is a camera tilted down
    tilts = pd.read_csv(tmp_path / "deployments.csv").cameraTilt
    assert (tilts < 0).all()
