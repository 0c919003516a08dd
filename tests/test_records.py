"""create_tfrecords.py and the record schema, on tiny generated frames in the frames layout."""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import videogen
from chimpact import storage
from chimpact.data import extract, frames, packing, records, video, window
from chimpact.errors import InputError, UsageError
from chimpact.training import pipeline

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def frame_jpeg(video_id, index, size=(8, 8)):
    """A small JPEG whose colour depends on the video and the frame index, so bytes differ."""
    shade = (index * 37 + sum(map(ord, video_id))) % 256
    return tf.io.encode_jpeg(tf.fill([*size, 3], tf.constant(shade, tf.uint8))).numpy()


def write_frames(frames_dir, n_frames, size=(8, 8), fps=1.0):
    """Writes `n_frames` {video_id: count} frames and the manifest, as create_frames.py does."""
    for video_id, count in n_frames.items():
        tf.io.gfile.makedirs(frames.video_dir(frames_dir, video_id))
        for i in range(count):
            path = frames.frame_path(frames_dir, video_id, i)
            storage.atomic_write(path, frame_jpeg(video_id, i, size))
    manifest = pd.DataFrame([
        {"video_id": v, "n_frames": n, "width": size[1], "height": size[0], "fps": fps,
         "duration_s": n / fps, "gamma_corrected": False, "status": "ok", "error": ""}
        for v, n in n_frames.items()], columns=frames.MANIFEST_COLUMNS)
    storage.write_csv(manifest, frames.manifest_path(frames_dir))


def write_labels(path, rows, columns=("video_id", "time", "distance")):
    storage.write_csv(pd.DataFrame(rows, columns=list(columns)), path)
    return path


def all_examples(out_dir):
    return [ex for path in records.shard_paths(out_dir) for ex in records.read_examples(path)]


@pytest.fixture
def small(tmp_path):
    """Four short videos and their labels: (frames_dir, labels_csv)."""
    frames_dir = str(tmp_path / "frames")
    write_frames(frames_dir, {"a.mp4": 12, "b.mp4": 10, "c.mp4": 8, "d.mp4": 9})
    labels = write_labels(str(tmp_path / "labels.csv"), [
        ("a.mp4", 0, 1.5), ("a.mp4", 5, 2.0), ("a.mp4", 11, 3.0), ("b.mp4", 4, 8.0),
        ("c.mp4", 7, 0.0), ("c.mp4", 9, 4.5), ("d.mp4", 3, 2.5),
    ])
    return frames_dir, labels


def test_manifest_keeps_the_decode_settings_of_the_frames(small, tmp_path):
    frames_dir, labels = small
    table = frames.read_manifest(frames_dir)
    off, auto = (frames.settings_text(frames.settings_dict(video.DecodeOptions(gamma=gamma),
                                                           95, labelled=False))
                 for gamma in ("off", "auto"))
    table["settings"] = [off, off, auto, off]  # a.mp4, b.mp4, c.mp4, d.mp4
    storage.write_csv(table, frames.manifest_path(frames_dir))
    manifest = packing.create_records(frames_dir, labels, str(tmp_path / "tfrec"),
                                      frames_per_side=1, n_folds=2, progress=False)
    assert manifest.frames == {"fps": 1.0, "gamma": "off", "gamma_value": 0.1,
                                  "white_threshold": 250, "white_ratio": 0.2, "labelled": False,
                                  "labels_csv": "", "videos": 3, "other_videos": 1}


@pytest.mark.slow
def test_gamma_rule_travels_from_frames_to_each_subsets_records(tmp_path):
    """Train and test videos extracted together, each decided on its own table's labelled
    frames (the reference's rule); each subset's records say so."""
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a.mp4", "b.mp4", "t.mp4", "u.mp4"):
        videogen.make_video(videos / name, 4, fps=5, size=(32, 24))
    write_labels(str(tmp_path / "train_labels.csv"),
                 [("a.mp4", 1, 2.0), ("b.mp4", 2, 3.0), ("b.mp4", 3, 4.0)])
    write_labels(str(tmp_path / "submission_format.csv"), [("t.mp4", 0, 1.0), ("t.mp4", 2, 1.0)])
    extract.extract_frames(str(videos), str(tmp_path / "frames"), video.DecodeOptions(),
                           labels_csv=[str(tmp_path / "train_labels.csv"),
                                       str(tmp_path / "submission_format.csv")], progress=False)
    table = frames.read_manifest(str(tmp_path / "frames")).set_index("video_id")
    assert table.labels_csv.to_dict() == {"a.mp4": "train_labels.csv", "b.mp4": "train_labels.csv",
                                          "t.mp4": "submission_format.csv", "u.mp4": ""}
    assert table.settings.str.endswith("labelled=True").tolist() == [True, True, True, False]
    decoded = {}
    for subset, labels in (("train", "train_labels.csv"), ("test", "submission_format.csv")):
        manifest = packing.create_records(str(tmp_path / "frames"), str(tmp_path / labels),
                                          str(tmp_path / subset), subset=subset, n_folds=2,
                                          frames_per_side=1, progress=False)
        decoded[subset] = manifest.frames
        assert manifest.frames["labelled"] is True and manifest.frames["labels_csv"] == labels
    assert frames.decode_differences(decoded["train"], decoded["test"]) == []


def test_round_trip_keeps_bytes_order_and_labels(small, tmp_path):
    frames_dir, labels = small
    out = str(tmp_path / "tfrec")
    manifest = packing.create_records(frames_dir, labels, out, frames_per_side=2, n_folds=2,
                                      shards=2, progress=False)
    examples = all_examples(out)
    table = pd.read_csv(labels)
    assert sorted((e["video_id"], e["time"]) for e in examples) == sorted(
        zip(table.video_id, table.time))
    a5 = next(e for e in examples if (e["video_id"], e["time"]) == ("a.mp4", 5))
    assert a5["frames"] == [frame_jpeg("a.mp4", i) for i in (3, 4, 5, 6, 7)]
    assert a5["distance"] == 2.0
    fold_of = {e["video_id"]: e["fold"] for e in examples}
    assert all(e["fold"] == fold_of[e["video_id"]] for e in examples)
    assert set(fold_of.values()) == {0, 1}
    assert manifest == records.read_manifest(out)
    assert manifest.frames is None  # frames manifest without settings
    assert manifest.stored_frames == 5 and manifest.image_size == (8, 8)
    assert manifest.distances == [0.0, 1.5, 2.0, 2.5, 3.0, 4.5, 8.0]
    assert sum(s.examples for s in manifest.shards) == manifest.examples == 7
    assert [s.file for s in manifest.shards] == [
        "train-fold0-000-of-002.tfrecord", "train-fold0-001-of-002.tfrecord",
        "train-fold1-000-of-002.tfrecord", "train-fold1-001-of-002.tfrecord"]
    assert sorted(tf.io.gfile.listdir(out)) == sorted(
        [s.file for s in manifest.shards] + ["manifest.json"])
    assert records.shard_paths(out, folds=[1]) == [
        storage.join(out, s.file) for s in manifest.shards if s.fold == 1]

    parse = records.make_parser(5, 5, image_size=(8, 8))
    parsed = next(iter(tf.data.TFRecordDataset(records.shard_paths(out)).map(parse)))
    assert parsed["frames"].shape == (5, 8, 8, 3) and parsed["frames"].dtype == tf.uint8
    assert parsed["distance"].dtype == tf.float32 and parsed["time"].dtype == tf.int64

    again = packing.create_records(frames_dir, labels, str(tmp_path / "again"), frames_per_side=2,
                                   n_folds=2, shards=2, workers=2, progress=False)
    assert again.shards == manifest.shards
    for s in manifest.shards:
        assert storage.read_bytes(storage.join(out, s.file)) == storage.read_bytes(
            storage.join(str(tmp_path / "again"), s.file))


def test_clamping_at_both_ends_and_step(small, tmp_path):
    frames_dir, labels = small
    out = str(tmp_path / "tfrec")
    manifest = packing.create_records(frames_dir, labels, out, frames_per_side=2, step=2,
                                      n_folds=2, progress=False)
    by_key = {(e["video_id"], e["time"]): e["frames"] for e in all_examples(out)}
    c = lambda *idx: [frame_jpeg("c.mp4", i) for i in idx]  # noqa: E731
    assert by_key[("a.mp4", 5)] == [frame_jpeg("a.mp4", i) for i in (1, 3, 5, 7, 9)]
    assert by_key[("a.mp4", 0)] == [frame_jpeg("a.mp4", i) for i in (0, 0, 0, 2, 4)]
    assert by_key[("c.mp4", 7)] == c(3, 5, 7, 7, 7)
    assert by_key[("c.mp4", 9)] == c(5, 7, 7, 7, 7)
    # a 0: 2, a 11: 2, c 7: 2, c 9: 3 (its own second too), d 3: 1
    assert manifest.clamped_frames == 10
    assert manifest.clamped_examples == 5
    assert manifest.clamped_targets == 1
    # --frame_fill=zero: the frames past the ends black, the others as stored.
    assert manifest.frame_outside("clamp", out) is None
    parse = records.make_parser(5, 5, (8, 8), outside=manifest.frame_outside("zero", out))
    filled = {(e["video_id"].numpy().decode(), int(e["time"])): e["frames"].numpy()
              for e in tf.data.TFRecordDataset(records.shard_paths(out)).map(parse)}
    decoded = lambda data: tf.io.decode_jpeg(data).numpy()  # noqa: E731
    black = {("a.mp4", 0): [0, 1], ("c.mp4", 7): [3, 4], ("c.mp4", 9): [2, 3, 4],
             ("a.mp4", 5): []}
    for key, outside in black.items():
        for d in range(5):
            expected = 0 if d in outside else decoded(by_key[key][d])
            np.testing.assert_array_equal(filled[key][d], expected * np.ones((8, 8, 3)))
    # A model reading 3 of the 5 stored frames (stored 1..3): the mask moves with them.
    centred = records.make_parser(5, 3, (8, 8), outside=manifest.frame_outside("zero", out))
    read = {(e["video_id"].numpy().decode(), int(e["time"])): e["frames"].numpy()
            for e in tf.data.TFRecordDataset(records.shard_paths(out)).map(centred)}
    for key, outside in black.items():
        for d in range(3):
            expected = 0 if d + 1 in outside else decoded(by_key[key][d + 1])
            np.testing.assert_array_equal(read[key][d], expected * np.ones((8, 8, 3)))
    old = dataclasses.replace(manifest, outside_frames=None)
    with pytest.raises(InputError, match="do not mark the frames past"):
        old.frame_outside("zero", out)


def test_frame_window_uses_seconds_and_fps():
    assert window.frame_window(3, 2.0, 100, 2, 1) == ([2, 4, 6, 8, 10], [False] * 5)
    assert window.frame_window(1, 1.0, 3, 2, 1) == ([0, 0, 1, 2, 2],
                                                    [True, False, False, False, True])
    assert window.outside_bits([True, False, False, False, True]) == 0b10001
    # seconds x fps that are not whole frames round to the nearest (29.97 fps: second 1 is frame
    # 30, not 29)
    assert frames.frame_index(1, 29.97) == 30
    assert window.frame_window(2, 2.9, 100, 1, 1) == ([3, 6, 9], [False] * 3)
    assert window.frame_window(34, 2.9, 100, 1, 1) == ([96, 99, 99], [False, False, True])


@pytest.mark.parametrize("box", [None, [0.1, 0.25, 0.5, 0.95, 1.0]])
@pytest.mark.parametrize("fold, time, video_id", [(3, 20, "v.mp4"), (-1, 130000, "cam é/ü.AVI")])
def test_examples_are_tf_train_examples_with_their_features_in_key_order(box, fold, time, video_id):
    jpegs = [frame_jpeg(video_id, i, (16, 8)) for i in range(3)] + [b"", bytes(range(256)) * 600]
    feature = {
        "frames": tf.train.Feature(bytes_list=tf.train.BytesList(value=jpegs)),
        "distance": tf.train.Feature(float_list=tf.train.FloatList(value=[0.1 + 12.3])),
        "video_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[video_id.encode()])),
        "time": tf.train.Feature(int64_list=tf.train.Int64List(value=[time])),
        "fold": tf.train.Feature(int64_list=tf.train.Int64List(value=[fold])),
    }
    if box is not None:
        feature["box"] = tf.train.Feature(float_list=tf.train.FloatList(value=box))
        feature["box_probability"] = tf.train.Feature(float_list=tf.train.FloatList(value=[0.7]))
    serialized = records.serialize_example(jpegs, 0.1 + 12.3, video_id, time, fold, box, 0.7)
    assert tf.train.Example.FromString(serialized) == tf.train.Example(
        features=tf.train.Features(feature=feature))
    # the features in the order of their keys' bytes, whatever the process or protobuf
    keys = re.findall(rb"\n[\x03-\x0f](box|box_probability|distance|fold|frames|time|video_id)"
                      rb"\x12", serialized)
    assert keys == sorted(key.encode() for key in feature)


def test_parser_decodes_only_the_centred_volume():
    images = [frame_jpeg("v.mp4", i) for i in range(11)]
    stored = [b"not a jpeg"] * 2 + images[2:9] + [b"not a jpeg"] * 2
    serialized = tf.constant(records.serialize_example(stored, 3.5, "v.mp4", 20, 4))
    parsed = records.make_parser(11, 7)(serialized)
    assert parsed["frames"].shape == (7, 8, 8, 3)
    expected = tf.stack([tf.io.decode_jpeg(b) for b in images[2:9]])
    np.testing.assert_array_equal(parsed["frames"].numpy(), expected.numpy())
    assert float(parsed["distance"]) == 3.5 and parsed["video_id"].numpy() == b"v.mp4"
    assert int(parsed["time"]) == 20 and int(parsed["fold"]) == 4
    mapped = tf.data.Dataset.from_tensors(serialized).map(records.make_parser(11, 7, (8, 8)))
    assert next(iter(mapped))["frames"].shape == (7, 8, 8, 3)
    with pytest.raises(tf.errors.InvalidArgumentError):
        records.make_parser(11, 11)(serialized)


@pytest.mark.parametrize("volume_size", [13, 6, 0])
def test_parser_rejects_impossible_volume(volume_size):
    with pytest.raises(InputError, match=f"--volume_size={volume_size}"):
        records.make_parser(11, volume_size)


def test_ram_paths_resize_and_inspect():
    frames_dir, out = "ram://records-test/frames", "ram://records-test/tfrec"
    write_frames(frames_dir, {"a.mp4": 6, "b.mp4": 6}, size=(16, 12))
    labels = write_labels("ram://records-test/submission.csv",
                          [("a.mp4", 2, 1.0), ("b.mp4", 3, 1.0)])
    manifest = packing.create_records(frames_dir, labels, out, subset="test", frames_per_side=1,
                                      image_size=(8, 6), progress=False)
    assert [s.file for s in manifest.shards] == ["test-000-of-001.tfrecord"]
    assert manifest.image_size == (8, 6) and manifest.n_folds is None
    examples = all_examples(out)
    assert [(e["video_id"], e["time"], e["fold"]) for e in examples] == [
        ("a.mp4", 2, -1), ("b.mp4", 3, -1)]
    assert all(np.isnan(e["distance"]) for e in examples)
    assert tuple(tf.io.extract_jpeg_shape(examples[0]["frames"][0]).numpy()) == (8, 6, 3)
    lines = list(records.describe(out))
    assert json.loads(lines[0])["examples"] == 2
    assert lines[1].endswith("video_id=a.mp4 time=2 distance=nan fold=-1 frames=(3, 8, 6, 3)")


def test_group_by_site_keeps_sites_in_one_fold(small, tmp_path):
    frames_dir, labels = small
    metadata = write_labels(str(tmp_path / "meta.csv"), [
        ("a.mp4", 0, "s1"), ("b.mp4", 4, "s1"), ("c.mp4", 7, "s2"), ("d.mp4", 3, "s3")],
        columns=("video_id", "time", "site_id"))
    packing.create_records(frames_dir, labels, str(tmp_path / "tfrec"), frames_per_side=0,
                           n_folds=2, group_by="site", metadata_csv=metadata, progress=False)
    fold_of = {e["video_id"]: e["fold"] for e in all_examples(str(tmp_path / "tfrec"))}
    assert fold_of["a.mp4"] == fold_of["b.mp4"]
    assert len(set(fold_of.values())) == 2


BAD_LABELS = {
    "missing column": ("video_id,time\na.mp4,0\n",
                       r"lacks column\(s\) distance \(has video_id, time\)"),
    "time not a number": ("video_id,time,distance\na.mp4,0,1\na.mp4,ten,1\n",
                          "line 3: time 'ten' is not a number"),
    "negative time": ("video_id,time,distance\na.mp4,-1,1\n", "line 2: time '-1' is negative"),
    "fractional time": ("video_id,time,distance\na.mp4,1.5,1\n",
                        "line 2: time '1.5' is not a whole"),
    "infinite time": ("video_id,time,distance\na.mp4,inf,1\n",
                      "line 2: time 'inf' is not a number"),
    "NaN distance": ("video_id,time,distance\na.mp4,0,1\na.mp4,1,\n",
                     "line 3: distance '' is not a number"),
    "negative distance": ("video_id,time,distance\na.mp4,0,-2\n",
                          "line 2: distance '-2' is negative"),
    "duplicate": ("video_id,time,distance\na.mp4,0,1\nb.mp4,0,1\na.mp4,0.0,2\n",
                  r"line 4: duplicate \(video_id, time\) = \(a.mp4, 0\), first at line 2"),
    "missing video": ("video_id,time,distance\na.mp4,0,1\nzz.mp4,0,1\nyy.mp4,3,1\n",
                      "no frames for 2 video.* of .*labels.csv: yy.mp4, zz.mp4"),
}


@pytest.mark.parametrize("case", sorted(BAD_LABELS))
def test_bad_labels_fail_before_writing(small, tmp_path, case):
    frames_dir, _ = small
    text, message = BAD_LABELS[case]
    labels = tmp_path / "labels.csv"
    labels.write_text(text)
    out = tmp_path / "tfrec"
    with pytest.raises(InputError, match=message) as error:
        packing.create_records(frames_dir, str(labels), str(out), n_folds=2, progress=False)
    assert str(labels) in str(error.value) and "\n" not in str(error.value)
    assert not out.exists()


def test_test_subset_ignores_distance_and_allow_missing_skips(small, tmp_path):
    frames_dir, _ = small
    labels = tmp_path / "submission.csv"
    labels.write_text("video_id,time,distance\na.mp4,0,\nzz.mp4,1,-3\nb.mp4,2,nan\n")
    manifest = packing.create_records(frames_dir, str(labels), str(tmp_path / "tfrec"),
                                      subset="test", allow_missing=True, progress=False)
    assert manifest.examples == 2 and manifest.skipped_rows == 1
    assert manifest.missing_videos == ("zz.mp4",)


def test_interrupted_run_is_completed_by_a_rerun(small, tmp_path):
    frames_dir, labels = small
    out = str(tmp_path / "tfrec")
    frame = frames.frame_path(frames_dir, "d.mp4", 4)
    os.rename(frame, frame + ".away")
    with pytest.raises(InputError, match="d.mp4/00004.jpg: frame missing"):
        packing.create_records(frames_dir, labels, out, frames_per_side=1, n_folds=2, shards=2,
                               progress=False)
    written = {name: os.stat(os.path.join(out, name)).st_mtime_ns
               for name in os.listdir(out) if records.is_shard_name(name)}
    assert not os.path.exists(os.path.join(out, "manifest.json"))
    with pytest.raises(InputError, match="re-run create_tfrecords.py"):
        records.read_manifest(out)
    os.rename(frame + ".away", frame)
    manifest = packing.create_records(frames_dir, labels, out, frames_per_side=1, n_folds=2,
                                      shards=2, progress=False)
    assert 0 < len(written) < len(manifest.shards)
    for name, mtime in written.items():
        assert os.stat(os.path.join(out, name)).st_mtime_ns == mtime
    assert sorted(os.listdir(out)) == sorted(
        [s.file for s in manifest.shards] + ["manifest.json"])
    assert len(all_examples(out)) == 7

    # Other settings (or another table) into the same folder: refused, the records kept.
    before = sorted(os.listdir(out))
    with pytest.raises(UsageError) as refused:
        packing.create_records(frames_dir, labels, out, frames_per_side=1, n_folds=2, shards=1,
                               progress=False)
    assert str(refused.value) == (f"--out_dir={out}: holds finished records of other inputs or "
                                  f"settings (from {labels}): use another --out_dir, or delete "
                                  "this one to rebuild it")
    assert sorted(os.listdir(out)) == before and len(all_examples(out)) == 7


def test_an_image_size_that_turns_the_frames_orientation_is_warned(tmp_path, caplog):
    frames_dir = str(tmp_path / "frames")
    write_frames(frames_dir, {"a.mp4": 3, "b.mp4": 3}, size=(8, 12))
    labels = write_labels(str(tmp_path / "labels.csv"), [("a.mp4", 1, 2.0), ("b.mp4", 1, 3.0)])
    for image_size, out in [((8, 12), "same"), ((12, 8), "flipped")]:
        caplog.clear()
        manifest = packing.create_records(frames_dir, labels, str(tmp_path / out),
                                          frames_per_side=0, n_folds=2, image_size=image_size,
                                          progress=False)
        assert manifest.image_size == image_size
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert warnings == ([] if out == "same" else [
            "--image_size=12,8 makes portrait frames (8 wide, 12 high) of landscape pictures "
            "(12x8): the comma form is HEIGHT,WIDTH; for landscape frames give "
            "--image_size=12x8 (WIDTHxHEIGHT)"])


def test_an_out_dir_of_other_files_is_refused(small, tmp_path):
    """A folder of unrelated files, or the frames folder itself: refused in one line naming
    what was found, nothing written there."""
    frames_dir, labels = small
    for out, found in [(tmp_path / "thesis", "thesis.pdf"),
                       (frames_dir, "a.mp4 (and 4 more)")]:
        if found == "thesis.pdf":
            out.mkdir()
            (out / found).write_text("chapter 1")
        before = sorted(os.listdir(out))
        with pytest.raises(UsageError) as refused:
            packing.create_records(frames_dir, labels, str(out), frames_per_side=1, n_folds=2,
                                   progress=False)
        assert str(refused.value) == (f"--out_dir={out}: holds {found}, which "
                                      "create_tfrecords.py did not write: give an empty or new "
                                      "folder")
        assert sorted(os.listdir(out)) == before


@pytest.mark.slow
def test_same_inputs_same_bytes_from_any_number_of_workers_and_any_process(small, tmp_path):
    frames_dir, labels = small
    settings = dict(frames_per_side=1, n_folds=2, shards=2)
    for workers in (1, 2):
        packing.create_records(frames_dir, labels, str(tmp_path / f"w{workers}"), **settings,
                               workers=workers, progress=False)
    # another process: the order in which protobuf writes an example's features must not
    # depend on a process's hash seed
    subprocess.run([sys.executable, os.path.join(ROOT, "create_tfrecords.py"),
                    f"--frames_dir={frames_dir}", f"--labels_csv={labels}",
                    f"--out_dir={tmp_path / 'cli'}", "--frames_per_side=1", "--n_folds=2",
                    "--shards=2"], check=True, capture_output=True, cwd=ROOT)
    names = sorted(os.listdir(tmp_path / "w1"))
    assert len([n for n in names if records.is_shard_name(n)]) == 4
    # One video's frames at the records' size, the others' resized: this process resizes their
    # chunks (with TensorFlow), the worker processes pack the rest.
    for i in range(12):
        storage.atomic_write(frames.frame_path(frames_dir, "a.mp4", i), frame_jpeg("a.mp4", i, (6, 6)))
    for workers in (1, 2):
        packing.create_records(frames_dir, labels, str(tmp_path / f"r{workers}"), **settings,
                               image_size=(6, 6), workers=workers, progress=False)
    for out, reference in (("w2", "w1"), ("cli", "w1"), ("r2", "r1")):
        assert sorted(os.listdir(tmp_path / out)) == names
        for name in names:
            ours = (tmp_path / out / name).read_bytes()
            assert ours == (tmp_path / reference / name).read_bytes(), (out, name)
    shard = next(name for name in names if records.is_shard_name(name))
    assert (tmp_path / "r1" / shard).read_bytes() != (tmp_path / "w1" / shard).read_bytes()


def test_worker_processes_leave_resizing_to_this_process(small):
    """A forked worker must not run TensorFlow, which resizes: its reader refuses a frame of
    another size (the chunk is then packed here) and passes the others through."""
    frames_dir, _ = small
    with pytest.raises(packing._NeedsResize):
        packing._FrameReader(frames_dir, (6, 6), resize=False).read("a.mp4", 0)
    assert packing._FrameReader(frames_dir, (8, 8), resize=False).read("a.mp4", 0) == (
        storage.read_bytes(frames.frame_path(frames_dir, "a.mp4", 0)))


# Seconds this process waits before each shard it writes in the worker tests: the fork, started
# after it, then takes a shard, even on a busy machine.
FORK_HEADSTART = 0.3
WRITE_SHARD = packing.write_shard


def headstart(path):
    time.sleep(FORK_HEADSTART)


def split_write_shard(monkeypatch, in_worker=lambda path: None, here=headstart):
    """packing.write_shard that first calls in_worker(path) in a forked worker (which writes
    with resize False) and here(path) in this process."""
    def patched(path, rows, *args, resize=True, **kwargs):
        (here if resize else in_worker)(path)
        WRITE_SHARD(path, rows, *args, resize=resize, **kwargs)

    monkeypatch.setattr(packing, "write_shard", patched)


def raises(error):
    def call(path):
        raise error
    return call


def test_this_process_and_the_workers_share_the_shards(small, tmp_path, monkeypatch):
    """With 2 workers this process writes shards as well as the forked one, and the fork never
    resizes (it runs no TensorFlow): every shard is written once, by whichever took it."""
    frames_dir, labels = small
    log = tmp_path / "writers.log"

    def logged(resize):
        def call(path):
            headstart(path)
            with open(log, "a") as f:
                f.write(f"{os.getpid()} {resize} {os.path.basename(path)}\n")
        return call

    split_write_shard(monkeypatch, in_worker=logged(False), here=logged(True))
    manifest = packing.create_records(frames_dir, labels, str(tmp_path / "out"), frames_per_side=1,
                                      n_folds=2, shards=2, workers=2, progress=False)
    writes = [line.split() for line in log.read_text().splitlines()]
    assert sorted(name for _, _, name in writes) == sorted(s.file for s in manifest.shards)
    resize_by_writer = {pid: resize for pid, resize, _ in writes}
    assert resize_by_writer.pop(str(os.getpid())) == "True"
    assert list(resize_by_writer.values()) == ["False"]


@pytest.mark.slow
def test_a_dead_or_failing_worker_process_is_an_error_and_the_rerun_resumes(small, tmp_path,
                                                                           monkeypatch):
    """A worker killed mid-run (the out-of-memory killer, say) ends the run with one line
    instead of a wait without end, the shards written stay, and a re-run completes them; an
    error in a worker (a missing frame) reaches this process as itself; an error here stops
    the workers."""
    frames_dir, labels = small
    settings = dict(frames_per_side=1, n_folds=2, shards=2, progress=False)
    reference = packing.create_records(frames_dir, labels, str(tmp_path / "one"), **settings)
    out = tmp_path / "out"

    split_write_shard(monkeypatch, in_worker=lambda path: os.kill(os.getpid(), signal.SIGKILL))
    with pytest.raises(InputError, match=rf"^{re.escape(str(out))}: a worker process writing "
                                         r"shards ended \(killed by signal 9\) before it was done"):
        packing.create_records(frames_dir, labels, str(out), workers=2, **settings)
    kept = {name: os.stat(out / name).st_mtime_ns for name in os.listdir(out)
            if records.is_shard_name(name)}
    assert 0 < len(kept) < len(reference.shards)

    split_write_shard(monkeypatch, in_worker=raises(InputError("the worker's own error")))
    with pytest.raises(InputError, match="the worker's own error"):
        packing.create_records(frames_dir, labels, str(tmp_path / "failed"), workers=2,
                               **settings)

    # This process fails at once; the worker would write a shard a second later.
    split_write_shard(monkeypatch, in_worker=lambda path: time.sleep(1.0),
                      here=raises(InputError("this process's error")))
    with pytest.raises(InputError, match="this process's error"):
        packing.create_records(frames_dir, labels, str(tmp_path / "stopped"), workers=2,
                               **settings)
    time.sleep(1.5)
    assert not [name for name in os.listdir(tmp_path / "stopped") if records.is_shard_name(name)]

    monkeypatch.undo()
    packing.create_records(frames_dir, labels, str(out), workers=2, **settings)
    assert {name: os.stat(out / name).st_mtime_ns for name in kept} == kept
    for shard in reference.shards:
        assert (out / shard.file).read_bytes() == (tmp_path / "one" / shard.file).read_bytes()


def test_ctrl_c_in_a_worker_prints_no_traceback(small, tmp_path, monkeypatch, capfd):
    """Ctrl-C reaches every process of the group: a worker ends quietly and this process says
    it once (cli.reports_input_errors); here the worker alone was interrupted."""
    frames_dir, labels = small
    split_write_shard(monkeypatch, in_worker=raises(KeyboardInterrupt))
    with pytest.raises(InputError, match=r"ended \(exit code 0\) before it was done"):
        packing.create_records(frames_dir, labels, str(tmp_path / "out"), frames_per_side=1,
                               n_folds=2, shards=2, workers=2, progress=False)
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.slow
def test_cli_reports_bad_input_on_one_line(small, tmp_path):
    frames_dir, _ = small
    labels = tmp_path / "labels.csv"
    labels.write_text("video_id,time,distance\na.mp4,x,1\n")
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "create_tfrecords.py"), f"--frames_dir={frames_dir}",
         f"--labels_csv={labels}", f"--out_dir={tmp_path / 'tfrec'}"],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {labels} line 2: time 'x' is not a number"]


@pytest.mark.slow
def test_real_label_table_packs_into_video_folds(shared_dir, tmp_path):
    labels = str(shared_dir / "data" / "deep-chimpact" / "train_labels.csv")
    table = pd.read_csv(labels)
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    jpeg = tmp_path / "frame.jpg"
    jpeg.write_bytes(frame_jpeg("any", 0, (4, 4)))
    n_frames = (table.groupby("video_id").time.max() + 1).to_dict()
    n_frames["auxd.mp4"] = 60
    for video_id, count in n_frames.items():
        os.mkdir(frames_dir / video_id)
        for i in range(count):
            os.link(jpeg, frames_dir / video_id / frames.frame_name(i))
    storage.write_csv(pd.DataFrame(
        [{"video_id": v, "n_frames": n, "width": 4, "height": 4, "fps": 1.0, "duration_s": n,
          "gamma_corrected": False, "status": "ok", "error": ""} for v, n in n_frames.items()],
        columns=frames.MANIFEST_COLUMNS), frames.manifest_path(str(frames_dir)))

    out = str(tmp_path / "tfrec")
    manifest = packing.create_records(str(frames_dir), labels, out, frames_per_side=1,
                                      workers=2, progress=False)
    examples = all_examples(out)
    assert len(examples) == len(table) == manifest.examples
    assert sorted((e["video_id"], e["time"]) for e in examples) == sorted(
        zip(table.video_id, table.time))
    folds_of_video = pd.DataFrame(examples).groupby("video_id").fold.nunique()
    assert folds_of_video.max() == 1 and len(folds_of_video) == table.video_id.nunique()
    assert sorted(manifest.examples_per_fold) == [0, 1, 2, 3, 4]
    assert manifest.clamped_targets == 1
    assert len(manifest.distances) == table.distance.nunique()
    auxd = next(e for e in examples if (e["video_id"], e["time"]) == ("auxd.mp4", 60))
    assert auxd["distance"] == 20.0

    # Consecutive records mix videos like a shuffled table, in every shard and in the stream
    # that training reads in an epoch, which holds each of its examples exactly once.
    shuffled = distinct_videos(table.sample(frac=1.0, random_state=0).video_id)
    assert shuffled > 30  # of 32 (sorted by video, as before, gave about 5)
    for shard in manifest.shards:
        in_shard = [e["video_id"] for e in records.read_examples(storage.join(out, shard.file))]
        assert distinct_videos(in_shard) >= 0.85 * shuffled, shard.file
    stream = [tf.train.Example.FromString(serialized).features.feature for serialized in
              pipeline.epoch_records(records.shard_paths(out, [1, 2, 3, 4]), 0, 0)
              .as_numpy_iterator()]
    keys = [(f["video_id"].bytes_list.value[0].decode(), f["time"].int64_list.value[0])
            for f in stream]
    assert sorted(keys) == sorted((e["video_id"], e["time"]) for e in examples if e["fold"] != 0)
    assert distinct_videos([video_id for video_id, _ in keys]) >= 0.85 * shuffled


def distinct_videos(video_ids, window=32):
    """The mean number of distinct videos in consecutive windows of `window` records."""
    video_ids = list(video_ids)
    return np.mean([len(set(video_ids[i:i + window]))
                    for i in range(0, len(video_ids) - window + 1, window)])


def test_reading_records_prints_no_tensorflow_log_line(tmp_path):
    """TFRecordDataset logs "`buffer_size` is unspecified" (or, given one, that it overrides
    the default) from C++ at info level in every run that reads records (training, prediction,
    --inspect), unless TF_CPP_MIN_LOG_LEVEL says otherwise: here it is unset, as for a user."""
    shard = tmp_path / "test-000-of-001.tfrecord"
    code = f"""
        import os
        os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
        from chimpact import cli
        cli.require_tensorflow()
        import tensorflow as tf
        from chimpact.data import records
        from chimpact.training import pipeline
        with tf.io.TFRecordWriter("{shard}") as writer:
            writer.write(records.serialize_example([b"jpeg"], 2.5, "a.mp4", 3, -1))
        assert [e["time"] for e in records.read_examples("{shard}")] == [3]
        assert len(list(pipeline.epoch_records(["{shard}"], seed=0, epoch=0))) == 1
        print("read")
    """
    from model_checks import python_output

    output = python_output(code)
    assert output.splitlines() == ["read"], output
