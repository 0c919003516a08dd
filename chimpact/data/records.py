"""The sequence TFRecord schema and the records manifest: the one module that knows both.

An example holds the JPEG bytes of `window.stored_frames(frames_per_side)` frames centred on a
labelled second, its distance (NaN for the test subset), video_id, time and fold (-1 for test),
and, in records made with a boxes table, the animal's box (chimpact.boxes.VECTOR) and probability.
A records folder holds shards named by subset and fold plus `manifest.json` (a `Manifest`),
written last, so a folder without a manifest is incomplete.
"""

import dataclasses
import json
import re
import struct

import numpy as np
import tensorflow as tf

from chimpact import storage
from chimpact.data import boxes, window
from chimpact.errors import InputError

SCHEMA_VERSION = 2
MANIFEST = "manifest.json"
SUBSETS = ("train", "test")
_SHARD_PATTERN = re.compile(r"^(?:train-fold(\d+)|test)-(\d{3})-of-(\d{3})\.tfrecord$")
_AGAIN = "re-run create_tfrecords.py"


def shard_name(subset, fold, index, count):
    """File name of shard `index` of `count` (0-based) of a fold, or of the test subset."""
    if subset == "test":
        return f"test-{index:03d}-of-{count:03d}.tfrecord"
    return f"train-fold{fold}-{index:03d}-of-{count:03d}.tfrecord"


def is_shard_name(name):
    """True for a file name this schema writes as a shard."""
    return bool(_SHARD_PATTERN.match(name))


@dataclasses.dataclass(frozen=True)
class Shard:
    file: str
    fold: int | None  # None in the test subset
    examples: int


@dataclasses.dataclass(frozen=True)
class Manifest:
    """What a records folder holds; chimpact.data.packing makes it, every later stage asks it."""

    subset: str  # train | test
    frames_per_side: int
    step: int  # seconds between stored frames
    image_size: tuple  # (height, width) of the stored frames
    shards: tuple  # Shard, in reading order
    n_folds: int | None = None
    group_by: str | None = None  # video | site: what no two folds share
    stratified: bool = False  # folds drawn with distance bins in proportion
    shuffle_seed: int | None = None  # each fold's examples in a random order drawn from it
    distance_counts: dict = dataclasses.field(default_factory=dict)  # {fold: {metres: examples}}
    labels_csv: str = ""
    labels_sha256: str = ""
    boxes_csv: str = ""  # the boxes table the examples' boxes come from; "" when they have none
    boxes_sha256: str = ""
    frames_dir: str = ""
    frames: dict | None = None  # decode settings and gamma rule of the frames (packing)
    clamped_frames: int = 0
    clamped_examples: int = 0
    clamped_targets: int = 0
    # (video_id, time, window.outside_bits) of each example with frames past the video's ends;
    # None in records made before it was recorded.
    outside_frames: tuple | None = None
    missing_videos: tuple = ()
    skipped_rows: int = 0
    fingerprint: str = ""

    @property
    def stored_frames(self):
        return window.stored_frames(self.frames_per_side)

    @property
    def has_boxes(self):
        return bool(self.boxes_csv)

    @property
    def examples(self):
        return sum(shard.examples for shard in self.shards)

    @property
    def examples_per_fold(self):
        """{fold: examples} of the training subset."""
        counts = {}
        for shard in self.shards:
            if shard.fold is not None:
                counts[shard.fold] = counts.get(shard.fold, 0) + shard.examples
        return dict(sorted(counts.items()))

    @property
    def distances(self):
        """The distinct label values, ascending."""
        return sorted({float(d) for fold in self.distance_counts.values() for d in fold})

    def check_folds(self, folds, tfrec_dir):
        """InputError unless every fold of `folds` exists in these (training) records."""
        unknown = sorted({int(f) for f in folds} - set(range(self.n_folds or 0)))
        if unknown:
            raise InputError(f"{tfrec_dir}: folds {unknown} do not exist (the records have "
                             f"{self.n_folds} folds)")

    def examples_in(self, folds=None):
        """Examples of `folds` (all of them when None)."""
        return self.examples if folds is None else sum(self.examples_per_fold.get(int(f), 0)
                                                       for f in folds)

    def median_distance(self, folds):
        """The median label of the examples of `folds`."""
        counts = {}
        for fold in folds:
            for distance, n in self.distance_counts[int(fold)].items():
                counts[float(distance)] = counts.get(float(distance), 0) + n
        values = sorted(counts)
        return float(np.median(np.repeat(values, [counts[v] for v in values])))

    def shard_paths(self, tfrec_dir, folds=None):
        """Paths of the shards of `folds` (all when None; the test subset has no folds)."""
        if folds is None or self.subset == "test":
            return [storage.join(tfrec_dir, shard.file) for shard in self.shards]
        self.check_folds(folds, tfrec_dir)
        wanted = {int(f) for f in folds}
        return [storage.join(tfrec_dir, shard.file) for shard in self.shards
                if shard.fold in wanted]

    def frame_outside(self, fill, tfrec_dir):
        """What the parser needs to fill frames past the ends with `fill` (window.FILLS): None
        for clamp (the stored frames), else the outside_frames; InputError for records that do
        not record them."""
        window.check_fill(fill)
        if fill == "clamp":
            return None
        if self.outside_frames is None and self.clamped_frames:
            raise InputError(f"{tfrec_dir}: these records do not mark the frames past the "
                             f"videos' ends, which --frame_fill={fill} blacks out: {_AGAIN}")
        return self.outside_frames or ()

    def to_json(self):
        """manifest.json's text: the fields, plus what they imply, for whoever reads it."""
        fields = dataclasses.asdict(self)
        fields["distance_counts"] = {str(f): counts for f, counts in self.distance_counts.items()}
        return json.dumps({"schema_version": SCHEMA_VERSION, **fields,
                           "stored_frames": self.stored_frames, "examples": self.examples,
                           "examples_per_fold": {str(f): n for f, n in
                                                 self.examples_per_fold.items()},
                           "distances": self.distances}, indent=1) + "\n"

    @classmethod
    def from_json(cls, text, path):
        """The manifest in `text` (read from `path`); InputError naming what is wrong."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}: not valid JSON ({e.msg}, line {e.lineno}): {_AGAIN}")
        if data.get("schema_version") != SCHEMA_VERSION:
            raise InputError(f"{path}: schema_version {data.get('schema_version')} is not "
                             f"{SCHEMA_VERSION}: {_AGAIN}")
        names = {field.name for field in dataclasses.fields(cls)}
        required = [field.name for field in dataclasses.fields(cls)
                    if field.default is dataclasses.MISSING]
        lacking = [name for name in required if name not in data]
        if lacking:
            raise InputError(f"{path}: lacks {', '.join(lacking)}: {_AGAIN}")
        fields = {name: value for name, value in data.items() if name in names}
        return cls(**{**fields, "image_size": tuple(fields["image_size"]),
                      "shards": tuple(Shard(**shard) for shard in fields["shards"]),
                      "missing_videos": tuple(fields.get("missing_videos", ())),
                      "outside_frames": None if fields.get("outside_frames") is None else
                      tuple(tuple(example) for example in fields["outside_frames"]),
                      "distance_counts": {int(f): counts for f, counts in
                                          fields.get("distance_counts", {}).items()}})


def manifest_path(tfrec_dir):
    return storage.join(tfrec_dir, MANIFEST)


def write_manifest(tfrec_dir, manifest):
    """Writes manifest.json atomically; call it after every shard is complete."""
    storage.atomic_write(manifest_path(tfrec_dir), manifest.to_json())


def read_manifest(tfrec_dir):
    """The Manifest of a complete records folder; InputError when it is missing or unreadable."""
    path = manifest_path(tfrec_dir)
    if not storage.exists(path):
        raise InputError(f"{tfrec_dir}: no {MANIFEST}, the records are missing or incomplete: "
                         f"{_AGAIN}")
    return Manifest.from_json(storage.read_text(path), path)


def shard_paths(tfrec_dir, folds=None):
    """Paths of the shards of `folds` of the records in `tfrec_dir` (see Manifest.shard_paths)."""
    return read_manifest(tfrec_dir).shard_paths(tfrec_dir, folds)


# tf.train.Feature's fields: which list a feature holds.
_BYTES, _FLOATS, _INTS = 1, 2, 3


def _varint(value):
    """Protobuf's base-128 varint of an int64 (two's complement for negatives)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _delimited(number, parts):
    """The pieces of protobuf field `number` (length-delimited) whose payload is `parts`."""
    return [bytes([number << 3 | 2]), _varint(sum(map(len, parts))), *parts]


def serialize_example(frames, distance, video_id, time, fold, box=None, box_probability=0.0):
    """One example as bytes: `frames` is the list of JPEG bytes, oldest first; `box` the
    boxes.VECTOR values when the records carry boxes.

    The tf.train.Example is written in protobuf's wire format directly, its features in key
    order: the same bytes from any process, worker or protobuf version (SerializeToString puts
    map entries in the order of a hash seeded per process, and deterministic=True in an order
    of each implementation's own), and no message is built, which would copy every frame twice
    under Python's lock and kept several workers from writing faster than one.
    """
    features = {
        "frames": (_BYTES, [piece for jpeg in frames for piece in _delimited(1, [jpeg])]),
        "distance": (_FLOATS, _delimited(1, [struct.pack("<f", distance)])),
        "video_id": (_BYTES, _delimited(1, [video_id.encode()])),
        "time": (_INTS, _delimited(1, [_varint(int(time))])),
        "fold": (_INTS, _delimited(1, [_varint(int(fold))])),
    }
    if box is not None:
        features["box"] = (_FLOATS, _delimited(1, [struct.pack(f"<{len(box)}f", *box)]))
        features["box_probability"] = (_FLOATS,
                                       _delimited(1, [struct.pack("<f", box_probability)]))
    entries = []
    for key in sorted(features):
        kind, values = features[key]
        entries += _delimited(1, [*_delimited(1, [key.encode()]),
                                  *_delimited(2, _delimited(kind, values))])
    return b"".join(_delimited(1, entries))


_KEY_SPEC = {
    "distance": tf.io.FixedLenFeature([], tf.float32),
    "video_id": tf.io.FixedLenFeature([], tf.string),
    "time": tf.io.FixedLenFeature([], tf.int64),
    "fold": tf.io.FixedLenFeature([], tf.int64),
}
_BOX_SPEC = {
    "box": tf.io.FixedLenFeature([len(boxes.VECTOR)], tf.float32),
    "box_probability": tf.io.FixedLenFeature([], tf.float32),
}


def parse_keys(serialized):
    """A serialized example's video_id, time, distance and fold, its frames left alone."""
    return tf.io.parse_single_example(serialized, _KEY_SPEC)


def key_text(video_id, time):
    """The key of an example (video_id, time) in lookup tables built from Python values."""
    return f"{video_id}\t{time}"


def example_key(example):
    """key_text of a parsed example's tensors, in a tf.data graph."""
    return tf.strings.join([example["video_id"], tf.strings.as_string(example["time"])],
                           separator="\t")


def decode_frame(jpeg):
    """uint8 [H, W, 3] of a stored JPEG, decoded with the accurate integer DCT, as the reference
    decoded (TensorFlow's default is the fast one: pixels up to 17 levels apart, which moved an
    imported reference model's distances by up to 0.46 m on test frames)."""
    return tf.io.decode_jpeg(jpeg, channels=3, dct_method="INTEGER_ACCURATE")


def make_parser(stored_frames, volume_size, image_size=None, with_boxes=False, outside=None):
    """A function from a serialized example (scalar tf.string) to a dict of tensors.

    Only the `volume_size` centred frames are decoded: frames is uint8 [volume_size, H, W, 3],
    with a static H, W when `image_size` (height, width) is given, as TPUs need. `with_boxes`
    adds box (float32 [5], boxes.VECTOR) and box_probability. With `outside` (a manifest's
    outside_frames, see Manifest.frame_outside) the frames past the video's ends are black.
    """
    first = window.centre(stored_frames, volume_size)
    features = {"frames": tf.io.FixedLenFeature([stored_frames], tf.string), **_KEY_SPEC,
                **(_BOX_SPEC if with_boxes else {})}
    bits = None
    if outside is not None:
        keys = [key_text(video_id, time) for video_id, time, _ in outside]
        bits = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant(keys or [""], tf.string),
            tf.constant([b for _, _, b in outside] or [0], tf.int64)), default_value=0)

    def parse(serialized):
        example = tf.io.parse_single_example(serialized, features)
        jpegs = example["frames"][first:first + volume_size]
        frames = tf.stack([decode_frame(jpegs[i]) for i in range(volume_size)])
        if bits is not None:
            mask = bits.lookup(example_key(example))
            shifts = tf.range(first, first + volume_size, dtype=tf.int64)
            inside = tf.equal(tf.bitwise.bitwise_and(tf.bitwise.right_shift(mask, shifts), 1), 0)
            frames = frames * tf.cast(inside, tf.uint8)[:, None, None, None]
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
            **({"box": list(feature["box"].float_list.value),
                "box_probability": feature["box_probability"].float_list.value[0]}
               if "box" in feature else {}),
        }


def describe(tfrec_dir):
    """Lines describing a records folder: its manifest, then one decoded example per shard."""
    manifest = read_manifest(tfrec_dir)
    yield manifest.to_json().rstrip()
    parse = make_parser(manifest.stored_frames, manifest.stored_frames,
                        with_boxes=manifest.has_boxes)
    for path in manifest.shard_paths(tfrec_dir):
        for serialized in tf.data.TFRecordDataset(path).take(1):
            example = parse(serialized)
            yield (
                f"{path}: video_id={example['video_id'].numpy().decode()} "
                f"time={int(example['time'])} distance={float(example['distance']):g} "
                f"fold={int(example['fold'])} frames={tuple(example['frames'].shape)}"
                + (f" box={[round(float(v), 4) for v in example['box']]}"
                   if manifest.has_boxes else "")
            )
