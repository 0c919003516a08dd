"""Trains a distance model (any family of training.model) fold by fold under a tf.distribute
strategy, resumably.

For each fold: Adam or AdamW, MAE or Huber loss, RMSE metric, the learning rate halved after 3
epochs without val_loss improvement (plateau) or annealed along a cosine over all the epochs'
steps, the best epoch's weights kept, and the validation fold predicted (out-of-fold), into a
model folder (chimpact.training.model_folder, local or gs://). Pseudo-labelled test rows
(chimpact.training.pseudo) join every fold's training set, never its validation.

After every epoch the chief writes, in this order: the weights of a new best epoch under a name
of their own (best-e{epoch}.weights.h5), the checkpoint (the commit point), then renames the new
best to best.weights.h5 and rewrites history.csv. A run killed at any moment and re-run with the
same command settles the folder from the checkpoint (the best of its history kept, uncommitted
files removed) and resumes each unfinished fold at its next epoch; finished folds are skipped.
Under MultiWorkerMirroredStrategy every worker restores from `out_dir`, which must then be shared
(e.g. gs://), and only the chief writes.
"""

import contextlib
import json
import logging
import math
import re

import keras
import pandas as pd
import tensorflow as tf

from chimpact import storage
from chimpact.data import records, window
from chimpact.errors import InputError
from chimpact.settings import LOSSES, OPTIMIZERS, SCHEDULES
from chimpact.training import augment, checkpoint, crop, model, model_folder, pipeline, pseudo, step
from chimpact.training import strategy as strategies

log = logging.getLogger(__name__)
JIT_COMPILE = ("auto", True, False)
LR_FACTOR = 0.5
LR_PATIENCE = 3
LR_MIN_DELTA = 1e-4
LR_MIN = 1e-8
_CANDIDATE = re.compile(r"^best-e(\d+)\.weights\.h5$")
# Settings that define what a model folder holds: a re-run must not mix others into it
# (epochs is not one, so that a re-run can train unfinished folds longer).
_FIXED_KEYS = ("family", "backbone", "weights", "volume_size", "image_size", "crop_bottom",
               "frame_fill", "lstm_units", "dense_units", "frames_per_side", "step", "n_folds",
               "labels_sha256", "aug", "aug_prob", "lr", "loss", "schedule", "optimizer",
               "weight_decay", "seed", "mixed_precision", "output_bias", "use_boxes",
               "input_scaling", "pseudo_labels_sha256")


def check_records(manifest, tfrec_dir, volume_size, step=None, use_boxes=False):
    """InputError unless the records are a training set serving `volume_size` frames at `step`
    (and boxes for a `use_boxes` model), raised before anything is written."""
    if manifest.subset != "train":
        raise InputError(f"{tfrec_dir}: holds the {manifest.subset} subset; training needs "
                         "records made with create_tfrecords.py --subset=train")
    if step is not None and step != manifest.step:
        raise InputError(f"--step={step}: {tfrec_dir} stores frames {manifest.step} s apart; "
                         f"make records with create_tfrecords.py --step={step}")
    window.centre(manifest.stored_frames, volume_size)  # InputError naming --volume_size
    pipeline.check_boxes(manifest, tfrec_dir, use_boxes)


def _scores(oof):
    error = oof.pred - oof.distance
    return {"mae": float(error.abs().mean()), "rmse": float(math.sqrt((error ** 2).mean()))}


def score_table(oof):
    """{"folds": {"f": {"mae", "rmse"}}, "overall": {...}} of an out-of-fold table."""
    return {"folds": {str(f): _scores(part) for f, part in oof.groupby("fold")},
            "overall": _scores(oof)}


def _read_csv(path):
    return storage.read_csv(path, keep_default_na=False, dtype={"video_id": str})


class PlateauHalving(keras.callbacks.Callback):
    """ReduceLROnPlateau(factor, patience, min_delta, min_lr) whose whole state is the list of
    val_loss values, so a resumed run reduces the rate exactly when an uninterrupted one would."""

    def __init__(self, past_losses, factor=LR_FACTOR, patience=LR_PATIENCE,
                 min_delta=LR_MIN_DELTA, min_lr=LR_MIN):
        super().__init__()
        self.losses = list(past_losses)
        self.factor, self.patience = factor, patience
        self.min_delta, self.min_lr = min_delta, min_lr

    def plateau_ends(self):
        """True when the last loss completes `patience` epochs without improvement."""
        best, wait, reduced = math.inf, 0, False
        for loss in self.losses:
            reduced = False
            if loss < best - self.min_delta:
                best, wait = loss, 0
            else:
                wait += 1
                if wait >= self.patience:
                    wait, reduced = 0, True
        return reduced

    def on_epoch_end(self, epoch, logs=None):
        self.losses.append(float(logs["val_loss"]))
        if self.plateau_ends():
            rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            self.model.optimizer.learning_rate = max(rate * self.factor, self.min_lr)


def _candidate_path(directory, epoch):
    """Where a new best epoch's weights wait until the checkpoint that records them is written."""
    return storage.join(directory, f"best-e{epoch:04d}.weights.h5")


class FoldCheckpoint(keras.callbacks.Callback):
    """After every epoch: the new best weights, the checkpoint, best.weights.h5, history.csv
    (see the module docstring for why in this order)."""

    def __init__(self, directory, progress):
        super().__init__()
        self.directory = directory
        self.rows = list(progress["rows"])
        self.best_epoch, self.best = progress["best_epoch"], progress["best_val_loss"]
        self.rate = None

    def on_epoch_begin(self, epoch, logs=None):
        self.rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"}
        self.rows.append({"epoch": epoch, "learning_rate": self.rate, **logs})
        improved = logs.get("val_loss", math.nan) < self.best
        if improved:
            self.best_epoch, self.best = epoch, logs["val_loss"]
            model.save_weights(self.model, _candidate_path(self.directory, epoch))
        checkpoint.save(storage.join(self.directory, model_folder.CHECKPOINT), self.model, {
            "epoch": epoch + 1, "rows": self.rows, "best_epoch": self.best_epoch,
            "best_val_loss": self.best})
        if improved:
            tf.io.gfile.rename(_candidate_path(self.directory, epoch),
                               storage.join(self.directory, model_folder.BEST_WEIGHTS),
                               overwrite=True)
        storage.write_csv(pd.DataFrame(self.rows),
                          storage.join(self.directory, model_folder.HISTORY))


def _settle(directory, progress):
    """Makes a fold folder agree with its checkpoint after a kill: removes half-written files and
    best weights of epochs it does not record, and rewrites history.csv from it."""
    if not tf.io.gfile.isdir(directory):
        return
    for name in tf.io.gfile.listdir(directory):
        match = _CANDIDATE.match(name)
        path = storage.join(directory, name)
        if match and progress and int(match[1]) == progress["best_epoch"]:
            tf.io.gfile.rename(path, storage.join(directory, model_folder.BEST_WEIGHTS),
                               overwrite=True)
        elif match or storage.is_temporary(name) or (
                progress is None and name in (model_folder.BEST_WEIGHTS, model_folder.HISTORY)):
            tf.io.gfile.remove(path)
    if progress:
        storage.write_csv(pd.DataFrame(progress["rows"]),
                          storage.join(directory, model_folder.HISTORY))


def train_fold(settings, tfrec_dir, out_dir, fold, strategy, verbose="auto", pseudo_labels=None):
    """Trains one fold (resuming it from its checkpoint) and writes its out-of-fold predictions.
    Returns whether its training graphs were compiled with XLA (None when nothing was left)."""
    directory = model_folder.fold_dir(out_dir, fold)
    path = storage.join(directory, model_folder.CHECKPOINT)
    chief = strategies.is_chief(strategy)
    progress, arrays = checkpoint.load(path)
    if chief:
        _settle(directory, progress)
    start_epoch = progress["epoch"] if progress else 0
    xla = None
    if start_epoch >= settings["epochs"]:
        log.info("fold %d: all %d epochs already trained", fold, start_epoch)
    else:
        if start_epoch:
            log.info("fold %d: resuming at epoch %d", fold, start_epoch + 1)
        xla = _fit_fold(settings, tfrec_dir, out_dir, fold, strategy, progress, arrays, verbose,
                        pseudo_labels)
    if chief:
        _predict_fold(settings, tfrec_dir, out_dir, fold, strategy)
        tf.io.gfile.remove(path)
    return xla


def _fit_fold(settings, tfrec_dir, out_dir, fold, strategy, progress, arrays, verbose,
              pseudo_labels=None):
    """Trains one fold from the checkpointed `progress` (None: from scratch) to the last epoch."""
    chief = strategies.is_chief(strategy)
    directory = model_folder.fold_dir(out_dir, fold)
    progress = progress or {"epoch": 0, "rows": [], "best_epoch": None,
                            "best_val_loss": math.inf}
    start_epoch = progress["epoch"]
    if chief:
        tf.io.gfile.makedirs(directory)
    keras.utils.set_random_seed(settings["seed"] + fold)

    train_folds = [f for f in range(settings["n_folds"]) if f != fold]
    # Multi-replica training needs equal static batches on every replica (TPUs above all).
    drop_remainder = strategy.num_replicas_in_sync > 1
    manifest = records.read_manifest(tfrec_dir)
    n_pseudo = 0 if pseudo_labels is None else len(pseudo_labels.table)
    steps = pipeline.train_steps(manifest.examples_in(train_folds) + n_pseudo,
                                 settings["batch_size"], drop_remainder)
    output_bias = (manifest.median_distance(train_folds)
                   if settings["output_bias"] == "median" else 0.0)

    def train_dataset(input_context):
        return pipeline.make_train_dataset(
            tfrec_dir, train_folds, settings["volume_size"], settings["image_size"],
            settings["batch_size"], settings["aug"], settings["aug_prob"], settings["seed"],
            settings["epochs"], start_epoch, drop_remainder, input_context=input_context,
            use_boxes=settings["use_boxes"], crop_bottom=settings["crop_bottom"],
            fill=settings["frame_fill"], pseudo=pseudo_labels)

    with strategy.scope():
        network = step.compiled_model(settings, steps, output_bias)
        if arrays is not None:
            checkpoint.restore(network, arrays, storage.join(directory, model_folder.CHECKPOINT))
    log.info("fold %d: epochs %d-%d, %d replica(s), XLA %s, %s precision", fold, start_epoch + 1,
             settings["epochs"], strategy.num_replicas_in_sync,
             "on" if network.jit_compile else "off", settings["mixed_precision"])
    val = pipeline.make_eval_dataset(tfrec_dir, [fold], settings["volume_size"],
                                     settings["image_size"], settings["batch_size"],
                                     use_boxes=settings["use_boxes"],
                                     crop_bottom=settings["crop_bottom"],
                                     fill=settings["frame_fill"])
    # Halving first, so that the checkpoint holds the rate the next epoch starts with.
    callbacks = ([PlateauHalving([row["val_loss"] for row in progress["rows"]])]
                 if settings["schedule"] == "plateau" else [])
    if chief:
        callbacks += [FoldCheckpoint(directory, progress),
                      keras.callbacks.TensorBoard(storage.join(out_dir, "logs", f"fold{fold}"))]
    network.fit(strategy.distribute_datasets_from_function(train_dataset),
                epochs=settings["epochs"], initial_epoch=start_epoch, steps_per_epoch=steps,
                validation_data=val, callbacks=callbacks, shuffle=False, verbose=verbose)
    return bool(network.jit_compile)


def _predict_fold(settings, tfrec_dir, out_dir, fold, strategy):
    """Predicts the validation fold with its best weights, under the training precision and
    XLA setting; the fold's oof.csv marks it done."""
    directory = model_folder.fold_dir(out_dir, fold)
    best = model_folder.fold_weights_path(out_dir, fold)
    if not tf.io.gfile.exists(best):
        raise InputError(f"fold {fold}: no epoch gave a finite val_loss; nothing to keep")
    # Under several workers, the chief predicts alone with a model outside the strategy.
    local = strategies.is_multi_worker(strategy)
    with strategies.alone(strategy) if local else contextlib.nullcontext():
        with contextlib.nullcontext() if local else strategy.scope():
            network = model.set_jit_compile(model.build_from_config(settings),
                                            settings["jit_compile"])
        network.load_weights(best)
        oof = pipeline.predict(network, tfrec_dir, [fold], settings["volume_size"],
                               settings["image_size"], settings["batch_size"],
                               None if local else strategy, use_boxes=settings["use_boxes"],
                               crop_bottom=settings["crop_bottom"],
                               fill=settings["frame_fill"])
    storage.write_csv(oof[["video_id", "time", "distance", "pred", "fold"]],
                 storage.join(directory, model_folder.OOF))
    scores = _scores(oof)
    log.info("fold %d: val MAE %.4f RMSE %.4f (%d examples)", fold, scores["mae"],
             scores["rmse"], len(oof))


def _check_settings(settings, folds, strategy):
    """InputError naming the flag of the first bad setting."""
    if settings["backbone"] not in model.BACKBONES:
        raise InputError(f"--backbone={settings['backbone']}: expected one of "
                         f"{', '.join(model.BACKBONES)}")
    weights = settings["weights"]
    if weights not in ("none", "imagenet") and not tf.io.gfile.exists(weights):
        raise InputError(f"--weights={weights}: file not found (or use none / imagenet)")
    augment.op_names(settings["aug"])
    aug_prob, batch_size = settings["aug_prob"], settings["batch_size"]
    if not 0.0 <= aug_prob <= 1.0:
        raise InputError(f"--aug_prob={aug_prob}: must be between 0 and 1")
    if settings["mixed_precision"] not in model.PRECISIONS:
        raise InputError(f"--mixed_precision={settings['mixed_precision']}: expected one of "
                         f"{', '.join(model.PRECISIONS)}")
    for name, allowed in (("loss", LOSSES), ("schedule", SCHEDULES),
                          ("optimizer", OPTIMIZERS)):
        if settings[name] not in allowed:
            raise InputError(f"--{name}={settings[name]}: expected one of {', '.join(allowed)}")
    if settings["weight_decay"] < 0:
        raise InputError(f"--weight_decay={settings['weight_decay']}: must not be negative")
    model.check_family(settings["family"], settings["volume_size"])
    model.check_input_scaling(settings["backbone"], settings["input_scaling"])
    crop.check(settings["crop_bottom"])
    window.check_fill(settings["frame_fill"])
    if settings["output_bias"] not in model.OUTPUT_BIASES:
        raise InputError(f"--output_bias={settings['output_bias']}: expected one of "
                         f"{', '.join(model.OUTPUT_BIASES)}")
    if settings["jit_compile"] not in JIT_COMPILE:
        raise InputError(f"--jit_compile={settings['jit_compile']}: expected auto, true or false")
    replicas = strategy.num_replicas_in_sync
    if batch_size < 1 or batch_size % replicas:
        raise InputError(f"--batch_size={batch_size}: must be a positive multiple of the "
                         f"{replicas} replicas")
    unknown = sorted(set(folds) - set(range(settings["n_folds"])))
    if unknown:
        raise InputError(f"--folds: {unknown} do not exist (the records have "
                         f"{settings['n_folds']} folds)")


def _merge_config(out_dir, settings):
    """The settings to record, keeping the folds trained earlier; InputError on a mismatch."""
    path = storage.join(out_dir, model_folder.CONFIG)
    if not tf.io.gfile.exists(path):
        return settings
    previous = model_folder.read_config(out_dir)
    for key in _FIXED_KEYS:
        if previous.get(key) != settings[key]:
            raise InputError(f"{path}: this folder was trained with {key}={previous.get(key)}, "
                             f"not {settings[key]}: use another --out_dir")
    return {**settings, "folds": previous.get("folds", []), "xla": previous.get("xla")}


def train(tfrec_dir, out_dir, backbone="efficientnet_b0", weights="imagenet", volume_size=None,
          step=None, image_size=None, folds=None, epochs=40, batch_size=96, lr=1e-3, aug="none",
          aug_prob=0.5, seed=0, lstm_units=1024, dense_units=300, mixed_precision="none",
          jit_compile="auto", output_bias="median", use_boxes=False, family="cnn_lstm",
          crop_bottom=0.0, frame_fill="clamp", loss="mae", schedule="plateau", optimizer="adam",
          weight_decay=0.0, input_scaling="imagenet", pseudo_labels_csv=None,
          pseudo_tfrec_dir=None, strategy=None, flags_text=None, verbose="auto"):
    """Trains `folds` (default all) and writes the model folder; returns scores.json's dict.

    `family` is model.FAMILIES' (cnn_lstm, stacked, single); `volume_size` defaults to the
    family's. `step`, when given, must equal the records' step. `image_size` (H, W) defaults to
    the stored size; `crop_bottom` removes that share of its rows at the bottom (training.crop);
    `frame_fill` (window.FILLS) says what the frames past a video's ends are; `input_scaling`
    (model.INPUT_SCALINGS) what the backbone sees of the pixels. `batch_size` is the
    global batch. `jit_compile` (auto, True, False) is compile's: auto lets Keras choose (XLA on
    a single GPU, not on CPUs or under tf.distribute; TPUs always compile with XLA). `use_boxes`
    conditions the distance on each example's box (records made with --boxes_csv;
    model.build_model). `pseudo_labels_csv` (with the test records `pseudo_tfrec_dir`) adds
    pseudo-labelled test rows to every fold's training set (training.pseudo). `flags_text` is
    saved as flags.txt.
    """
    strategy = strategy or strategies.current()
    volume_size = volume_size or model.FAMILIES.get(family, 1)
    model.check_family(family, volume_size)
    manifest = records.read_manifest(tfrec_dir)
    check_records(manifest, tfrec_dir, volume_size, step, use_boxes)
    pseudo_labels = None
    if pseudo_labels_csv:
        pseudo_labels = pseudo.read_pseudo_labels(pseudo_labels_csv, pseudo_tfrec_dir, tfrec_dir,
                                                  use_boxes)
    folds = list(range(manifest.n_folds)) if folds is None else [int(f) for f in folds]
    settings = {
        "family": family, "backbone": backbone, "weights": weights, "volume_size": volume_size,
        "image_size": [int(v) for v in image_size or manifest.image_size],
        "crop_bottom": crop_bottom, "frame_fill": frame_fill,
        "lstm_units": lstm_units, "dense_units": dense_units,
        "frames_per_side": manifest.frames_per_side, "step": manifest.step,
        "n_folds": manifest.n_folds, "folds": [], "epochs": epochs,
        "batch_size": batch_size, "lr": lr, "loss": loss, "schedule": schedule,
        "optimizer": optimizer, "weight_decay": weight_decay, "aug": aug, "aug_prob": aug_prob,
        "seed": seed, "mixed_precision": mixed_precision, "output_bias": output_bias,
        "use_boxes": use_boxes, "input_scaling": input_scaling, "jit_compile": jit_compile,
        "xla": None,
        "replicas": strategy.num_replicas_in_sync, "tfrec_dir": str(tfrec_dir),
        "labels_sha256": manifest.labels_sha256, "frames": manifest.frames,
        "pseudo_labels_sha256": None, **pseudo.describe(pseudo_labels),
        "tensorflow": tf.__version__, "keras": keras.__version__,
        "backend": keras.backend.backend(),
    }
    _check_settings(settings, folds, strategy)
    model.check_weights(backbone, weights)
    settings = _merge_config(out_dir, settings)
    chief = strategies.is_chief(strategy)
    if chief:
        tf.io.gfile.makedirs(out_dir)
        model_folder.write_config(out_dir, settings)
        if flags_text is not None:
            storage.atomic_write(storage.join(out_dir, model_folder.FLAGS_FILE), flags_text)

    for fold in folds:
        directory = model_folder.fold_dir(out_dir, fold)
        if tf.io.gfile.exists(storage.join(directory, model_folder.OOF)):
            log.info("fold %d: already trained, skipped", fold)
            if chief and tf.io.gfile.exists(storage.join(directory, model_folder.CHECKPOINT)):
                # killed before removing it
                tf.io.gfile.remove(storage.join(directory, model_folder.CHECKPOINT))
        else:
            xla = train_fold(settings, tfrec_dir, out_dir, fold, strategy, verbose, pseudo_labels)
            settings["xla"] = settings["xla"] if xla is None else xla
        if chief:
            settings["folds"] = sorted(set(settings["folds"]) | {fold})
            model_folder.write_config(out_dir, settings)
    return write_scores(out_dir, settings["folds"]) if chief else None


def write_scores(out_dir, folds):
    """Gathers the folds' predictions into oof.csv and scores.json; returns the scores."""
    parts = [_read_csv(storage.join(model_folder.fold_dir(out_dir, f), model_folder.OOF))
             for f in folds]
    oof = pd.concat(parts, ignore_index=True)
    storage.write_csv(oof, storage.join(out_dir, model_folder.OOF))
    scores = score_table(oof)
    storage.atomic_write(storage.join(out_dir, model_folder.SCORES),
                         json.dumps(scores, indent=1) + "\n")
    log.info("%s: out-of-fold MAE %.4f RMSE %.4f over folds %s", out_dir,
             scores["overall"]["mae"], scores["overall"]["rmse"], folds)
    return scores

