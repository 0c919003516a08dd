"""tf.data input pipelines over the sequence records, and prediction with every example once.

Training: every shard of the epoch read at once in a fresh order (the shards themselves hold
their fold's examples in random order, see chimpact.data.packing), serialized records shuffled in
blocks (the buffer holds JPEG bytes, not decoded frames), only the centred `volume_size` frames
decoded, resized only when the stored size differs, one random augmentation per example,
batched, prefetched; all parallel and autotuned. Each epoch is its own seeded stream, so a
resumed run continues with the stream of the epoch it resumes at, and epochs differ from one
another. Evaluation and prediction read the records in a fixed order. With `use_boxes` the model
input is {"frames", "box"}, the box moved by each augmentation as its frames are.
"""

import numpy as np
import pandas as pd
import tensorflow as tf

from chimpact.data import boxes, records, resize
from chimpact.errors import InputError
from chimpact.training import augment, crop
from chimpact.training import strategy as strategies

AUTOTUNE = tf.data.AUTOTUNE
SHUFFLE_BUFFER = 256
_CYCLE_LENGTH = 8
# Shards read at once in training: all of an epoch's, up to this many open files.
_TRAIN_CYCLE_LENGTH = 64
_KEY_BATCH = 4096


def _read_records(paths, cycle_length):
    """Serialized examples interleaved from the shards `paths`, in an order fixed by `paths`."""
    files = tf.data.Dataset.from_tensor_slices(paths)
    return files.interleave(tf.data.TFRecordDataset, cycle_length=cycle_length,
                            num_parallel_calls=AUTOTUNE, deterministic=True)


def _ordered_records(paths):
    return _read_records(paths, min(_CYCLE_LENGTH, len(paths)))


def epoch_records(paths, seed, epoch, shuffle_buffer=SHUFFLE_BUFFER):
    """The serialized training examples of one epoch: the shards `paths` in an order drawn from
    (seed, epoch), all read at once a record at a time, then shuffled in blocks of
    `shuffle_buffer`. Each example exactly once; the same (seed, epoch) gives the same stream."""
    epoch_seed = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
    shard_order = tf.random.experimental.stateless_shuffle(tf.constant(paths), epoch_seed)
    examples = _read_records(shard_order, min(_TRAIN_CYCLE_LENGTH, len(paths)))
    # A stateless shuffle of consecutive blocks (Dataset.shuffle takes no per-epoch seed once a
    # global seed is set).
    blocks = examples.batch(shuffle_buffer).enumerate()
    return blocks.map(lambda index, block: tf.random.experimental.stateless_shuffle(
        block, tf.random.experimental.stateless_fold_in(epoch_seed, index))).unbatch()


def make_loader(manifest, volume_size, image_size=None, crop_bottom=0.0, outside=None,
                frame_resize="ffmpeg"):
    """serialized example -> dict(frames uint8 [volume_size, H, W, 3], distance, video_id, ...,
    and box when the records have boxes).

    Frames are resized (resize.resize_frames, as `frame_resize` says) only when the stored
    size is not `image_size`, then
    lose their bottom `crop_bottom` (chimpact.training.crop), boxes with them. `outside`
    (Manifest.frame_outside) blacks out the frames past the videos' ends.
    """
    stored = tuple(manifest.image_size)
    size = tuple(int(v) for v in image_size) if image_size else stored
    parse = records.make_parser(manifest.stored_frames, volume_size, stored, manifest.has_boxes,
                                outside)

    def load(serialized):
        example = parse(serialized)
        if size != stored:
            example["frames"] = resize.resize_frames(example["frames"], size, frame_resize)
        example["frames"] = crop.crop_frames(example["frames"], crop_bottom)
        if "box" in example:
            example["box"] = crop.crop_box(example["box"], size[0], crop_bottom)
        return example

    return load


def check_boxes(manifest, tfrec_dir, use_boxes):
    """InputError when a box model is given records without boxes."""
    if use_boxes and not manifest.has_boxes:
        raise InputError(f"{tfrec_dir}: these records have no boxes, which a --use_boxes model "
                         "reads: make them with create_tfrecords.py --boxes_csv")


def model_inputs(example, use_boxes):
    """What the model reads of a loaded example: its frames, with its box when `use_boxes`."""
    if use_boxes:
        return {"frames": example["frames"], "box": example["box"]}
    return example["frames"]


def replica_batch_size(batch_size, replicas):
    """`batch_size` rounded up to a multiple of `replicas`, so that every replica gets the same
    static share of a padded prediction batch."""
    return -(-batch_size // replicas) * replicas


def train_steps(n_examples, batch_size, drop_remainder):
    """Steps per epoch: every example once, or only whole batches when dropping the remainder."""
    steps = n_examples // batch_size if drop_remainder else -(-n_examples // batch_size)
    if steps < 1:
        raise InputError(f"--batch_size={batch_size}: larger than the {n_examples} training "
                         "examples")
    return steps


def make_train_dataset(tfrec_dir, folds, volume_size, image_size=None, batch_size=32, aug="none",
                       aug_prob=0.0, seed=0, epochs=1, start_epoch=0, drop_remainder=False,
                       shuffle_buffer=SHUFFLE_BUFFER, input_context=None, use_boxes=False,
                       crop_bottom=0.0, fill="clamp", pseudo=None):
    """Training batches (frames uint8 [B, T, H, W, 3], distance float32 [B]) for epochs
    start_epoch..epochs-1, each epoch `train_steps(...)` batches long.

    `batch_size` is the global batch. With a tf.distribute.InputContext (from
    strategy.distribute_datasets_from_function) each input pipeline reads its share of every
    epoch and batches per replica. `pseudo` (chimpact.pseudo.PseudoLabels) adds its test
    examples, with its distances, to the examples of `folds`.
    """
    manifest = records.read_manifest(tfrec_dir)
    check_boxes(manifest, tfrec_dir, use_boxes)
    paths = manifest.shard_paths(tfrec_dir, folds)
    outside = manifest.frame_outside(fill, tfrec_dir)
    n_examples = manifest.examples_in(folds)
    if pseudo is not None:
        paths += pseudo.manifest.shard_paths(pseudo.tfrec_dir)
        n_examples += len(pseudo.table)
        if outside is not None:
            outside = (*outside, *pseudo.manifest.frame_outside(fill, pseudo.tfrec_dir))
    load = make_loader(manifest, volume_size, image_size, crop_bottom, outside)
    pipelines, pipeline_id, replica_batch = 1, 0, batch_size
    if input_context is not None:
        pipelines, pipeline_id = input_context.num_input_pipelines, input_context.input_pipeline_id
        replica_batch = input_context.get_per_replica_batch_size(batch_size)
    steps = train_steps(n_examples, batch_size, drop_remainder)
    # Every pipeline reads the same number of examples per epoch, so that no replica waits.
    per_pipeline = (steps * batch_size if drop_remainder else n_examples) // pipelines

    def one_epoch(epoch):
        epoch_seed = tf.stack([tf.constant(seed, tf.int64), epoch])
        examples = epoch_records(paths, seed, epoch, shuffle_buffer)
        if pseudo is not None:
            # Labelled here, in a map of its own: a parallel map fused with the batch below
            # fails when it reads the lookup table (TF 2.21: "batch_size must be greater than
            # zero").
            examples = examples.filter(pseudo.keeps).map(pseudo.label)
        if pipelines > 1:
            examples = examples.shard(pipelines, pipeline_id)
        element_seed = tf.random.experimental.stateless_fold_in(epoch_seed, pipeline_id)

        def prepare(index, element):
            if pseudo is None:
                example = load(element)
            else:
                serialized, distance = element
                example = {**load(serialized), "distance": distance}
            example_seed = tf.random.experimental.stateless_fold_in(element_seed, index)
            if use_boxes:
                frames, box = augment.augment(example["frames"], aug, aug_prob, example_seed,
                                              example["box"])
                return {"frames": frames, "box": box}, example["distance"]
            frames = augment.augment(example["frames"], aug, aug_prob, example_seed)
            return frames, example["distance"]

        examples = examples.take(per_pipeline).enumerate()
        examples = examples.map(prepare, num_parallel_calls=AUTOTUNE, deterministic=True)
        return examples.batch(replica_batch, drop_remainder=drop_remainder)

    epochs_ds = tf.data.Dataset.range(start_epoch, epochs)
    return epochs_ds.flat_map(one_epoch).prefetch(AUTOTUNE)


def make_eval_dataset(tfrec_dir, folds, volume_size, image_size=None, batch_size=32,
                      labelled=True, use_boxes=False, crop_bottom=0.0, fill="clamp",
                      frame_resize="ffmpeg"):
    """Full batches of the examples of `folds` (all when None) in a fixed order, none dropped.

    The last batch is padded with black sequences, so shapes are static and every replica gets
    an equal, non-empty share. Yields (frames, distance, weight) where the weight is 0 for
    padding and n_padded / n for a real example, so that Keras' weighted means (loss, metrics)
    equal the plain means over the real examples; or frames alone when not `labelled` (callers
    keep the first n predictions). With `use_boxes`, frames is {"frames", "box"} (padding: no box).
    `crop_bottom`, `fill` and `frame_resize` as in make_loader.
    """
    manifest = records.read_manifest(tfrec_dir)
    check_boxes(manifest, tfrec_dir, use_boxes)
    load = make_loader(manifest, volume_size, image_size, crop_bottom,
                       manifest.frame_outside(fill, tfrec_dir), frame_resize)
    n_examples = manifest.examples_in(folds)
    n_batches = -(-n_examples // batch_size)
    weight = n_batches * batch_size / max(n_examples, 1)

    def prepare(serialized):
        example = load(serialized)
        return (model_inputs(example, use_boxes), example["distance"],
                tf.constant(weight, tf.float32))

    paths = manifest.shard_paths(tfrec_dir, folds)
    examples = _ordered_records(paths).map(prepare, num_parallel_calls=AUTOTUNE,
                                           deterministic=True)
    padding = tf.data.Dataset.from_tensors(tf.nest.map_structure(
        lambda spec: tf.zeros(spec.shape, spec.dtype), examples.element_spec))
    if use_boxes:
        padding = padding.map(lambda inputs, distance, weight: (
            {**inputs, "box": tf.constant(boxes.ABSENT)}, distance, weight))
    examples = examples.concatenate(padding.repeat(n_batches * batch_size - n_examples))
    if not labelled:
        examples = examples.map(lambda frames, distance, weight: frames)
    batches = examples.batch(batch_size, drop_remainder=True)
    # A known length lets Keras size its progress bar and not warn at the end of the data.
    batches = batches.apply(tf.data.experimental.assert_cardinality(n_batches))
    options = tf.data.Options()
    # Under MultiWorkerMirroredStrategy, shard elements: there may be fewer files than workers.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return batches.with_options(options).prefetch(AUTOTUNE)


def read_keys(tfrec_dir, folds=None):
    """DataFrame (video_id, time, distance, fold) of the examples of `folds`, in the order of
    make_eval_dataset. Decodes no frame."""
    paths = records.shard_paths(tfrec_dir, folds)
    batches = _ordered_records(paths).map(records.parse_keys, num_parallel_calls=AUTOTUNE,
                                          deterministic=True).batch(_KEY_BATCH)
    parts = [pd.DataFrame(batch) for batch in batches.as_numpy_iterator()]
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        {"video_id": [], "time": [], "distance": [], "fold": []})
    table["video_id"] = table.video_id.map(lambda v: v.decode() if isinstance(v, bytes) else v)
    return table.astype({"time": np.int64, "distance": np.float64, "fold": np.int64})


def predict(model, tfrec_dir, folds=None, volume_size=7, image_size=None, batch_size=32,
            strategy=None, outputs=("pred",), use_boxes=False, crop_bottom=0.0, fill="clamp",
            frame_resize="ffmpeg"):
    """Predictions for every example of `folds` (all when None) exactly once.

    Returns a DataFrame (video_id, time, distance, fold, then one column per model output, named
    by `outputs`) in record order. The batches are padded to full size, rounded up to a multiple
    of the replicas of `strategy` (default: the model's), so any batch size works on any number
    of replicas.
    """
    batch_size = replica_batch_size(
        batch_size, (strategy or strategies.of_model(model)).num_replicas_in_sync)
    table = read_keys(tfrec_dir, folds)
    pred = np.zeros((0, len(outputs)))
    if len(table):
        batches = make_eval_dataset(tfrec_dir, folds, volume_size, image_size, batch_size,
                                    labelled=False, use_boxes=use_boxes,
                                    crop_bottom=crop_bottom, fill=fill,
                                    frame_resize=frame_resize)
        pred = model.predict(batches, verbose=0)[:len(table)]
    for i, name in enumerate(outputs):
        table[name] = pred[:, i]
    return table[["video_id", "time", "distance", "fold", *outputs]]
