"""Fold-averaged distance predictions of a trained model: on test records, raw videos, exported.

All three paths run one Keras model, `FoldAverage`: each test-time view of a uint8 sequence batch
through every fold's network, averaged over the folds in one graph, one column per view; the
prediction is the mean of the views (or, with aggregate median, the median over the folds, then
over the views, as the 1st place took). So a submission, a folder of field videos and the
exported SavedModel give the same numbers for the same frames. The same model over each fold's
own network predicts the out-of-fold rows under the same views (`predict_oof`), so that the
ensemble can be fitted on what it will be applied to.
"""

import json
import logging
import os

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from chimpact import storage
from chimpact.data import boxes, frames, records
from chimpact.data.labels import KEYS
from chimpact.errors import InputError, UsageError
from chimpact.predict import views
from chimpact.settings import AGGREGATES
from chimpact.training import augment, crop, model, model_folder, pipeline
from chimpact.training import strategy as strategies

log = logging.getLogger(__name__)
EXPORT_INFO = "chimpact_export.json"
# Test-time views: identity, then the geometric augmentations (flips, right-angle rotations...).
TTA_AUG = "a1"
# --aggregate values: how the folds' and the views' predictions are combined.


def median(values, axis):
    """The median of a tensor along `axis` (the mean of the middle two for an even count)."""
    count = values.shape[axis]
    ordered = keras.ops.sort(values, axis=axis)
    return (keras.ops.take(ordered, (count - 1) // 2, axis=axis)
            + keras.ops.take(ordered, count // 2, axis=axis)) / 2.0


def combine(values, aggregate, axis):
    """`values` (a tensor) reduced along `axis` by AGGREGATES' `aggregate`, keeping the axis."""
    if aggregate == "median":
        return keras.ops.expand_dims(median(values, axis), axis)
    return keras.ops.mean(values, axis=axis, keepdims=True)


def check_aggregate(aggregate):
    if aggregate not in AGGREGATES:
        raise InputError(f"--aggregate={aggregate}: expected one of {', '.join(AGGREGATES)}")


class FoldAverage(keras.Model):
    """Distance in metres of the fold networks under each test-time view, their mean (or median,
    `aggregate`) over the folds: [batch, views] (the TTA prediction combines the columns the
    same way); with `per_fold`, every fold's distance under every view, [batch, views, folds]
    (what an interval is drawn from).

    Takes uint8 sequences [batch, volume_size, height, width, 3], or for a box model
    {"frames": those, "box": [batch, 5]}; views act on the uint8 pixels, as pipeline.predict's
    do, and move the box with them.
    """

    def __init__(self, fold_models, tta=1, per_fold=False, aggregate="mean", **kwargs):
        # float32 whatever the folds' policy: the views and the mean work on pixels and metres.
        super().__init__(dtype="float32", **kwargs)
        check_aggregate(aggregate)
        self.fold_models = list(fold_models)
        self.tta = tta
        self.per_fold = per_fold
        self.aggregate = aggregate
        self.views, self.box_views = views.tta_views(TTA_AUG, tta)

    def call(self, inputs):
        # keras.ops: the same graph under TensorFlow and JAX.
        sequences = inputs["frames"] if isinstance(inputs, dict) else inputs
        pictures = keras.ops.reshape(sequences, (-1, *sequences.shape[2:]))
        per_view = []
        for view, box_view in zip(self.views, self.box_views):
            viewed = keras.ops.reshape(view(pictures), (-1, *sequences.shape[1:]))
            if isinstance(inputs, dict):
                viewed = {"frames": viewed, "box": box_view(inputs["box"], sequences.shape[2:4])}
            outputs = keras.ops.concatenate([keras.ops.cast(network(viewed), "float32")
                                             for network in self.fold_models], axis=1)
            per_view.append(outputs if self.per_fold else combine(outputs, self.aggregate, 1))
        return (keras.ops.stack(per_view, axis=1) if self.per_fold
                else keras.ops.concatenate(per_view, axis=1))


def view_names(tta):
    """The names of the first `tta` test-time views (identity, flip_lr, flip_ud, rot90, ...)."""
    count = len(augment.op_names(TTA_AUG)) + 1
    if not 1 <= tta <= count:
        raise UsageError(f"--tta={tta}: must be 1..{count} (identity, flips, rotations)")
    return augment.tta_names(TTA_AUG, tta)


def _predictor(fold_models, tta, strategy, jit_compile, per_fold=False, aggregate="mean"):
    with strategy.scope():
        return model.set_jit_compile(FoldAverage(fold_models, tta, per_fold, aggregate),
                                     jit_compile)


def load_predictor(model_dir, strategy=None, tta=1, jit_compile="auto", per_fold=False,
                   aggregate="mean"):
    """(FoldAverage of every trained fold of `model_dir` under `strategy`, its config.json).

    The folds are built under the folder's mixed precision policy, as in training and for the
    out-of-fold predictions; `jit_compile` (auto, True, False) is compile's."""
    view_names(tta)
    check_aggregate(aggregate)
    config = trained_config(model_dir)
    strategy = strategy or strategies.current()
    folds = model.load_fold_models(model_dir, strategy=strategy)
    log.info("%s: folds %s, %d test-time view(s), %s over them, %d replica(s)", model_dir,
             sorted(folds), tta, aggregate, strategy.num_replicas_in_sync)
    return _predictor([folds[f] for f in sorted(folds)], tta, strategy, jit_compile,
                      per_fold, aggregate), config


def trained_config(model_dir):
    """The config.json of `model_dir`; InputError when no fold is trained yet."""
    config = model_folder.read_config(model_dir)
    if not config.get("folds"):
        raise InputError(f"{model_dir}: no trained fold yet: run run_train.py")
    return config


def _check_serves(manifest, config, tfrec_dir):
    """InputError unless the records hold the model's sequences (frame step, enough frames)."""
    if manifest.step != config["step"]:
        raise InputError(f"--tfrec_dir={tfrec_dir}: frames are {manifest.step} s apart, the "
                         f"model was trained on step {config['step']}: rebuild with --step")
    if manifest.stored_frames < config["volume_size"]:
        raise InputError(f"--tfrec_dir={tfrec_dir}: {manifest.stored_frames} frames per "
                         f"example, the model needs {config['volume_size']}")


def _with_views(table, names, aggregate="mean"):
    """`table` with `pred`, the mean (or median) of its view columns; the views kept when there
    are several."""
    table = table.assign(pred=combine_views(table[names].to_numpy(), aggregate))
    return table.drop(columns=names) if names == [augment.IDENTITY] else table


def predict_records(predictor, config, tfrec_dir, batch_size=16):
    """(video_id, time, pred, then one column per view when tta > 1) for every example of the
    test records in `tfrec_dir`, each once; warns when their frames were decoded otherwise than
    the model's training frames."""
    manifest = records.read_manifest(tfrec_dir)
    if manifest.subset != "test":
        raise InputError(f"--tfrec_dir={tfrec_dir}: holds {manifest.subset} records: give "
                         "the test records (create_tfrecords.py --subset=test)")
    _check_serves(manifest, config, tfrec_dir)
    differences = frames.decode_differences(config.get("frames"), manifest.frames)
    if differences:
        log.warning("--tfrec_dir=%s: its frames were decoded otherwise than the model's "
                    "training frames: %s (labelled=True is the gamma rule on labelled frames, "
                    "False on the median frame): make the test frames with the same "
                    "create_frames.py flags, --labels_csv=submission_format.csv for the "
                    "labelled rule", tfrec_dir, "; ".join(differences))
    use_boxes = config.get("use_boxes", False)
    pipeline.check_boxes(manifest, tfrec_dir, use_boxes)
    names = view_names(predictor.tta)
    table = pipeline.predict(predictor, tfrec_dir, None, config["volume_size"],
                             config["image_size"], batch_size, strategies.of_model(predictor),
                             outputs=names, use_boxes=use_boxes,
                             crop_bottom=config["crop_bottom"], fill=config["frame_fill"],
                             frame_resize=config["frame_resize"])
    return _with_views(table[KEYS + names], names, predictor.aggregate)


def predict_oof(model_dir, tfrec_dir=None, tta=1, strategy=None, jit_compile="auto",
                batch_size=16, aggregate="mean"):
    """Each trained fold's network on its own validation rows under `tta` views: (video_id,
    time, distance, fold, pred, then one column per view when tta > 1). With tta=1 it repeats
    oof.csv; the views show whether TTA helps. `tfrec_dir` defaults to the training records."""
    names = view_names(tta)
    config = trained_config(model_dir)
    tfrec_dir = tfrec_dir or config["tfrec_dir"]
    manifest = records.read_manifest(tfrec_dir)
    if manifest.subset != "train" or manifest.labels_sha256 != config["labels_sha256"]:
        raise InputError(f"--tfrec_dir={tfrec_dir}: not the training records of {model_dir} "
                         "(other labels or subset): --oof needs the records it was trained on")
    _check_serves(manifest, config, tfrec_dir)
    strategy = strategy or strategies.current()
    parts = []
    for fold, network in model.load_fold_models(model_dir, strategy=strategy).items():
        predictor = _predictor([network], tta, strategy, jit_compile)
        parts.append(pipeline.predict(predictor, tfrec_dir, [fold], config["volume_size"],
                                      config["image_size"], batch_size, strategy, outputs=names,
                                      use_boxes=config["use_boxes"],
                                      crop_bottom=config["crop_bottom"],
                                      fill=config["frame_fill"],
                                      frame_resize=config["frame_resize"]))
    table = pd.concat(parts, ignore_index=True)
    return _with_views(table[KEYS + ["distance", "fold"] + names], names, aggregate)


def view_scores(oof):
    """{column: OOF MAE} of the views and their mean in a predict_oof table."""
    columns = [c for c in oof.columns if c not in KEYS + ["distance", "fold"]]
    return {c: float((oof[c] - oof.distance).abs().mean()) for c in columns}


def read_predictions(model_dir):
    """The test_preds.csv of a model folder."""
    path = storage.join(model_dir, model_folder.TEST_PREDS)
    if not tf.io.gfile.exists(path):
        raise InputError(f"{path}: missing: run run_infer.py with --tfrec_dir (test records)")
    return storage.read_csv(path, dtype={"video_id": str})


def check_export_dir(export_dir):
    """InputError unless `export_dir` is new, empty or an earlier export (which is replaced)
    and Keras runs on TensorFlow (a SavedModel is TensorFlow's)."""
    if strategies.is_jax():
        raise UsageError(f"--export={export_dir}: a SavedModel is written under TensorFlow: "
                         "export with --backend=tensorflow (same model folder)")
    if not tf.io.gfile.isdir(export_dir):
        if tf.io.gfile.exists(export_dir):
            raise InputError(f"--export={export_dir}: is a file")
        return
    names = {name.rstrip("/") for name in tf.io.gfile.listdir(export_dir)}
    if names and not names & {EXPORT_INFO, "saved_model.pb"}:
        raise InputError(f"--export={export_dir}: folder holds other files: choose a new one")


def export(predictor, config, export_dir, jit_compile="auto"):
    """Writes `predictor` as a SavedModel loadable without this package (endpoint `serve`:
    uint8 [batch, volume_size, H, W, 3] at the folder's image_size (and a box model's boxes
    [batch, 5]) -> metres [batch, 1]; the --crop_bottom rows are cut inside) and EXPORT_INFO,
    written last.
    With jit_compile=True the endpoint is marked for XLA, as run_infer.py compiles it."""
    check_export_dir(export_dir)
    if tf.io.gfile.exists(export_dir):
        tf.io.gfile.rmtree(export_dir)
    height, width = config["image_size"]
    signature = [tf.TensorSpec([None, config["volume_size"], height, width, 3], tf.uint8)]
    use_boxes = config.get("use_boxes", False)
    if use_boxes:
        signature.append(tf.TensorSpec([None, len(boxes.VECTOR)], tf.float32))

    def distance(sequences, box=None):
        inputs = model_inputs(config, sequences, box)
        return combine(predictor(inputs, training=False), predictor.aggregate, 1)

    serve = tf.function(distance, input_signature=signature,
                        jit_compile=jit_compile is True)
    # only built models are tracked
    predictor(model_inputs(config, np.zeros([1, *signature[0].shape[1:]], np.uint8)))
    archive = keras.export.ExportArchive()
    archive.track(predictor)
    archive.add_endpoint("serve", serve)
    with storage.local_dir() as tmp:
        local = os.path.join(tmp, "export")
        # A served model is never differentiated: without its custom gradients (EfficientNet's
        # swish has one per layer) SavedModel skips tracing them: 13 of the 45 s that
        # EfficientNet-B0's export took under a profiler.
        archive.write_out(local, verbose=False,
                          options=tf.saved_model.SaveOptions(experimental_custom_gradients=False))
        for folder, _, names in tf.io.gfile.walk(local):
            relative = os.path.relpath(folder, local)
            target = export_dir if relative == "." else storage.join(export_dir, relative)
            tf.io.gfile.makedirs(target)
            for name in names:
                tf.io.gfile.copy(os.path.join(folder, name), storage.join(target, name),
                                 overwrite=True)
    half = config["volume_size"] // 2
    info = {
        "input": f"uint8 RGB [batch, {config['volume_size']}, {height}, {width}, 3]: the frames "
                 f"at t + k * {config['step']} s for k = -{half}..{half}, "
                 + ("black past the video's ends" if config["frame_fill"] == "zero"
                    else "clamped to the video"),
        "crop_bottom": config["crop_bottom"], "family": config["family"],
        **({"box": "float32 [batch, 5]: x1, y1, x2, y2 in 0..1 of the animal at second t, "
                   "then 1; no box: 0, 0, 1, 1, 0"} if use_boxes else {}),
        "output": "distance in metres [batch, 1] at second t",
        **model_folder.decode_options(config), "volume_size": config["volume_size"],
        "image_size": [height, width], "step": config["step"], "folds": config["folds"],
        "tta": predictor.tta, "aggregate": predictor.aggregate,
        "mixed_precision": config.get("mixed_precision", "none"),
        "jit_compile": jit_compile is True,
    }
    storage.atomic_write(storage.join(export_dir, EXPORT_INFO), json.dumps(info, indent=1) + "\n")


def combine_views(values, aggregate):
    """[n, views] predictions -> [n]: their mean or median (AGGREGATES)."""
    return np.median(values, axis=1) if aggregate == "median" else values.mean(axis=1)


def predict_arrays(predictor, inputs, batch_size):
    """The predictor's output for each of [n, ...] arrays (`inputs`, or a dict of them), in full
    batches (padded, a multiple of the replicas), so that every replica gets the same static
    shape, as pipeline.predict's do. On one replica each batch is one predict_on_batch call:
    Keras' predict sets up a data adapter and callbacks at each call, which cost a small network
    more than its batch (6x the tiny backbone's time on a video's sequences)."""
    replicas = strategies.of_model(predictor).num_replicas_in_sync
    batch_size = pipeline.replica_batch_size(batch_size, replicas)
    arrays = inputs if isinstance(inputs, dict) else {"": inputs}
    n = len(next(iter(arrays.values())))
    pad = -(-n // batch_size) * batch_size - n
    padded = {name: np.concatenate([array, np.zeros((pad, *array.shape[1:]), array.dtype)])
              for name, array in arrays.items()}

    def unnamed(batch):
        return batch if isinstance(inputs, dict) else batch[""]

    if replicas > 1:
        return predictor.predict(unnamed(padded), batch_size=batch_size, verbose=0)[:n]
    return np.concatenate([np.asarray(predictor.predict_on_batch(unnamed(
        {name: array[start:start + batch_size] for name, array in padded.items()})))
        for start in range(0, n + pad, batch_size)])[:n]


def model_inputs(config, batch, box=None):
    """What the fold networks read of a batch of sequences at the folder's image_size (numpy or
    tensors): the sequences less their --crop_bottom rows, with their boxes (absent: the whole
    frame) for a box model."""
    fraction = config.get("crop_bottom", 0.0)
    frames = crop.crop_frames(batch, fraction)
    if not config.get("use_boxes", False):
        return frames
    if box is None:
        box = np.tile(np.asarray(boxes.ABSENT, np.float32), (len(batch), 1))
    elif isinstance(box, np.ndarray):
        box = box.astype(np.float32)
    return {"frames": frames, "box": crop.crop_box(box, batch.shape[-3], fraction)}
