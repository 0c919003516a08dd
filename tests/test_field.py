"""Per-animal distances from MegaDetector output: the rows, the skipped detections, the error rows,
snapshot moments, intervals and contact sheets, with an untrained box model (the numbers need not
be good, only the ones the documented computation gives)."""

import json
import logging
import os
import pathlib
import subprocess
import sys
import threading

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from PIL import Image

import camtrap_rules
import videogen
from model_checks import JAX, box_model_folder
from sequence_records import write_records
from chimpact.data import boxes, video
from chimpact.errors import InputError, UsageError
from chimpact.field import annotate, detections, distances, jobs, videos
from chimpact.field.jobs import run_field
from chimpact.predict import infer
from chimpact.predict.jobs import run_infer
from chimpact.training import model, train

REPO = pathlib.Path(__file__).resolve().parents[1]
# MegaDetector boxes [x, y, width, height], and the same as corners (x1, y1, x2, y2).
BBOX_A, BBOX_B, BBOX_C = [0.1, 0.2, 0.3, 0.5], [0.5, 0.1, 0.4, 0.8], [0.0, 0.5, 0.2, 0.2]
BOX_A, BOX_B, BOX_C = [0.1, 0.2, 0.4, 0.7], [0.5, 0.1, 0.9, 0.9], [0.0, 0.5, 0.2, 0.7]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A box model folder as run_train.py leaves it: two untrained folds and an oof.csv whose
    errors (true - predicted) run from -3 to +5 m."""
    return box_model_folder(tmp_path_factory.mktemp("boxmodel"))


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("field")
    videogen.make_video(path / "four.mp4", 4, fps=5, size=(48, 32))
    videogen.make_video(path / "six.avi", 6, fps=5, size=(40, 30), codec="mpeg4")
    return str(path)


def _detection(frame, bbox, conf=0.9, category="1"):
    return {"category": category, "conf": conf, "frame_number": frame, "bbox": bbox}


MD_OUTPUT = {
    "info": {"format_version": "1.4"},
    "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
    "images": [
        # frame 10, nearer t=2 than frame 11, was not processed
        {"file": "four.mp4", "frame_rate": 5.0, "frames_processed": [0, 5, 11, 12, 15],
         "detections": [
             _detection(0, BBOX_A),
             _detection(0, BBOX_B, conf=0.1),                  # below --min_conf
             _detection(0, BBOX_B, conf=0.95, category="2"),   # a person
             _detection(5, BBOX_A), _detection(5, BBOX_B, conf=0.5),  # two animals at t=1
             _detection(12, BBOX_C),  # t=2.4 s: farther from t=2 than frame 11
             _detection(11, BBOX_B),  # t=2.2 s: the frame used at t=2
         ]},
        {"file": "missing.mp4", "frame_rate": 30.0, "detections": [_detection(30, BBOX_A)]},
        {"file": "six.avi", "frame_rate": 5.0, "detections": [_detection(25, BBOX_C)]},
        {"file": "failed.mp4", "failure": "Failed to open video"},
    ],
}


def _write_json(tmp_path, data=MD_OUTPUT):
    path = tmp_path / "md.json"
    path.write_text(json.dumps(data))
    return str(path)


def _run(model_dir, video_dir, md_json, out_csv, *extra, env=None):
    return subprocess.run(
        [sys.executable, str(REPO / "run_field.py"), f"--model_dir={model_dir}",
         f"--video_dir={video_dir}", f"--detections={md_json}", f"--out_csv={out_csv}",
         "--batch_size=3", *extra], capture_output=True, text=True, cwd=REPO, timeout=300,
        env=None if env is None else {**os.environ, **env})


def _fold_distances(model_dir, video_path, times, box_rows):
    """[n, folds]: each fold network on the sequences at `times` with the boxes `box_rows`."""
    pictures, _ = video.decode_video(video_path, fps=1.0, size=(32, 32))
    sequences = videos.sequences(pictures, times, 1.0, 1, 1, 3)
    box = np.column_stack([np.asarray(box_rows, np.float32), np.ones(len(box_rows))])
    return np.column_stack([network.predict({"frames": sequences, "box": box}, verbose=0)[:, 0]
                            for network in model.load_fold_models(model_dir).values()])


def test_detections_rows_skips_and_errors_are_as_documented(model_dir, video_dir, tmp_path):
    out_csv = tmp_path / "animals.csv"
    done = _run(model_dir, video_dir, _write_json(tmp_path), out_csv, "--annotate",
                str(tmp_path / "sheets"))
    assert done.returncode == 1, done.stderr[-3000:]
    assert "missing.mp4: not found in --video_dir" in done.stderr
    assert "failed.mp4: MegaDetector failed on it: Failed to open video" in done.stderr
    assert "2 video(s) could not be predicted" in done.stderr
    assert "1 detections skipped (category person)" in done.stderr
    assert "1 detections skipped (conf below --min_conf=0.2)" in done.stderr

    table = pd.read_csv(out_csv)
    assert list(table.columns) == distances.COLUMNS
    # the video folder's own name is the deployment of the videos at its top
    assert set(table.deployment_id) == {pathlib.Path(video_dir).name}
    assert list(zip(table.video_id, table.time.fillna(-1), table.detection.fillna(-1))) == [
        ("four.mp4", 0, 0), ("four.mp4", 1, 0), ("four.mp4", 1, 1), ("four.mp4", 2, 0),
        ("missing.mp4", -1, -1), ("six.avi", 5, 0), ("failed.mp4", -1, -1)]
    good = table[table.error.isna()]
    np.testing.assert_allclose(good[boxes.COORDINATES].to_numpy(),
                               [BOX_A, BOX_A, BOX_B, BOX_B, BOX_C], atol=1e-6)
    np.testing.assert_allclose(good.conf, [0.9, 0.9, 0.5, 0.9, 0.9])
    errors = table[table.error.notna()]
    assert errors.distance.isna().all() and errors.x1.isna().all()

    # The distance is the fold mean for the detection's own box; two animals of one frame differ.
    per_fold = _fold_distances(model_dir, f"{video_dir}/four.mp4", [0, 1, 1, 2],
                               [BOX_A, BOX_A, BOX_B, BOX_B])
    four = good[good.video_id == "four.mp4"]
    np.testing.assert_allclose(four.distance, per_fold.mean(axis=1), atol=1e-4)
    assert abs(four.distance.iloc[1] - four.distance.iloc[2]) > 1e-4
    # The interval: the OOF errors' 10th and 90th percentiles around the distance (-2.2, +4.2
    # m), widened to hold every fold's prediction.
    np.testing.assert_allclose(four.distance_high,
                               np.maximum(per_fold.max(axis=1), four.distance + 4.2), atol=1e-4)
    np.testing.assert_allclose(four.distance_low, np.minimum(
        per_fold.min(axis=1), np.maximum(four.distance - 2.2, 0)), atol=1e-4)
    assert (good.distance_low <= good.distance).all() and (good.distance <= good.distance_high).all()

    # One contact sheet per predicted video: 4 and 6 snapshot tiles 320 wide with the videos'
    # aspect (48 x 32 and 40 x 30), not the model's 32 x 32 frames, and a legend below them.
    assert sorted(p.name for p in (tmp_path / "sheets").iterdir()) == ["four.mp4.jpg",
                                                                         "six.avi.jpg"]
    four = Image.open(tmp_path / "sheets" / "four.mp4.jpg")
    assert four.size == (4 * 320, 213 + annotate.LEGEND_HEIGHT)
    assert Image.open(tmp_path / "sheets" / "six.avi.jpg").size == (
        6 * 320, 240 + annotate.LEGEND_HEIGHT)


def _shows(image, colour):
    """Whether `image` has a pixel of `colour` at 70-100% brightness (antialiased text)."""
    pixels = np.asarray(image, np.float64).reshape(-1, 3)
    colour = np.asarray(colour, np.float64)
    scale = pixels @ colour / (colour @ colour)
    return bool(((scale > 0.7) & (np.abs(pixels - scale[:, None] * colour).max(axis=1) < 12)
                 ).any())


def test_the_field_job_under_jax_gives_the_rows_tensorflow_gives(model_dir, video_dir,
                                                                 tmp_path):
    """run_field.py under Keras' JAX backend on two CPU devices, with two test-time views (the
    box flipped with the frames): every animal's distance and interval as under TensorFlow."""
    md_json = _write_json(tmp_path)
    done = _run(model_dir, video_dir, md_json, tmp_path / "jax.csv", "--tta=2", env=JAX)
    assert done.returncode == 1 and "2 video(s) could not be predicted" in done.stderr
    run_field(model_dir, video_dir, detections_json=md_json, out_csv=str(tmp_path / "tf.csv"),
              tta=2, batch_size=3, progress=False)
    under_jax, here = pd.read_csv(tmp_path / "jax.csv"), pd.read_csv(tmp_path / "tf.csv")
    assert len(here) == 7 and here.distance.notna().sum() == 5
    pd.testing.assert_frame_equal(under_jax.drop(columns=["distance", "distance_low",
                                                          "distance_high"]),
                                  here.drop(columns=["distance", "distance_low",
                                                     "distance_high"]))
    for column in ("distance", "distance_low", "distance_high"):
        np.testing.assert_allclose(under_jax[column], here[column], atol=1e-4, rtol=0,
                                   err_msg=column)


def test_contact_sheets_keep_the_videos_aspect_and_explain_their_colours():
    rows = pd.DataFrame({"time": [0.0, 1.0, 1.0], "detection": [0, 0, 1], "x1": 0.1, "y1": 0.1,
                         "x2": 0.5, "y2": 0.5, "distance": [3.55, 4.0, 7.5]})
    sheet = annotate.contact_sheet(np.zeros((2, 32, 32, 3), np.uint8), [0.0, 1.0], rows, 16 / 9)
    assert sheet.size == (2 * 320, 180 + annotate.LEGEND_HEIGHT)
    cyan = annotate._COLOURS[1]
    # the tiles: red boxes at both moments, cyan (the frame's second animal) at 1 s only
    assert not _shows(sheet.crop((0, 0, 320, 180)), cyan)
    assert _shows(sheet.crop((320, 0, 640, 180)), cyan)
    # the legend: white text and each box colour beside its detection number
    for colour in [(255, 255, 255), *annotate._COLOURS]:
        assert _shows(sheet.crop((0, 180, 320, sheet.size[1])), colour), colour
    square = annotate.contact_sheet(np.zeros((1, 32, 48, 3), np.uint8), [0.0], rows)
    assert square.size == (320, 213 + annotate.LEGEND_HEIGHT)  # the pictures' own aspect


def test_snapshot_interval_and_empty_moments(model_dir, video_dir, tmp_path):
    data = {**MD_OUTPUT, "images": [MD_OUTPUT["images"][0], MD_OUTPUT["images"][2]]}
    md_json = _write_json(tmp_path, data)
    job = dict(detections_json=md_json, batch_size=3, progress=False)
    assert run_field(model_dir, video_dir, out_csv=str(tmp_path / "two.csv"), snapshot_s=2,
                     tta=2, **job) == {}
    two = pd.read_csv(tmp_path / "two.csv")
    # t=1 s is no snapshot moment at T=2; at t=0 the frame-0 animal, at t=2 frame 11's; six.avi's
    # t=5 s detection is halfway between 4 and 6 (past its end): the earlier moment.
    assert list(zip(two.video_id, two.time, two.detection)) == [
        ("four.mp4", 0, 0), ("four.mp4", 2, 0), ("six.avi", 4, 0)]
    np.testing.assert_allclose(two[boxes.COORDINATES].to_numpy(), [BOX_A, BOX_B, BOX_C],
                               atol=1e-6)

    assert run_field(model_dir, video_dir, out_csv=str(tmp_path / "empty.csv"), keep_empty=True,
                     **job) == {}
    empty = pd.read_csv(tmp_path / "empty.csv")
    assert list(zip(empty.video_id, empty.time)) == [("four.mp4", t) for t in (0, 1, 1, 2, 3)] + [
        ("six.avi", t) for t in range(6)]
    assert empty.distance.isna().tolist() == [False] * 4 + [True] + [True] * 5 + [False]


def test_snapshot_detections_takes_the_nearest_frame_within_half_a_snapshot():
    table = pd.DataFrame([(f, "animal", 0.9, 0, 0, 1, 1) for f in (0, 3, 7, 7, 14, 28)],
                         columns=detections.COLUMNS)
    used = detections.snapshot_detections(table, frame_rate=10.0, snapshot_s=1.0)
    # 0.3 s -> t=0 but frame 0 is nearer; 0.7 s -> t=1 (two animals); 1.4 s -> t=1, farther
    # than 0.7 s; 2.8 s -> t=3.
    assert list(zip(used.time, used.frame_number, used.detection)) == [
        (0, 0, 0), (1, 7, 0), (1, 7, 1), (3, 28, 0)]
    # written as the numbers they are: 0, never -0.0 (ceil(-0.5)); 0.6, never 3 * 0.2
    assert [repr(float(t)) for t in used.time] == ["0.0", "1.0", "1.0", "3.0"]
    fifths = detections.snapshot_detections(table, frame_rate=10.0, snapshot_s=0.2)
    assert [repr(float(t)) for t in fifths.time] == ["0.0", "0.2", "0.6", "0.6", "1.4", "2.8"]
    # halfway between two moments, the earlier one, whichever way a round-half-even would go
    halfway = pd.DataFrame([(f, "animal", 0.9, 0, 0, 1, 1) for f in (10, 30, 50)],
                           columns=detections.COLUMNS)
    used = detections.snapshot_detections(halfway, frame_rate=10.0, snapshot_s=2.0)
    assert list(zip(used.time, used.frame_number)) == [(0, 10), (2, 30), (4, 50)]


def test_box_views_compile_with_xla_and_match(model_dir, video_dir):
    """The fold average with every test-time view moves the boxes the same under XLA."""
    pictures, _ = video.decode_video(f"{video_dir}/four.mp4", fps=1.0, size=(32, 32))
    inputs = {"frames": videos.sequences(pictures, [0, 1, 2], 1.0, 1, 1, 3),
              "box": np.array([[*BOX_A, 1], [*BOX_B, 1], boxes.ABSENT], np.float32)}
    eager, _ = infer.load_predictor(model_dir, tta=10, jit_compile=False, per_fold=True)
    compiled, _ = infer.load_predictor(model_dir, tta=10, jit_compile=True, per_fold=True)
    expected = eager.predict(inputs, verbose=0)
    assert expected.shape == (3, 10, 2)
    np.testing.assert_allclose(compiled.predict(inputs, verbose=0), expected, atol=1e-4)


def test_a_box_model_refuses_records_without_boxes(tmp_path):
    write_records(tmp_path / "plain", (3, 3))
    with pytest.raises(InputError, match="these records have no boxes.*--boxes_csv"):
        train.train(str(tmp_path / "plain"), str(tmp_path / "out"), backbone="tiny",
                    weights="none", volume_size=3, use_boxes=True)
    assert not (tmp_path / "out").exists()


def test_box_model_export_serves_frames_and_boxes(model_dir, video_dir, tmp_path):
    pictures, _ = video.decode_video(f"{video_dir}/four.mp4", fps=1.0, size=(32, 32))
    sequences = videos.sequences(pictures, [0, 1, 2], 1.0, 1, 1, 3)
    box = np.array([[*BOX_A, 1], [*BOX_B, 1], boxes.ABSENT], np.float32)
    run_infer(model_dir, export_dir=str(tmp_path / "export"), tta=2)
    info = json.loads((tmp_path / "export" / infer.EXPORT_INFO).read_text())
    assert "box" in info and info["tta"] == 2
    exported = tf.saved_model.load(str(tmp_path / "export"))
    served = exported.serve(sequences, box).numpy()
    predictor, _ = infer.load_predictor(model_dir, tta=2)
    expected = predictor.predict({"frames": sequences, "box": box}, verbose=0).mean(axis=1)
    np.testing.assert_allclose(served[:, 0], expected, atol=1e-5)


def test_box_model_on_plain_video_seconds_sees_no_box(model_dir, video_dir, tmp_path, caplog):
    times = pd.DataFrame({"video_id": ["four.mp4"] * 2, "time": [1, 3]})
    times.to_csv(tmp_path / "times.csv", index=False)
    failures = run_field(model_dir, video_dir, times_csv=str(tmp_path / "times.csv"),
                              out_csv=str(tmp_path / "seconds.csv"), progress=False)
    assert failures == {}
    assert [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and r.name.startswith("chimpact")] == [
        f"{model_dir} is a box model (--use_boxes) run on whole seconds without --detections: "
        "it sees no box, so its distances are not the animals'; give MegaDetector's file as "
        "--detections"]
    table = pd.read_csv(tmp_path / "seconds.csv")
    pictures, _ = video.decode_video(f"{video_dir}/four.mp4", fps=1.0, size=(32, 32),
                                     labelled_frames=[1, 3])
    inputs = {"frames": videos.sequences(pictures, [1, 3], 1.0, 1, 1, 3),
              "box": np.array([boxes.ABSENT] * 2, np.float32)}
    expected = np.mean([network.predict(inputs, verbose=0)[:, 0]
                        for network in model.load_fold_models(model_dir).values()], axis=0)
    np.testing.assert_allclose(table.distance, expected, atol=1e-5)


def test_box_warnings_name_the_model_folder(caplog):
    jobs._warn_boxes({"use_boxes": False, "tfrec_dir": "records"}, "runs/plain", True)
    jobs._warn_boxes({"use_boxes": True}, "runs/box", True)
    jobs._warn_boxes({"use_boxes": False}, "runs/plain", False)
    assert caplog.messages == ["runs/plain was trained without boxes (run_train.py "
                               "--use_boxes): every detection of a frame gets the same distance"]


def test_video_results_without_frames_processed_are_read_with_a_warning(tmp_path, caplog):
    data = {"info": {"format_version": "1.6"}, "detection_categories": {"1": "animal"},
            "images": [{"file": "four.mp4", "frame_rate": 5.0,
                        "detections": [_detection(0, BBOX_A), _detection(5, BBOX_B)]}]}
    found = jobs._read_detections(_write_json(tmp_path, data), None, ("animal",), None)
    assert found.videos[0].frames_processed == (0, 5)
    assert [m for m in caplog.messages if "frames_processed" in m] == [
        f"{tmp_path / 'md.json'}: 1 video(s) have no frames_processed, which their format "
        "requires (four.mp4): as MegaDetector's frame_results_to_video_results writes them; "
        "every detection gets its distance, but a moment without one is `not processed` "
        "(--keep_empty), never empty, since nothing says MegaDetector looked there"]


def _survey(video_dir, root):
    """A survey folder of two deployments, cam1 (four.mp4) and cam2 (six.avi, and extra.avi that
    MegaDetector did not list)."""
    for video, folder in (("four.mp4", "cam1"), ("six.avi", "cam2"), ("six.avi", "cam2/extra")):
        target = root / f"{folder}/{video}" if "/" not in folder else root / f"{folder}.avi"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((pathlib.Path(video_dir) / video).read_bytes())
    return root


def test_every_second_of_a_survey_reads_the_videos_in_each_cameras_folder(model_dir, video_dir,
                                                                          tmp_path):
    root = _survey(video_dir, tmp_path / "survey")
    run_field(model_dir, str(root), out_csv=str(tmp_path / "seconds.csv"), progress=False)
    table = pd.read_csv(tmp_path / "seconds.csv")
    assert table.groupby("video_id", sort=False).time.max().to_dict() == {
        "cam1/four.mp4": 3, "cam2/extra.avi": 5, "cam2/six.avi": 5}
    assert table.distance.notna().all()


# MegaDetector looked at frames 0-2 of four.mp4 (5 fps: up to 0.4 s) and every frame of six.avi,
# where frame 20 (4 s, no animal) is nearer moment 4 than frame 22's animal: moment 4 is empty.
SURVEY_DETECTIONS = {"cam1/four.mp4": ([0, 1, 2], {0: BBOX_A}),
                     "cam2/six.avi": (list(range(30)), {22: BBOX_B, 25: BBOX_C})}


def _video_level(root):
    """Format 1.5: a Windows relative path, an absolute one inside the folder, one outside."""
    images = [{"file": "cam1\\four.mp4", "frame_rate": 5.0, "frames_processed": [0, 1, 2],
               "detections": [_detection(0, BBOX_A)]},
              {"file": f"{root}/cam2/six.avi", "frame_rate": 5.0,
               "frames_processed": list(range(30)),
               "detections": [_detection(22, BBOX_B), _detection(25, BBOX_C)]},
              {"file": "/elsewhere/seven.mp4", "frame_rate": 5.0, "frames_processed": [0],
               "detections": []}]
    return {"info": {"format_version": "1.5"}, "detection_categories": {"1": "animal"},
            "images": images}


def _frame_level(folder=""):
    """The same survey's frame results, without a frame rate (the videos' own is used), their
    files under `folder` (where the frames were on the machine MegaDetector ran on)."""
    images = [{"file": f"{folder}{video}/frame{frame:06d}.jpg",
               "detections": [_detection(frame, bbox) for f, bbox in found.items() if f == frame]}
              for video, (processed, found) in SURVEY_DETECTIONS.items() for frame in processed]
    for entry in images:
        for detection in entry["detections"]:
            del detection["frame_number"]
    return {"info": {"format_version": "1.4"}, "detection_categories": {"1": "animal"},
            "images": images}


def test_a_survey_folder_in_both_layouts_gives_the_same_rows(model_dir, video_dir, tmp_path):
    root = _survey(video_dir, tmp_path / "survey")
    # frames extracted to another machine's folder: no path matches until it is mapped
    (tmp_path / "frames").mkdir()
    frames_json = _write_json(tmp_path / "frames", _frame_level("D:/md/frames/"))
    with pytest.raises(UsageError, match="none of its 2 videos' paths lies under --video_dir=.* "
                                         "\\(first: D:/md/frames/cam1/four.mp4\\): map the "
                                         "folder .* --detections_path_prefix=OLD=NEW"):
        run_field(model_dir, str(root), detections_json=frames_json, progress=False)
    tables = {}
    for name, md_json, prefix in (("video", _write_json(tmp_path, _video_level(root)), None),
                                  ("frames", frames_json, "D:\\md\\frames=")):
        failures = run_field(model_dir, str(root), detections_json=md_json,
                             out_csv=str(tmp_path / f"{name}.csv"), keep_empty=True,
                             progress=False, path_prefix=prefix)
        tables[name] = pd.read_csv(tmp_path / f"{name}.csv", keep_default_na=False,
                                   na_values={c: [""] for c in distances.COLUMNS[2:-1]
                                              if c != "category"})
        assert failures == ({} if name == "frames" else {
            "/elsewhere/seven.mp4": f"an absolute path outside --video_dir={root} (written on "
                                    "another machine? map its folder with "
                                    "--detections_path_prefix=OLD=NEW)"})
    video = tables["video"]
    assert list(zip(video.video_id, video.deployment_id, video.time.fillna(-1))) == [
        ("cam1/four.mp4", "cam1", t) for t in (0, 1, 2, 3)] + [
        ("cam2/six.avi", "cam2", t) for t in range(6)] + [
        ("/elsewhere/seven.mp4", "", -1), ("cam2/extra.avi", "cam2", -1)]
    # moments 1-3 s of four.mp4 had no processed frame within 0.5 s: not processed, not empty
    assert video.error.tolist()[:10] == ["", *[distances.NOT_PROCESSED] * 3, *[""] * 6]
    assert video.distance.notna().tolist()[:10] == [True, *[False] * 8, True]
    assert video.error.iloc[-1] == distances.NOT_LISTED
    np.testing.assert_allclose(video.loc[[0, 9], boxes.COORDINATES], [BOX_A, BOX_C], atol=1e-6)
    listed = video[video.video_id != "/elsewhere/seven.mp4"].reset_index(drop=True)
    pd.testing.assert_frame_equal(tables["frames"], listed, check_dtype=False)


def test_deployments_and_the_distance_flat_file_through_run_field(model_dir, video_dir, tmp_path):
    root = _survey(video_dir, tmp_path / "survey")
    data = _video_level(root)
    data["images"] = data["images"][:2]
    md_json = _write_json(tmp_path, data)
    pd.DataFrame({"deploymentID": ["north", "cam2", "east"], "latitude": [-5.1, -5.2, -5.3],
                  "longitude": [29.1, 29.2, 29.3],
                  "deploymentStart": ["2021-03-01T08:00:00+01:00"] * 3,
                  "deploymentEnd": ["2021-03-01T09:00:00+01:00", "2021-03-01T08:30:00+01:00",
                                    "2021-03-01T08:10:00+01:00"],
                  "cameraHeight": [0.7, None, 1.1], "cameraTilt": [-10, None, 5]}).to_csv(
        tmp_path / "deployments.csv", index=False)
    # four.mp4 is filmed by deployment "north", whatever its folder; six.avi keeps its folder's
    pd.DataFrame({"video_id": ["cam1/four.mp4", "cam2/six.avi"],
                  "deployment_id": ["north", "cam2"],
                  "timestamp": ["2021-03-01T08:10:00+01:00", "2021-03-01T08:20:00+01:00"]}
                 ).to_csv(tmp_path / "videos.csv", index=False)
    common = dict(detections_json=md_json, deployments_csv=str(tmp_path / "deployments.csv"),
                  progress=False)
    failures = run_field(model_dir, str(root), out_csv=str(tmp_path / "rows.csv"),
                         videos_csv=str(tmp_path / "videos.csv"),
                         distance_csv=str(tmp_path / "flat.csv"),
                         camtrap_dp_dir=str(tmp_path / "package"), hfov=60.0, **common)
    assert failures == {}
    rows = pd.read_csv(tmp_path / "rows.csv")
    assert list(zip(rows.video_id, rows.deployment_id)) == [
        ("cam1/four.mp4", "north"), ("cam2/six.avi", "cam2"), ("cam2/extra.avi", "cam2")]
    flat = pd.read_csv(tmp_path / "flat.csv")
    assert flat["Sample.Label"].tolist() == ["north", "cam2", "east"]
    assert flat.Effort.tolist() == [3600.0, 1800.0, 600.0]  # active seconds / 1 s snapshots
    np.testing.assert_allclose(flat.distance[:2], rows.distance[:2])
    assert flat.distance.isna().tolist() == [False, False, True]

    # The Camtrap DP package breaks none of the standard's rules, and holds what was measured.
    assert camtrap_rules.check(tmp_path / "package") == []
    media = pd.read_csv(tmp_path / "package" / "media.csv")
    assert media.filePath.tolist() == ["cam1/four.mp4", "cam2/six.avi"]
    assert media.fileMediatype.tolist() == ["video/mp4", "video/x-msvideo"]
    assert media.timestamp.tolist() == ["2021-03-01T07:10:00Z", "2021-03-01T07:20:00Z"]
    seen = pd.read_csv(tmp_path / "package" / "observations.csv")
    assert seen.eventStart.tolist() == ["2021-03-01T07:10:00Z", "2021-03-01T07:20:05Z"]
    assert seen.deploymentID.tolist() == ["north", "cam2"]
    assert seen.mediaID.tolist() == media.mediaID.tolist()
    np.testing.assert_allclose(seen.individualPositionRadius, rows.distance[:2], atol=1e-3)
    # box centres 0.25 and 0.1 of the width at a 60 degree field of view: to the left
    np.testing.assert_allclose(seen.individualPositionAngle, [-16.10, -24.79], atol=0.01)
    np.testing.assert_allclose(seen[["bboxX", "bboxY", "bboxWidth", "bboxHeight"]],
                               [[0.1, 0.2, 0.3, 0.5], [0.0, 0.5, 0.2, 0.2]], atol=1e-6)
    assert seen.classificationProbability.tolist() == [0.9, 0.9]
    # as written: a width of 0.3, never 0.30000000000000004
    assert (tmp_path / "package" / "observations.csv").read_text().count(",0.1,0.2,0.3,0.5,") == 1
    assert seen.observationComments[0].startswith("distance 80% interval ")

    # Frictionless validates it offline as the README says, against the same schemas.
    frictionless = pytest.importorskip("frictionless")
    report = frictionless.validate(str(camtrap_rules.offline_copy(tmp_path / "package")))
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])

    # Checked before any work: a deployment the table lacks, and the flags that need others.
    with pytest.raises(UsageError, match="--deployments_csv: no row for deployment\\(s\\) cam1 "
                                         "of the video\\(s\\) cam1/four.mp4 "):
        run_field(model_dir, str(root), out_csv=str(tmp_path / "none.csv"), **common)
    with pytest.raises(UsageError, match="--distance_csv needs --deployments_csv"):
        run_field(model_dir, str(root), detections_json=md_json,
                  distance_csv=str(tmp_path / "flat2.csv"))
    with pytest.raises(UsageError, match="--truncate=15.0,2.0: give LEFT,RIGHT"):
        run_field(model_dir, str(root), truncate=[15.0, 2.0], **common)
    with pytest.raises(UsageError, match="--camtrap_dp: no start time for 1 video\\(s\\) "
                                         "\\(cam2/six.avi\\)"):
        pd.read_csv(tmp_path / "videos.csv")[:1].to_csv(tmp_path / "one.csv", index=False)
        run_field(model_dir, str(root), camtrap_dp_dir=str(tmp_path / "package2"),
                  out_csv=str(tmp_path / "none.csv"), videos_csv=str(tmp_path / "one.csv"),
                  **common)
    assert not (tmp_path / "none.csv").exists() and not (tmp_path / "flat2.csv").exists()


def test_an_interrupted_detection_run_resumes_without_redoing_videos(model_dir, video_dir,
                                                                     tmp_path, monkeypatch,
                                                                     caplog):
    root = _survey(video_dir, tmp_path / "survey")
    data = _video_level(root)
    data["images"] = data["images"][:2]
    job = dict(detections_json=_write_json(tmp_path, data), out_csv=str(tmp_path / "rows.csv"),
               progress=False)
    calls, real = [], distances.decode_detected

    def killed_at_the_second_video(*args, **kwargs):
        calls.append(pathlib.Path(args[1]).name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(distances, "decode_detected", killed_at_the_second_video)
    with pytest.raises(KeyboardInterrupt):
        run_field(model_dir, str(root), **job)
    assert not (tmp_path / "rows.csv").exists()
    calls.clear()
    monkeypatch.setattr(distances, "decode_detected",
                        lambda *a, **k: calls.append(pathlib.Path(a[1]).name) or real(*a, **k))
    caplog.set_level(logging.INFO, logger="chimpact")
    run_field(model_dir, str(root), **job)
    assert calls == ["six.avi"]  # four.mp4 was done before the kill
    assert "1 of 2 videos already done, resuming" in caplog.messages
    first = pd.read_csv(tmp_path / "rows.csv")
    assert first.deployment_id.tolist()[:2] == ["cam1", "cam2"]
    # Killed again after four.mp4, then re-run with a videos table naming its deployment: other
    # rows, so the run starts afresh instead of keeping four.mp4's old deployment.
    monkeypatch.setattr(distances, "decode_detected", killed_at_the_second_video)
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        run_field(model_dir, str(root), **job)
    pd.DataFrame({"video_id": ["cam1/four.mp4"], "deployment_id": ["north"],
                  "timestamp": ["2021-03-01T08:10:00+01:00"]}).to_csv(tmp_path / "videos.csv",
                                                                        index=False)
    calls.clear()
    monkeypatch.setattr(distances, "decode_detected",
                        lambda *a, **k: calls.append(pathlib.Path(a[1]).name) or real(*a, **k))
    run_field(model_dir, str(root), videos_csv=str(tmp_path / "videos.csv"), **job)
    assert calls == ["four.mp4", "six.avi"]
    assert pd.read_csv(tmp_path / "rows.csv").deployment_id.tolist()[:2] == ["north", "cam2"]


def test_videos_are_decoded_ahead_in_order_each_error_its_own_and_at_most_depth_ahead():
    started, consumed, next_started = [], [], threading.Event()

    def load(item):
        started.append(item)
        if item == 2:
            next_started.set()
        if item == 3:
            raise video.VideoError(f"v{item}.mp4", "cannot be decoded")
        return item * 10

    for item, future in videos.ahead(range(1, 8), load, depth=2):
        if item == 1:
            # the second video is decoded while the caller still works on the first
            assert next_started.wait(30)
        assert len(started) <= len(consumed) + 1 + 2
        try:
            consumed.append(future.result())
        except video.VideoError as e:
            consumed.append(e.reason)
    assert consumed == [10, 20, "cannot be decoded", 40, 50, 60, 70]
    assert started == list(range(1, 8))


def test_calibration_corrects_each_deployment_by_its_reference_detections(model_dir, video_dir,
                                                                          tmp_path, monkeypatch):
    root = _survey(video_dir, tmp_path / "survey")
    data = _video_level(root)
    data["images"] = data["images"][:2]
    md_json = _write_json(tmp_path, data)
    plain = tmp_path / "plain" / "rows.csv"
    plain.parent.mkdir()
    run_field(model_dir, str(root), detections_json=md_json, out_csv=str(plain), progress=False)
    # cam1's camera reads too near: its references, filmed at 20 m, are predicted about 5.5 m
    pd.DataFrame({"deployment_id": "cam1", "video_id": "cam1/four.mp4", "time": [0, 1, 2, 3],
                  "x1": 0.1, "y1": 0.2, "x2": 0.4, "y2": 0.7, "distance": 20.0}).to_csv(
        tmp_path / "references.csv", index=False)
    out = tmp_path / "calibrated" / "rows.csv"
    out.parent.mkdir()
    drawn, sheet = [], annotate.contact_sheet
    monkeypatch.setattr(annotate, "contact_sheet",
                        lambda pictures, times, rows, aspect: drawn.append(rows) or sheet(
                            pictures, times, rows, aspect))
    failures = run_field(model_dir, str(root), detections_json=md_json, out_csv=str(out),
                         calibration_csv=str(tmp_path / "references.csv"), progress=False,
                         annotate_dir=str(tmp_path / "sheets"))
    assert failures == {}
    # the sheets show the calibrated distances of the table, not the model's
    table = pd.read_csv(out)
    drawn = pd.concat(drawn).dropna(subset=["distance"])
    np.testing.assert_allclose(drawn.distance, table.distance.dropna(), rtol=1e-6)
    # written as the numbers they are: detection stays integer, corners without float noise
    assert out.read_text().splitlines()[1].startswith("cam1/four.mp4,cam1,0.0,0,animal,"
                                                      "0.1,0.2,0.4,0.7,0.9,")
    report = json.loads((out.parent / "calibration.json").read_text())
    assert report["cam2"] == {"points": 0, "calibrated": False}
    fit = report["cam1"]
    assert fit["points"] == 4 and fit["mae_after"] < 0.5 * fit["mae_before"]
    # the references predicted as detections are: each fold on its box, in its second's sequence
    per_fold = _fold_distances(model_dir, f"{root}/cam1/four.mp4", [0, 1, 2, 3], [BOX_A] * 4)
    assert fit["mae_before"] == pytest.approx(np.abs(20 - per_fold.mean(axis=1)).mean(), rel=1e-5)
    before, after = pd.read_csv(plain), pd.read_csv(out)
    cam1, cam2 = after.deployment_id == "cam1", after.deployment_id == "cam2"
    np.testing.assert_allclose(after.distance[cam1], np.exp(fit["intercept"])
                               * before.distance[cam1] ** fit["slope"], rtol=1e-5)
    assert (after.distance[cam1] > 1.5 * before.distance[cam1]).all()
    pd.testing.assert_frame_equal(after[cam2], before[cam2])
    assert (after.distance_low[cam1] <= after.distance[cam1]).all()
    assert (after.distance_high[cam1] >= after.distance[cam1]).all()
    with pytest.raises(UsageError, match="--calibration_csv: video\\(s\\) cam9/x.mp4 not in"):
        pd.read_csv(tmp_path / "references.csv").assign(video_id="cam9/x.mp4").to_csv(
            tmp_path / "elsewhere.csv", index=False)
        run_field(model_dir, str(root), detections_json=md_json, out_csv=str(out),
                  calibration_csv=str(tmp_path / "elsewhere.csv"), progress=False)
