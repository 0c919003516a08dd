"""Boxes: the metadata table read and checked, stored in records, and moved with the pictures."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from chimpact.data import boxes, labels, packing, records
from chimpact.errors import InputError
from chimpact.training import augment, pipeline
from tests.sequence_records import write_records

HEADER = "video_id,time,x1,y1,x2,y2,probability,park,site_id\n"


def _table(tmp_path, rows):
    labels_csv = tmp_path / "labels.csv"
    labels_csv.write_text("video_id,time,distance\na.mp4,0,3\na.mp4,10,4\nb.mp4,0,7\n")
    boxes_csv = tmp_path / "boxes.csv"
    boxes_csv.write_text(HEADER + "".join(row + "\n" for row in rows))
    table, _ = labels.read_labels(str(labels_csv))
    return boxes_csv, table, labels_csv


def test_boxes_follow_the_label_rows_and_missing_boxes_are_absent(tmp_path):
    boxes_csv, table, labels_csv = _table(tmp_path, [
        "b.mp4,0,0.1,0.2,0.5,0.9,0.8,tai,abc",
        "a.mp4,0,,,,,,tai,abc",  # the detector found nothing
    ])  # a.mp4 at 10 s has no row at all
    result, sha = boxes.read_boxes(str(boxes_csv), table, str(labels_csv))
    assert list(result.video_id) == ["a.mp4", "a.mp4", "b.mp4"]
    np.testing.assert_allclose(result[boxes.VECTOR].to_numpy(), [
        boxes.ABSENT, boxes.ABSENT, [0.1, 0.2, 0.5, 0.9, 1.0]])
    np.testing.assert_allclose(result.probability, [0, 0, 0.8])
    assert len(sha) == 64


@pytest.mark.parametrize("row, message", [
    ("a.mp4,0,-0.1,0.2,0.5,0.9,0.8,t,s", "line 2: box (-0.1, 0.2, 0.5, 0.9) is outside 0..1"),
    ("a.mp4,0,0.1,0.2,1.5,0.9,0.8,t,s", "is outside 0..1"),
    ("a.mp4,0,0.6,0.2,0.5,0.9,0.8,t,s", "line 2: box (0.6, 0.2, 0.5, 0.9) has x2 < x1"),
    ("a.mp4,0,0.1,0.9,0.5,0.2,0.8,t,s", "y2 < y1"),
    ("a.mp4,0,0.1,,0.5,0.9,0.8,t,s", "line 2: box has some coordinates empty"),
    ("a.mp4,0,0.1,x,0.5,0.9,0.8,t,s", "is not numbers"),
    ("c.mp4,0,0.1,0.2,0.5,0.9,0.8,t,s", "line 2: (c.mp4, 0) matches no row of"),
])
def test_a_bad_box_names_file_and_line(tmp_path, row, message):
    boxes_csv, table, labels_csv = _table(tmp_path, [row])
    with pytest.raises(InputError, match=str(boxes_csv) + ".*") as error:
        boxes.read_boxes(str(boxes_csv), table, str(labels_csv))
    assert message in str(error.value)


def test_a_duplicate_box_row_is_an_error(tmp_path):
    boxes_csv, table, labels_csv = _table(tmp_path, ["a.mp4,0,0.1,0.2,0.5,0.9,0.8,t,s",
                                                     "b.mp4,0,0.1,0.2,0.5,0.9,0.8,t,s",
                                                     "a.mp4,0,0.2,0.2,0.5,0.9,0.8,t,s"])
    with pytest.raises(InputError, match=r"boxes.csv line 4: duplicate \(video_id, time\) = "
                                          r"\(a.mp4, 0\)"):
        boxes.read_boxes(str(boxes_csv), table, str(labels_csv))


def test_a_table_without_box_columns_is_an_error(tmp_path):
    _, table, labels_csv = _table(tmp_path, [])
    (tmp_path / "bad.csv").write_text("video_id,time,probability\na.mp4,0,0.5\n")
    with pytest.raises(InputError, match=r"--boxes_csv=.*bad.csv: lacks column\(s\) x1, y1, x2, y2 "
                                          r"\(has video_id, time, probability\)"):
        boxes.read_boxes(str(tmp_path / "bad.csv"), table, str(labels_csv))


def test_records_with_and_without_boxes(tmp_path):
    plain = write_records(tmp_path / "plain", (3, 3))
    assert not plain.has_boxes
    example = next(records.read_examples(str(tmp_path / "plain" / plain.shards[0].file)))
    assert "box" not in example

    table = pd.read_csv(f"{tmp_path}/plain-labels.csv")
    rows = [f"{v},{t},0.25,0.5,0.75,1.0,0.9,park,site" for v, t in zip(table.video_id, table.time)]
    rows[0] = f"{table.video_id[0]},{table.time[0]},,,,,,park,site"
    (tmp_path / "boxes.csv").write_text(HEADER + "\n".join(rows) + "\n")
    boxed = packing.create_records(f"{tmp_path}/plain-frames", f"{tmp_path}/plain-labels.csv",
                                   str(tmp_path / "boxed"), frames_per_side=2, n_folds=2,
                                   shards=1, boxes_csv=str(tmp_path / "boxes.csv"),
                                   progress=False)
    assert boxed.has_boxes and boxed.boxes_csv == str(tmp_path / "boxes.csv")
    assert records.read_manifest(str(tmp_path / "boxed")).boxes_sha256 == boxed.boxes_sha256
    stored = {}
    for shard in boxed.shards:
        for example in records.read_examples(str(tmp_path / "boxed" / shard.file)):
            stored[example["video_id"]] = (example["box"], example["box_probability"])
    assert stored[table.video_id[0]] == (list(boxes.ABSENT), 0.0)
    box, probability = stored[table.video_id[1]]
    np.testing.assert_allclose(box, [0.25, 0.5, 0.75, 1.0, 1.0])
    assert probability == pytest.approx(0.9)
    parse = records.make_parser(boxed.stored_frames, 3, boxed.image_size, with_boxes=True)
    serialized = next(iter(tf.data.TFRecordDataset(str(tmp_path / "boxed" /
                                                       boxed.shards[0].file))))
    assert parse(serialized)["box"].shape == (5,)


def _painted(box, image_size):
    """A black [1, H, W, 3] float picture, white inside `box`."""
    height, width = image_size
    picture = np.zeros((1, height, width, 3), np.float32)
    x1, y1, x2, y2 = box
    picture[0, round(y1 * height):round(y2 * height), round(x1 * width):round(x2 * width)] = 255
    return picture


def _bounds(picture, image_size):
    """The box of the bright pixels of a [1, H, W, 3] picture, in 0..1."""
    height, width = image_size
    rows, cols = np.nonzero(picture[0, ..., 0] > 127)
    return np.array([cols.min() / width, rows.min() / height, (cols.max() + 1) / width,
                     (rows.max() + 1) / height])


@pytest.mark.parametrize("image_size", [(40, 40), (30, 48)])
@pytest.mark.parametrize("name", sorted(augment.BOX_OPS))
def test_box_ops_move_the_box_where_the_picture_goes(name, image_size):
    box = (0.55, 0.2, 0.8, 0.45)
    picture = augment.OPS[name](tf.constant(_painted(box, image_size))).numpy()
    moved = augment.BOX_OPS[name](tf.constant([*box, 1.0]), image_size).numpy()
    assert moved[4] == 1.0
    if not name.startswith(("flip", "rot")):  # colour and blur: the animal stays put
        np.testing.assert_allclose(moved, [*box, 1.0])
        return
    # The box of the moved corners holds the moved picture (a rotated box grows by its corners).
    found = _bounds(picture, image_size)
    pixel = 1.5 / min(image_size)
    assert np.all(moved[:2] <= found[:2] + pixel) and np.all(moved[2:4] >= found[2:] - pixel)
    if name.startswith(("flip", "rot90", "rot180", "rot270")):
        np.testing.assert_allclose(moved[:4], found, atol=pixel)


def test_augment_moves_box_and_frames_together():
    frames = tf.constant(_painted((0.1, 0.1, 0.3, 0.6), (32, 32)))
    box = tf.constant([0.1, 0.1, 0.3, 0.6, 1.0])
    for i in range(20):
        viewed, moved = augment.augment(frames, "a1", 1.0, tf.constant([i, 7]), box)
        found, moved = _bounds(viewed.numpy(), (32, 32)), moved.numpy()
        assert np.all(moved[:2] <= found[:2] + 0.05) and np.all(moved[2:4] >= found[2:] - 0.05)
    absent = tf.constant(boxes.ABSENT)
    for i in range(10):
        _, moved = augment.augment(frames, "a1", 1.0, tf.constant([i, 3]), absent)
        np.testing.assert_allclose(moved.numpy(), boxes.ABSENT)


def test_pipelines_feed_frames_and_boxes(tmp_path):
    write_records(tmp_path / "plain", (3, 2))
    table = pd.read_csv(f"{tmp_path}/plain-labels.csv")
    rows = [f"{v},{t},0.25,0.5,0.75,1.0,0.9,park,site" for v, t in zip(table.video_id, table.time)]
    (tmp_path / "boxes.csv").write_text(HEADER + "\n".join(rows) + "\n")
    packing.create_records(f"{tmp_path}/plain-frames", f"{tmp_path}/plain-labels.csv",
                           str(tmp_path / "boxed"), frames_per_side=2, n_folds=2, shards=1,
                           boxes_csv=str(tmp_path / "boxes.csv"), progress=False)
    train = pipeline.make_train_dataset(str(tmp_path / "boxed"), [0, 1], 3, batch_size=5,
                                        aug="a1", aug_prob=1.0, use_boxes=True)
    inputs, distance = next(iter(train))
    assert inputs["frames"].shape == (5, 3, 32, 32, 3) and inputs["box"].shape == (5, 5)
    # Every example got a flip or a rotation: the boxes moved, and stayed inside the frame.
    box = inputs["box"].numpy()
    assert np.all((box[:, :4] >= 0) & (box[:, :4] <= 1)) and np.all(box[:, 4] == 1)
    assert not np.allclose(box[:, :4], [0.25, 0.5, 0.75, 1.0])
    evaluation = pipeline.make_eval_dataset(str(tmp_path / "boxed"), [1], 3, batch_size=4,
                                            use_boxes=True)
    (inputs, distance, weight), = list(evaluation)
    np.testing.assert_allclose(inputs["box"].numpy(), [[0.25, 0.5, 0.75, 1.0, 1]] * 2
                               + [boxes.ABSENT] * 2)
    np.testing.assert_allclose(weight.numpy(), [2, 2, 0, 0])  # padding weighs nothing
    with pytest.raises(InputError, match="have no boxes"):
        pipeline.make_eval_dataset(str(tmp_path / "plain"), [1], 3, use_boxes=True)


def test_the_real_metadata_tables_read_clean(shared_dir):
    data = shared_dir / "data" / "deep-chimpact"
    for labels_csv, boxes_csv, subset, rows in (("train_labels.csv", "train_metadata.csv", "train",
                                                 15229),
                                                ("submission_format.csv", "test_metadata.csv",
                                                 "test", 11932)):
        table, _ = labels.read_labels(str(data / labels_csv), subset)
        found, _ = boxes.read_boxes(str(data / boxes_csv), table, str(data / labels_csv))
        assert len(found) == rows and list(found.video_id) == list(table.video_id)
        assert 0.1 < 1 - found.present.mean() < 0.2  # about 15% of the rows have no box
        present = found[found.present == 1]
        assert (present.x1 <= present.x2).all() and present[boxes.COORDINATES].max().max() <= 1


def test_headers_with_spaces_after_the_commas_are_read(tmp_path):
    """A hand-typed header (`video_id, time`) names the same columns in every table read."""
    (tmp_path / "labels.csv").write_text("video_id, time, distance\na.mp4, 0, 3\n")
    table, _ = labels.read_labels(str(tmp_path / "labels.csv"))
    assert table[["video_id", "time", "distance"]].values.tolist() == [["a.mp4", 0, 3.0]]
    (tmp_path / "boxes.csv").write_text(
        "video_id , time, x1, y1, x2, y2, probability\na.mp4,0,0.1,0.2,0.5,0.9,0.8\n")
    result, _ = boxes.read_boxes(str(tmp_path / "boxes.csv"), table, str(tmp_path / "labels.csv"))
    np.testing.assert_allclose(result[boxes.VECTOR].to_numpy(), [[0.1, 0.2, 0.5, 0.9, 1.0]])
    (tmp_path / "times.csv").write_text("video_id,  time\nb.mp4,4\n")
    assert labels.read_times(str(tmp_path / "times.csv")).values.tolist() == [["b.mp4", 4]]


@pytest.mark.parametrize("read, flag", [
    (lambda path: labels.read_labels(path), "labels_csv"),
    (lambda path: labels.read_times(path), "times_csv"),
    (lambda path: labels.read_labels(path, "train", "pseudo_labels"), "pseudo_labels"),
])
def test_an_absent_table_is_named_with_its_flag(tmp_path, read, flag):
    absent = str(tmp_path / "train_label.csv")
    with pytest.raises(InputError) as error:
        read(absent)
    assert str(error.value) == f"--{flag}={absent}: file not found"
