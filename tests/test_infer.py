"""run_infer.py: fold averages on test records, TTA, raw videos, replicas and the export.

The model folder holds untrained tiny networks with saved weights: predictions need not be good,
only the same whichever path computes them.
"""

import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import sequence_records
import videogen
from model_checks import untrained_model_folder
from chimpact.data import labels, records, video
from chimpact.errors import InputError, UsageError
from chimpact.field import videos as field_videos
from chimpact.field.jobs import run_field
from chimpact.predict import infer, views
from chimpact.predict.jobs import run_infer
from chimpact.training import augment, model, model_folder

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG = dict(backbone="tiny", weights="none", volume_size=3, image_size=[32, 32], lstm_units=4,
              dense_units=4, frames_per_side=2, step=1, n_folds=2, folds=[0, 1])
N_TEST = 7  # examples in the test records: no batch size used below divides it


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A model folder as run_train.py leaves it, with two untrained folds."""
    return untrained_model_folder(tmp_path_factory.mktemp("model"), CONFIG)


@pytest.fixture(scope="module")
def test_records(tmp_path_factory):
    """Test-subset records of N_TEST examples (videos t000.mp4...) in two shards; returns (dir,
    their decoded sequences [N, 3, ...] in video order)."""
    path = str(tmp_path_factory.mktemp("records") / "test")
    manifest = sequence_records.write_records(
        path, (N_TEST,), tuple(CONFIG["image_size"]), CONFIG["frames_per_side"],
        shards_per_fold=2, subset="test")
    parse = records.make_parser(manifest.stored_frames, CONFIG["volume_size"])
    decoded = [parse(s)["frames"].numpy() for shard in manifest.shard_paths(path)
               for s in tf.data.TFRecordDataset(shard)]
    return path, np.stack(decoded)


KEYS = pd.DataFrame({"video_id": [sequence_records.video_id("test", 0, i) for i in range(N_TEST)],
                     "time": CONFIG["frames_per_side"]})


def fold_mean(model_dir, sequences, views=1):
    """The reference: each fold network on each view of the sequences, averaged, computed apart."""
    networks = model.load_fold_models(model_dir)
    outputs = []
    # training.augment's TensorFlow ops, the views as tf.data runs them (the model's own are
    # chimpact.predict.views, in keras.ops).
    for name in augment.tta_names(infer.TTA_AUG, views):
        view = augment.OPS.get(name, lambda frames: frames)
        viewed = np.stack([view(tf.constant(s)).numpy() for s in sequences])
        outputs += [networks[f].predict(viewed, verbose=0)[:, 0] for f in networks]
    return np.mean(outputs, axis=0)


def run_python(code, **env):
    """Runs `code` in a fresh interpreter; returns its stdout."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
                                                    **env}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Two generated videos (4 s and 6 s), a corrupt one and a file that is no video."""
    path = tmp_path_factory.mktemp("videos")
    videogen.make_video(path / "four.mp4", 4, fps=5, size=(48, 32))
    videogen.make_video(path / "six.avi", 6, fps=5, size=(40, 30), codec="mpeg4")
    (path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(3000))
    (path / "notes.txt").write_text("not a video")
    return str(path)


def test_records_submission_and_tta(model_dir, test_records, tmp_path):
    tfrec_dir, sequences = test_records
    submission_format = KEYS.assign(distance=1.0)
    submission_format = submission_format.sample(frac=1.0, random_state=1)
    submission_format.to_csv(tmp_path / "format.csv", index=False)

    run_infer(model_dir, tfrec_dir=tfrec_dir, batch_size=3, tta=1,
                   submission_csv=str(tmp_path / "format.csv"), out_csv=str(tmp_path / "sub.csv"))
    preds = pd.read_csv(pathlib.Path(model_dir) / model_folder.TEST_PREDS)
    assert list(preds.columns) == ["video_id", "time", "pred"]
    assert sorted(preds.video_id) == sorted(KEYS.video_id)
    order = preds.video_id.str[1:-4].astype(int).to_numpy()
    no_tta = fold_mean(model_dir, sequences[order])
    assert np.allclose(preds.pred, no_tta, atol=1e-5)

    submission = pd.read_csv(tmp_path / "sub.csv")
    assert list(submission.columns) == list(submission_format.columns)
    assert list(submission.video_id) == list(submission_format.video_id)
    assert np.allclose(submission.distance,
                       preds.set_index("video_id").pred[submission.video_id], atol=0)

    predictor, config = infer.load_predictor(model_dir, tta=2)
    with_tta = infer.predict_records(predictor, config, tfrec_dir, batch_size=4)
    assert np.allclose(with_tta.pred, fold_mean(model_dir, sequences[order], views=2), atol=1e-5)
    assert not np.allclose(with_tta.pred, no_tta, atol=1e-5)


def view_inputs():
    """uint8 frames of a non-square and a square shape, and boxes, for the view checks."""
    rng = np.random.default_rng(5)
    boxes = np.array([[0.1, 0.2, 0.5, 0.9, 1.0], [0.6, 0.05, 0.95, 0.4, 1.0]], np.float32)
    return [rng.integers(0, 256, (3, *shape, 3), dtype=np.uint8)
            for shape in ((18, 30), (20, 20))], boxes


def check_view(name, frames, boxes, ours, ours_box):
    """View `name` of `frames` and `boxes` as chimpact.predict.views gave them (`ours`,
    `ours_box`) against training.augment's TensorFlow ops (tf.data's)."""
    theirs = augment.OPS[name](tf.constant(frames)).numpy()
    assert np.shape(ours) == theirs.shape, name
    # Bilinear sums in another order: a pixel one level off where a value lies at .5.
    difference = np.abs(np.asarray(ours, int) - theirs)
    assert difference.max() <= 1 and (difference > 0).mean() < 0.01, name
    np.testing.assert_allclose(
        ours_box, augment.BOX_OPS[name](tf.constant(boxes), frames.shape[1:3]).numpy(),
        atol=1e-6, err_msg=name)


def test_the_models_views_are_the_training_ops_pixel_for_pixel():
    """chimpact.predict.views (keras.ops, inside the model) against training.augment's
    TensorFlow ops for every test-time view, frames and boxes."""
    shapes, boxes = view_inputs()
    for name in augment.tta_names(infer.TTA_AUG, len(views.VIEWS) + 1)[1:]:
        frames_view, box_view = views.VIEWS[name]
        for frames in shapes:
            ours = np.asarray(frames_view(frames))
            assert ours.dtype == np.uint8, name
            check_view(name, frames, boxes, ours, np.asarray(box_view(boxes, frames.shape[1:3])))


@pytest.mark.slow
def test_export_loads_without_chimpact_and_matches(model_dir, test_records, tmp_path):
    tfrec_dir, sequences = test_records
    export_dir = tmp_path / "export"
    run_infer(model_dir, export_dir=str(export_dir))
    info = json.loads((export_dir / infer.EXPORT_INFO).read_text())
    assert info["volume_size"] == 3 and info["image_size"] == [32, 32] and info["folds"] == [0, 1]
    assert (info["fps"], info["gamma"]) == (1.0, "auto")
    np.save(tmp_path / "sequences.npy", sequences)
    out = run_python(f"""
        import json, sys
        import numpy as np, tensorflow as tf, keras
        sequences = np.load({str(tmp_path / "sequences.npy")!r})
        exported = tf.saved_model.load({str(export_dir)!r})
        layer = keras.layers.TFSMLayer({str(export_dir)!r}, call_endpoint="serve")
        assert not [m for m in sys.modules if m.startswith("chimpact")]
        print(json.dumps([exported.serve(sequences).numpy()[:, 0].tolist(),
                          np.asarray(layer(sequences))[:, 0].tolist()]))
        """)
    served, layered = json.loads(out.strip().splitlines()[-1])
    predictor, config = infer.load_predictor(model_dir)
    predicted = infer.predict_records(predictor, config, tfrec_dir, batch_size=5)
    order = predicted.video_id.str[1:-4].astype(int).to_numpy()
    assert np.allclose(np.asarray(served)[order], predicted.pred, atol=1e-5)
    assert np.allclose(served, layered, atol=1e-6)


@pytest.mark.slow
def test_two_replicas_predict_every_example_once(model_dir, test_records, videos):
    tfrec_dir, _ = test_records
    predictor, config = infer.load_predictor(model_dir)
    single = infer.predict_records(predictor, config, tfrec_dir, batch_size=4)
    _, single_video, _ = field_videos.predict_video(predictor, config, f"{videos}/six.avi",
                                                    batch_size=4)
    out = run_python(f"""
        import json
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from chimpact.field import videos as field_videos
        from chimpact.predict import infer, views
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        predictor, config = infer.load_predictor({model_dir!r}, strategy)
        table = infer.predict_records(predictor, config, {tfrec_dir!r}, batch_size=3)
        _, distances, _ = field_videos.predict_video(predictor, config,
                                                     {videos + "/six.avi"!r}, batch_size=3)
        print(json.dumps([strategy.num_replicas_in_sync, table.to_dict("list"), distances.tolist()]))
        """)
    replicas, table, distances = json.loads(out.strip().splitlines()[-1])
    table = pd.DataFrame(table)
    assert replicas == 2
    assert len(table) == N_TEST and not table.duplicated(["video_id", "time"]).any()
    pd.testing.assert_frame_equal(table[["video_id", "time"]], single[["video_id", "time"]])
    assert np.allclose(table.pred, single.pred, atol=1e-5)
    assert np.allclose(distances, single_video, atol=1e-5)


def test_sequences_take_the_records_window(videos):
    pictures, _ = video.decode_video(f"{videos}/four.mp4", fps=1.0)
    numbers = [videogen.frame_number(p) for p in pictures]
    assert numbers == [0, 5, 10, 15]
    windows = field_videos.sequences(pictures, [0, 2, 3, 5], 1.0, frames_per_side=2, step=1,
                              volume_size=3)
    assert [[videogen.frame_number(p) for p in w] for w in windows] == [
        [0, 0, 5], [5, 10, 15], [10, 15, 15], [15, 15, 15]]
    wide = field_videos.sequences(pictures, [1], 1.0, frames_per_side=2, step=1, volume_size=5)
    assert [videogen.frame_number(p) for p in wide[0]] == [0, 0, 5, 10, 15]
    # --frame_fill=zero: the same window, black where it lies past the ends
    black = field_videos.sequences(pictures, [0, 1, 3, 5], 1.0, 2, 1, 3, fill="zero")
    assert [[int(p.max()) == 0 for p in w] for w in black] == [
        [True, False, False], [False, False, False], [False, False, True], [True, True, True]]
    np.testing.assert_array_equal(black[1], field_videos.sequences(pictures, [1], 1.0, 2, 1, 3)[0])
    np.testing.assert_array_equal(black[0][1:], windows[0][1:])


def test_raw_videos_are_decoded_as_the_training_frames_were(model_dir, tmp_path):
    bright = str(videogen.make_video(tmp_path / "bright.mp4", 3, fps=5, size=(48, 32),
                                     overexposed=True))
    predictor, config = infer.load_predictor(model_dir)
    assert model_folder.decode_options(config) == dict(fps=1.0, gamma="auto", gamma_value=0.1,
                                                white_threshold=250, white_ratio=0.2)
    trained_off = {**config, "frames": {"fps": 1.0, "gamma": "off", "gamma_value": 0.1,
                                        "white_threshold": 250, "white_ratio": 0.2,
                                        "videos": 9, "other_videos": 0}}
    assert model_folder.decode_options(trained_off, fps=2)["fps"] == 2.0
    _, distances, _ = field_videos.predict_video(predictor, trained_off, bright)
    plain, info = video.decode_video(bright, gamma="off", size=(32, 32))
    assert not info["gamma_corrected"]
    expected = fold_mean(model_dir, field_videos.sequences(plain, range(3), 1.0, 2, 1, 3))
    assert np.allclose(distances, expected, atol=1e-5)
    _, corrected, _ = field_videos.predict_video(predictor, config, bright)
    assert not np.allclose(corrected, distances, atol=1e-5)


@pytest.mark.slow
def test_video_dir_every_second_with_a_corrupt_video(model_dir, videos, tmp_path):
    out_csv = tmp_path / "distances.csv"
    done = subprocess.run(
        [sys.executable, str(REPO / "run_field.py"), f"--model_dir={model_dir}",
         f"--video_dir={videos}", f"--out_csv={out_csv}", "--batch_size=3", "--tta=2"],
        capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "1 video(s) could not be predicted" in done.stderr
    table = pd.read_csv(out_csv)
    assert list(table.columns) == ["video_id", "time", "distance", "error"]
    assert list(table.video_id) == ["broken.mp4"] + ["four.mp4"] * 4 + ["six.avi"] * 6
    broken, good = table.iloc[:1], table.iloc[1:]
    assert broken.time.isna().all() and broken.distance.isna().all()
    assert broken.error.str.startswith("ffmpeg: ").all()
    assert good.time.tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 4, 5]
    assert good.distance.between(3.0, 9.0).all() and good.error.isna().all()
    assert not pathlib.Path(f"{out_csv}.parts").exists()

    predictor, config = infer.load_predictor(model_dir, tta=2)
    pictures, _ = video.decode_video(f"{videos}/six.avi", fps=1.0, size=(32, 32))
    expected = fold_mean(model_dir, field_videos.sequences(pictures, range(6), 1.0, 2, 1, 3), views=2)
    assert np.allclose(good[good.video_id == "six.avi"].distance, expected, atol=1e-5)


def test_times_csv_rows_in_order_and_resume(model_dir, videos, tmp_path, monkeypatch):
    times = pd.DataFrame({"video_id": ["six.avi", "broken.mp4", "four.mp4", "six.avi",
                                       "broken.mp4", "missing.mp4", "four.mp4"],
                          "time": [5, 0, 9, 0, 10, 3, 1]})
    predictor, config = infer.load_predictor(model_dir)
    out_csv = str(tmp_path / "times.csv")
    calls = []
    real = field_videos.decode_times

    def killed_at_third_video(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(field_videos, "decode_times", killed_at_third_video)
    with pytest.raises(KeyboardInterrupt):
        field_videos.predict_videos(predictor, config, videos, out_csv, times=times,
                                    progress=False)
    assert not pathlib.Path(out_csv).exists()
    calls.clear()
    monkeypatch.setattr(field_videos, "decode_times",
                        lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    failures = field_videos.predict_videos(predictor, config, videos, out_csv, times=times,
                                           progress=False)
    assert [pathlib.Path(c).name for c in calls] == ["broken.mp4", "four.mp4", "missing.mp4"]
    assert sorted(failures) == ["broken.mp4", "missing.mp4"]
    table = pd.read_csv(out_csv, keep_default_na=False, na_values={"distance": [""]})
    pd.testing.assert_frame_equal(table[["video_id", "time"]], times)
    # Second 9 of a 4 s video is past its end: an error row, no distance.
    assert table.distance.isna().tolist() == [False, True, True, False, True, True, False]
    assert "no such file" in table.error[5]
    assert table.error[2] == "past the end: the video has 4 s"
    assert (table.error[[0, 3, 6]] == "").all()
    pictures, _ = video.decode_video(f"{videos}/four.mp4", fps=1.0, size=(32, 32))
    expected = fold_mean(model_dir, field_videos.sequences(pictures, [1], 1.0, 2, 1, 3))
    assert np.allclose(table.distance[6], expected, atol=1e-5)


def test_shared_clips_one_row_per_second(model_dir, shared_dir, tmp_path):
    predictor, config = infer.load_predictor(model_dir)
    out_csv = tmp_path / "shared.csv"
    failures = field_videos.predict_videos(predictor, config, str(shared_dir / "videos"), str(out_csv),
                                    batch_size=32, progress=False)
    table = pd.read_csv(out_csv, keep_default_na=False, na_values={"distance": [""]})
    assert failures == {}
    assert set(table.video_id) == set(os.listdir(shared_dir / "videos"))
    for video_id, rows in table.groupby("video_id"):
        assert 15 <= len(rows) <= 62, video_id
        assert rows.time.tolist() == list(range(len(rows))), video_id
    assert table.distance.notna().all() and (table.error == "").all()


def test_videos_and_output_on_ram_filesystem(model_dir, videos):
    tf.io.gfile.makedirs("ram://infer_videos")
    tf.io.gfile.copy(f"{videos}/four.mp4", "ram://infer_videos/four.mp4", overwrite=True)
    predictor, config = infer.load_predictor(model_dir)
    assert field_videos.predict_videos(predictor, config, "ram://infer_videos", "ram://infer/out.csv",
                                progress=False) == {}
    with tf.io.gfile.GFile("ram://infer/out.csv") as f:
        table = pd.read_csv(f)
    assert table.time.tolist() == [0, 1, 2, 3] and table.distance.notna().all()
    assert not tf.io.gfile.exists("ram://infer/out.csv.parts")


def test_export_refuses_a_folder_with_other_files(model_dir, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="folder holds other files"):
        run_infer(model_dir, export_dir=str(tmp_path))
    assert (tmp_path / "keep.txt").exists()


def test_test_records_decoded_otherwise_than_the_training_frames_are_reported(
        model_dir, test_records, tmp_path, caplog):
    tfrec_dir, _ = test_records
    settings = {"fps": 1.0, "gamma": "auto", "gamma_value": 0.1, "white_threshold": 250,
                "white_ratio": 0.2, "labelled": True, "labels_csv": "train_labels.csv",
                "videos": 7, "other_videos": 0}
    trained = tmp_path / "model"
    shutil.copytree(model_dir, trained)
    config = json.loads((trained / "config.json").read_text())
    (trained / "config.json").write_text(json.dumps({**config, "frames": settings}))
    records_dir = tmp_path / "records"
    shutil.copytree(tfrec_dir, records_dir)
    manifest = records.read_manifest(str(records_dir))
    predictor, config = infer.load_predictor(str(trained))
    for test_frames, warned in [({**settings, "labels_csv": "submission_format.csv"}, None),
                                ({**settings, "labelled": False, "labels_csv": ""},
                                 "labelled=False (training frames: True)"),
                                (None, None)]:
        records.write_manifest(str(records_dir),
                               dataclasses.replace(manifest, frames=test_frames))
        caplog.clear()
        infer.predict_records(predictor, config, str(records_dir))
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        if warned:
            assert len(warnings) == 1 and warnings[0].startswith(
                f"--tfrec_dir={records_dir}: its frames were decoded otherwise")
            assert warned in warnings[0] and "--labels_csv=submission_format.csv" in warnings[0]
            assert "\n" not in warnings[0]
        else:
            assert warnings == []


@pytest.mark.parametrize("job, kwargs, message", [
    ("run_infer", {}, "nothing to do"),
    ("run_infer", {"tta": 11, "export_dir": "x"}, r"--tta=11: must be 1\.\.10"),
    ("run_infer", {"tfrec_dir": "r", "batch_size": 0}, "--batch_size=0: must be positive"),
    ("run_field", {"video_dir": None}, "--video_dir is required"),
    ("run_field", {"video_dir": "v", "times_csv": "t.csv", "detections_json": "md.json"},
     "give one"),
    ("run_field", {"video_dir": "v", "keep_empty": True},
     "--keep_empty and --annotate go with --detections"),
    ("run_field", {"video_dir": "v", "detections_json": "md.json", "snapshot_s": 0},
     "--snapshot_s=0"),
])
def test_bad_requests_are_one_line_usage_errors(model_dir, job, kwargs, message):
    with pytest.raises(UsageError, match=message):
        {"run_infer": run_infer, "run_field": run_field}[job](model_dir, **kwargs)


def test_submission_row_without_prediction_is_an_error(tmp_path):
    pd.DataFrame({"video_id": ["a.mp4", "b.mp4"], "time": [0, 10], "distance": 1.0}).to_csv(
        tmp_path / "format.csv", index=False)
    predictions = pd.DataFrame({"video_id": ["a.mp4"], "time": [0], "pred": [3.0]})
    with pytest.raises(InputError, match=r"no prediction for video_id=b\.mp4 time=10"):
        labels.fill_submission(str(tmp_path / "format.csv"), predictions)
