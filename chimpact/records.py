"""The sequence TFRecord schema: the one module that knows its feature names.

An example holds the JPEG bytes of `stored_frames = 2 * frames_per_side + 1` frames centred on a
labelled second, its distance (NaN for the test subset), video_id, time and fold (-1 for test).
A records folder holds shards named by subset and fold plus `manifest.json`, written last, so a
folder without a manifest is incomplete.
"""

import json
import re

import tensorflow as tf

from chimpact import io
from chimpact.errors import InputError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
SUBSETS = ("train", "test")
_SHARD_PATTERN = re.compile(r"^(?:train-fold(\d+)|test)-(\d{3})-of-(\d{3})\.tfrecord$")


def shard_name(subset, fold, index, count):
    """File name of shard `index` of `count` (0-based) of a fold, or of the test subset."""
    if subset == "test":
        return f"test-{index:03d}-of-{count:03d}.tfrecord"
    return f"train-fold{fold}-{index:03d}-of-{count:03d}.tfrecord"


def is_shard_name(name):
    """True for a file name this schema writes as a shard."""
    return bool(_SHARD_PATTERN.match(name))


def manifest_path(tfrec_dir):
    return io.join(tfrec_dir, MANIFEST)


def write_manifest(tfrec_dir, manifest):
    """Writes manifest.json atomically; call it after every shard is complete."""
    io.atomic_write(manifest_path(tfrec_dir), json.dumps(manifest, indent=1) + "\n")


def read_manifest(tfrec_dir):
    """The manifest of a complete records folder; InputError when it is missing."""
    path = manifest_path(tfrec_dir)
    if not tf.io.gfile.exists(path):
        raise InputError(
            f"{tfrec_dir}: no {MANIFEST}, the records are missing or incomplete: "
            "re-run create_tfrecords.py"
        )
    try:
        manifest = json.loads(io.read_text(path))
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON ({e.msg}, line {e.lineno}): "
                         "re-run create_tfrecords.py") from e
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise InputError(
            f"{path}: schema_version {manifest.get('schema_version')} is not "
            f"{SCHEMA_VERSION}: re-run create_tfrecords.py"
        )
    return manifest


def shard_paths(tfrec_dir, folds=None):
    """Paths of the shards of `folds` (all shards when None; the test subset has no folds)."""
    manifest = read_manifest(tfrec_dir)
    wanted = None if folds is None or manifest["subset"] == "test" else {int(f) for f in folds}
    if wanted is not None:
        unknown = wanted - set(range(manifest["n_folds"]))
        if unknown:
            raise InputError(
                f"{tfrec_dir}: folds {sorted(unknown)} do not exist "
                f"(the records have {manifest['n_folds']} folds)"
            )
    return [
        io.join(tfrec_dir, shard["file"])
        for shard in manifest["shards"]
        if wanted is None or shard["fold"] in wanted
    ]


def _bytes_feature(values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def serialize_example(frames, distance, video_id, time, fold):
    """One example as bytes: `frames` is the list of JPEG bytes, oldest first."""
    feature = {
        "frames": _bytes_feature(list(frames)),
        "distance": tf.train.Feature(float_list=tf.train.FloatList(value=[float(distance)])),
        "video_id": _bytes_feature([video_id.encode()]),
        "time": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(time)])),
        "fold": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(fold)])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def make_parser(stored_frames, volume_size, image_size=None):
    """A function from a serialized example (scalar tf.string) to a dict of tensors.

    Only the `volume_size` centred frames are decoded: frames is uint8 [volume_size, H, W, 3],
    with a static H, W when `image_size` (height, width) is given, as TPUs need.
    """
    if volume_size < 1 or volume_size % 2 == 0 or volume_size > stored_frames:
        raise InputError(
            f"--volume_size={volume_size}: must be odd and at most the {stored_frames} "
            "frames stored per example"
        )
    features = {
        "frames": tf.io.FixedLenFeature([stored_frames], tf.string),
        "distance": tf.io.FixedLenFeature([], tf.float32),
        "video_id": tf.io.FixedLenFeature([], tf.string),
        "time": tf.io.FixedLenFeature([], tf.int64),
        "fold": tf.io.FixedLenFeature([], tf.int64),
    }
    first = (stored_frames - volume_size) // 2

    def parse(serialized):
        example = tf.io.parse_single_example(serialized, features)
        jpegs = example["frames"][first:first + volume_size]
        frames = tf.stack([tf.io.decode_jpeg(jpegs[i], channels=3) for i in range(volume_size)])
        if image_size is not None:
            frames = tf.ensure_shape(frames, [volume_size, *image_size, 3])
        example["frames"] = frames
        return example

    return parse


def read_examples(path):
    """The examples of one shard as dicts of Python values, JPEG bytes undecoded (for checks)."""
    for serialized in tf.data.TFRecordDataset(path).as_numpy_iterator():
        feature = tf.train.Example.FromString(serialized).features.feature
        yield {
            "frames": list(feature["frames"].bytes_list.value),
            "distance": feature["distance"].float_list.value[0],
            "video_id": feature["video_id"].bytes_list.value[0].decode(),
            "time": feature["time"].int64_list.value[0],
            "fold": feature["fold"].int64_list.value[0],
        }


def describe(tfrec_dir):
    """Lines describing a records folder: its manifest, then one decoded example per shard."""
    manifest = read_manifest(tfrec_dir)
    yield json.dumps(manifest, indent=1)
    parse = make_parser(manifest["stored_frames"], manifest["stored_frames"])
    for path in shard_paths(tfrec_dir):
        for serialized in tf.data.TFRecordDataset(path).take(1):
            example = parse(serialized)
            yield (
                f"{path}: video_id={example['video_id'].numpy().decode()} "
                f"time={int(example['time'])} distance={float(example['distance']):g} "
                f"fold={int(example['fold'])} frames={tuple(example['frames'].shape)}"
            )
