"""How the folds and the test-time views combine, checked against the networks run by hand: the
median over three folds that disagree (where a median is not a mean) through every path that
predicts (test records, raw videos, detections and their interval, the export), and each view of
a box model against the view applied by hand to the frames and to the box."""

import json

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import videogen
from model_checks import untrained_model_folder
from sequence_records import write_records
from chimpact import storage
from chimpact.data import boxes, video
from chimpact.field import videos
from chimpact.field.jobs import run_field
from chimpact.predict import infer
from chimpact.predict.jobs import run_infer
from chimpact.training import model, pipeline

CONFIG = dict(backbone="tiny", weights="none", volume_size=3, image_size=[32, 32], lstm_units=4,
              dense_units=4, frames_per_side=1, step=1, n_folds=3, folds=[0, 1, 2])
BIASES = (5.0, 6.0, 15.0)  # the third fold far from the other two: median and mean differ
BOX = [0.1, 0.2, 0.45, 0.7]


def by_hand(name, frames, box):
    """(frames [n, T, H, W, 3], box [n, 5]) under test-time view `name` of square frames, in
    numpy: the picture flipped or turned counter-clockwise, the box's corners with it."""
    x1, y1, x2, y2, present = box.T
    if name == "identity":
        return frames, box
    if name == "flip_lr":
        return frames[:, :, :, ::-1], np.stack([1 - x2, y1, 1 - x1, y2, present], 1)
    if name == "flip_ud":
        return frames[:, :, ::-1], np.stack([x1, 1 - y2, x2, 1 - y1, present], 1)
    turns = {"rot90": 1, "rot180": 2, "rot270": 3}[name]
    moved = box
    for _ in range(turns):  # a quarter turn counter-clockwise takes (x, y) to (y, 1 - x)
        x1, y1, x2, y2, present = moved.T
        moved = np.stack([y1, 1 - x2, y2, 1 - x1, present], 1)
    return np.rot90(frames, turns, axes=(2, 3)), moved


def each_fold(model_dir, frames, box=None, views=("identity",)):
    """[n, views, folds]: every fold network on every view, run one by one outside FoldAverage."""
    networks = model.load_fold_models(model_dir)
    out = []
    for name in views:
        viewed, moved = by_hand(name, frames, box if box is not None else np.zeros((len(frames), 5)))
        inputs = viewed if box is None else {"frames": np.ascontiguousarray(viewed),
                                             "box": moved.astype(np.float32)}
        out.append([networks[f].predict(inputs, verbose=0)[:, 0] for f in sorted(networks)])
    return np.transpose(np.array(out), (2, 0, 1))


def median_of_medians(per_fold):
    """[n, views, folds] -> [n]: the median over the folds, then over the views."""
    return np.median(np.median(per_fold, axis=2), axis=1)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """(plain model folder, box model folder), three untrained folds each; the box folder's
    oof.csv errors run from -1 to +1 m (an 80% interval of -0.8..+0.8 m around the distance)."""
    base = tmp_path_factory.mktemp("aggregate")
    (base / "plain").mkdir()
    (base / "box").mkdir()
    plain = untrained_model_folder(base / "plain", CONFIG, BIASES)
    boxed = untrained_model_folder(base / "box", {**CONFIG, "use_boxes": True}, BIASES)
    errors = np.linspace(-1, 1, 21)
    pd.DataFrame({"video_id": "v.mp4", "time": range(21), "distance": 10 + errors, "pred": 10.0,
                  "fold": 0}).to_csv(base / "box" / "oof.csv", index=False)
    return plain, boxed


@pytest.fixture(scope="module")
def four_seconds(tmp_path_factory):
    """(video folder with four.mp4, its decoded pictures at 1 fps and 32x32)."""
    path = tmp_path_factory.mktemp("aggregate-videos")
    videogen.make_video(path / "four.mp4", 4, fps=5, size=(48, 32))
    pictures, _ = video.decode_video(str(path / "four.mp4"), fps=1.0, size=(32, 32))
    return str(path), pictures


def test_median_over_three_folds_on_records_and_the_export(folders, tmp_path):
    plain, _ = folders
    write_records(tmp_path / "test", (5,), (32, 32), frames_per_side=1, subset="test")
    sequences = np.concatenate([frames for frames, _, _ in pipeline.make_eval_dataset(
        str(tmp_path / "test"), None, 3, batch_size=5).as_numpy_iterator()])
    views = ("identity", "flip_lr", "flip_ud")
    per_fold = each_fold(plain, sequences, views=views)
    expected = median_of_medians(per_fold)
    # the case tells the median from the mean by metres
    assert np.abs(expected - per_fold.mean(axis=(1, 2))).min() > 1.0

    run_infer(plain, tfrec_dir=str(tmp_path / "test"), export_dir=str(tmp_path / "export"),
                   tta=3, aggregate="median")
    table = storage.read_csv(f"{plain}/test_preds.csv")
    np.testing.assert_allclose(table.pred, expected, atol=1e-4)
    np.testing.assert_allclose(table[list(views)], np.median(per_fold, axis=2), atol=1e-4)
    exported = tf.saved_model.load(str(tmp_path / "export"))
    assert json.loads((tmp_path / "export" / infer.EXPORT_INFO).read_text())["aggregate"] == \
        "median"
    np.testing.assert_allclose(exported.serve(sequences).numpy()[:, 0], expected, atol=1e-4)


def test_median_over_three_folds_on_raw_video_seconds(folders, four_seconds, tmp_path):
    plain, _ = folders
    video_dir, pictures = four_seconds
    run_field(plain, video_dir, out_csv=str(tmp_path / "seconds.csv"), tta=3,
                   aggregate="median", progress=False)
    table = pd.read_csv(tmp_path / "seconds.csv")
    assert list(table.time) == [0, 1, 2, 3]
    sequences = videos.sequences(pictures, [0, 1, 2, 3], 1.0, 1, 1, 3)
    per_fold = each_fold(plain, sequences, views=("identity", "flip_lr", "flip_ud"))
    np.testing.assert_allclose(table.distance, median_of_medians(per_fold), atol=1e-4)


def test_median_and_interval_of_detections_when_the_folds_disagree(folders, four_seconds,
                                                                   tmp_path):
    _, boxed = folders
    video_dir, pictures = four_seconds
    md = {"info": {"format_version": "1.4"}, "detection_categories": {"1": "animal"},
          "images": [{"file": "four.mp4", "frame_rate": 5.0, "detections": [
              {"category": "1", "conf": 0.9, "frame_number": frame,
               "bbox": [BOX[0], BOX[1], BOX[2] - BOX[0], BOX[3] - BOX[1]]}
              for frame in (0, 5, 10)]}]}
    (tmp_path / "md.json").write_text(json.dumps(md))
    failures = run_field(boxed, video_dir, detections_json=str(tmp_path / "md.json"),
                              out_csv=str(tmp_path / "animals.csv"), aggregate="median",
                              progress=False)
    assert failures == {}
    table = pd.read_csv(tmp_path / "animals.csv")
    assert list(table.time) == [0, 1, 2]
    box = np.array([[*BOX, 1.0]] * 3, np.float32)
    per_fold = each_fold(boxed, videos.sequences(pictures, [0, 1, 2], 1.0, 1, 1, 3), box)[:, 0]
    np.testing.assert_allclose(table.distance, np.median(per_fold, axis=1), atol=1e-4)
    # The folds lie ~10 m apart, far more than the 80% offsets (-0.8, +0.8 m): the interval is
    # widened to hold each fold's own prediction.
    assert (per_fold.max(axis=1) - np.median(per_fold, axis=1) > 5).all()
    np.testing.assert_allclose(table.distance_high, per_fold.max(axis=1), atol=1e-4)
    np.testing.assert_allclose(table.distance_low, per_fold.min(axis=1), atol=1e-4)


def test_every_right_angle_view_of_a_box_model_is_the_view_by_hand(folders, four_seconds):
    _, boxed = folders
    _, pictures = four_seconds
    frames = videos.sequences(pictures, [0, 1, 2], 1.0, 1, 1, 3)
    box = np.array([[*BOX, 1.0], [0.5, 0.1, 0.9, 0.3, 1.0], boxes.ABSENT], np.float32)
    views = infer.view_names(6)
    assert views == ["identity", "flip_lr", "flip_ud", "rot90", "rot180", "rot270"]
    predictor, _ = infer.load_predictor(boxed, tta=6, per_fold=True)
    got = predictor.predict({"frames": frames, "box": box}, verbose=0)
    expected = each_fold(boxed, frames, box, views)
    # each view changes what the networks see (else this would not tell views apart)
    assert np.abs(expected[:, 1:] - expected[:, :1]).max() > 1e-3
    np.testing.assert_allclose(got, expected, atol=1e-4)
