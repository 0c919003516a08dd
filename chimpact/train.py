"""Trains the CNN-LSTM fold by fold under a tf.distribute strategy, resumably.

For each fold: Adam, MAE loss, RMSE metric, the learning rate halved after 3 epochs without
val_loss improvement, the best epoch's weights kept, and the validation fold predicted
(out-of-fold). Layout of `out_dir` (local or gs://):

    config.json  flags.txt  oof.csv  scores.json  logs/fold{f}/ (TensorBoard)
    fold{f}/best.weights.h5  fold{f}/history.csv  fold{f}/oof.csv (written last: fold done)

A killed run re-run with the same command resumes each unfinished fold at its last finished
epoch (Keras BackupAndRestore under fold{f}/backup, deleted once oof.csv is written) and skips
finished folds. Under MultiWorkerMirroredStrategy every worker restores from `out_dir`, which
must then be shared (e.g. gs://), and only the chief writes.
"""

import contextlib
import json
import math

import keras
import pandas as pd
import tensorflow as tf

from chimpact import augment, io, model, pipeline, records
from chimpact import strategy as strategies
from chimpact.errors import InputError

HISTORY = "history.csv"
OOF = "oof.csv"
SCORES = "scores.json"
FLAGS_FILE = "flags.txt"
BACKUP = "backup"
LR_FACTOR = 0.5
LR_PATIENCE = 3
LR_MIN_DELTA = 1e-4
LR_MIN = 1e-8
PRECISIONS = ("none", "mixed_float16", "mixed_bfloat16")
# Settings that define what a model folder holds: a re-run must not mix others into it
# (epochs is not one, so that a re-run can train unfinished folds longer).
_FIXED_KEYS = ("backbone", "weights", "volume_size", "image_size", "lstm_units", "dense_units",
               "frames_per_side", "step", "n_folds", "labels_sha256", "aug", "aug_prob", "lr",
               "seed")


def check_records(manifest, tfrec_dir, volume_size, step=None):
    """InputError unless the records are a training set serving `volume_size` frames at `step`,
    raised before anything is written."""
    if manifest["subset"] != "train":
        raise InputError(f"{tfrec_dir}: holds the {manifest['subset']} subset; training needs "
                         "records made with create_tfrecords.py --subset=train")
    if step is not None and step != manifest["step"]:
        raise InputError(f"--step={step}: {tfrec_dir} stores frames {manifest['step']} s apart; "
                         f"make records with create_tfrecords.py --step={step}")
    # The parser refuses (InputError naming --volume_size) a volume the records cannot serve.
    records.make_parser(manifest["stored_frames"], volume_size)


def fold_dir(out_dir, fold):
    return io.join(out_dir, f"fold{fold}")


def _scores(oof):
    error = oof.pred - oof.distance
    return {"mae": float(error.abs().mean()), "rmse": float(math.sqrt((error ** 2).mean()))}


def score_table(oof):
    """{"folds": {"f": {"mae", "rmse"}}, "overall": {...}} of an out-of-fold table."""
    return {"folds": {str(f): _scores(part) for f, part in oof.groupby("fold")},
            "overall": _scores(oof)}


def _read_csv(path):
    return io.read_csv(path, keep_default_na=False, dtype={"video_id": str})


def _resume_epoch(backup_dir):
    """The epoch BackupAndRestore will resume at (0 without a backup)."""
    path = io.join(backup_dir, "training_metadata.json")
    if not tf.io.gfile.exists(path):
        return 0
    return int(json.loads(io.read_text(path)).get("epoch", 0))


def _past_history(path, start_epoch):
    """Rows of epochs before `start_epoch` (later rows belong to an epoch that will re-run)."""
    if start_epoch == 0 or not tf.io.gfile.exists(path):
        return []
    table = _read_csv(path)
    return table[table.epoch < start_epoch].to_dict("records")


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


class FoldRecorder(keras.callbacks.Callback):
    """Keeps the best epoch's weights and the history, both written atomically each epoch."""

    def __init__(self, weights_path, history_path, past_rows):
        super().__init__()
        self.weights_path, self.history_path = weights_path, history_path
        self.rows = list(past_rows)
        self.best = min((row["val_loss"] for row in self.rows), default=math.inf)
        self.rate = None

    def on_epoch_begin(self, epoch, logs=None):
        self.rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"}
        if logs.get("val_loss", math.nan) < self.best:
            self.best = logs["val_loss"]
            temporary = io.temp_name(self.weights_path[:-len(".weights.h5")]) + ".weights.h5"
            self.model.save_weights(temporary)
            tf.io.gfile.rename(temporary, self.weights_path, overwrite=True)
        self.rows.append({"epoch": epoch, "learning_rate": self.rate, **logs})
        io.write_csv(pd.DataFrame(self.rows), self.history_path)


class ChiefBackup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore that every worker restores from but only the chief writes. It outlives
    fit, so that a run killed before the fold's oof.csv is written does not train it again."""

    def __init__(self, backup_dir, chief):
        super().__init__(backup_dir, delete_checkpoint=False)
        self.chief = chief

    def on_epoch_end(self, epoch, logs=None):
        if self.chief:
            super().on_epoch_end(epoch, logs)


def _compiled_model(settings):
    network = model.build_model(settings["backbone"], settings["volume_size"],
                                tuple(settings["image_size"]), settings["weights"],
                                settings["lstm_units"], settings["dense_units"])
    # Weighted, so that the padding of the validation batches (weight 0) does not count.
    network.compile(optimizer=keras.optimizers.Adam(settings["lr"]), loss="mae",
                    weighted_metrics=[keras.metrics.RootMeanSquaredError(name="rmse")])
    return network


def train_fold(settings, tfrec_dir, out_dir, fold, strategy, verbose="auto"):
    """Trains one fold (resuming it if a backup exists) and writes its out-of-fold predictions."""
    backup_dir = io.join(fold_dir(out_dir, fold), BACKUP)
    start_epoch = _resume_epoch(backup_dir)
    if start_epoch >= settings["epochs"]:
        print(f"fold {fold}: all {start_epoch} epochs already trained")
    else:
        if start_epoch:
            print(f"fold {fold}: resuming at epoch {start_epoch + 1}")
        _fit_fold(settings, tfrec_dir, out_dir, fold, strategy, start_epoch, verbose)
    if strategies.is_chief(strategy):
        _predict_fold(settings, tfrec_dir, out_dir, fold, strategy)
        if tf.io.gfile.exists(backup_dir):
            tf.io.gfile.rmtree(backup_dir)


def _fit_fold(settings, tfrec_dir, out_dir, fold, strategy, start_epoch, verbose):
    """Trains one fold from `start_epoch` (restored from its backup) to the last epoch."""
    chief = strategies.is_chief(strategy)
    directory = fold_dir(out_dir, fold)
    past = _past_history(io.join(directory, HISTORY), start_epoch)
    if chief:
        tf.io.gfile.makedirs(directory)
    keras.utils.set_random_seed(settings["seed"] + fold)

    train_folds = [f for f in range(settings["n_folds"]) if f != fold]
    # Multi-replica training needs equal static batches on every replica (TPUs above all).
    drop_remainder = strategy.num_replicas_in_sync > 1
    manifest = records.read_manifest(tfrec_dir)
    steps = pipeline.train_steps(pipeline.fold_examples(manifest, train_folds),
                                 settings["batch_size"], drop_remainder)

    def train_dataset(input_context):
        return pipeline.make_train_dataset(
            tfrec_dir, train_folds, settings["volume_size"], settings["image_size"],
            settings["batch_size"], settings["aug"], settings["aug_prob"], settings["seed"],
            settings["epochs"], start_epoch, drop_remainder, input_context=input_context)

    with strategy.scope():
        network = _compiled_model(settings)
    val = pipeline.make_eval_dataset(tfrec_dir, [fold], settings["volume_size"],
                                     settings["image_size"], settings["batch_size"])
    callbacks = [PlateauHalving([row["val_loss"] for row in past])]
    if chief:
        callbacks += [FoldRecorder(model.fold_weights_path(out_dir, fold),
                                   io.join(directory, HISTORY), past),
                      keras.callbacks.TensorBoard(io.join(out_dir, "logs", f"fold{fold}"))]
    # Last, so that a backup only ever records an epoch whose weights and history are written.
    callbacks.append(ChiefBackup(io.join(directory, BACKUP), chief))
    network.fit(strategy.distribute_datasets_from_function(train_dataset),
                epochs=settings["epochs"], steps_per_epoch=steps, validation_data=val,
                callbacks=callbacks, shuffle=False, verbose=verbose)


def _predict_fold(settings, tfrec_dir, out_dir, fold, strategy):
    """Predicts the validation fold with its best weights; the fold's oof.csv marks it done."""
    directory = fold_dir(out_dir, fold)
    best = model.fold_weights_path(out_dir, fold)
    if not tf.io.gfile.exists(best):
        raise InputError(f"fold {fold}: no epoch gave a finite val_loss; nothing to keep")
    # Under several workers, the chief predicts alone with a model outside the strategy.
    local = strategies.is_multi_worker(strategy)
    with contextlib.nullcontext() if local else strategy.scope():
        network = model.build_from_config(settings)
    network.load_weights(best)
    oof = pipeline.predict(network, tfrec_dir, [fold], settings["volume_size"],
                           settings["image_size"], settings["batch_size"],
                           None if local else strategy)
    io.write_csv(oof[["video_id", "time", "distance", "pred", "fold"]],
                 io.join(directory, OOF))
    scores = _scores(oof)
    print(f"fold {fold}: val MAE {scores['mae']:.4f} RMSE {scores['rmse']:.4f} "
          f"({len(oof)} examples)")


def _check_settings(settings, folds, strategy):
    """InputError naming the flag of the first bad setting."""
    if settings["backbone"] not in model.BACKBONES:
        raise InputError(f"--backbone={settings['backbone']}: expected one of "
                         f"{', '.join(model.BACKBONES)}")
    weights = settings["weights"]
    if weights not in ("none", "imagenet") and not tf.io.gfile.exists(weights):
        raise InputError(f"--weights={weights}: file not found (or use none / imagenet)")
    augment.op_names(settings["aug"])
    aug_prob, mixed_precision = settings["aug_prob"], settings["mixed_precision"]
    batch_size = settings["batch_size"]
    if not 0.0 <= aug_prob <= 1.0:
        raise InputError(f"--aug_prob={aug_prob}: must be between 0 and 1")
    if mixed_precision not in PRECISIONS:
        raise InputError(f"--mixed_precision={mixed_precision}: expected one of "
                         f"{', '.join(PRECISIONS)}")
    replicas = strategy.num_replicas_in_sync
    if batch_size < 1 or batch_size % replicas:
        raise InputError(f"--batch_size={batch_size}: must be a positive multiple of the "
                         f"{replicas} replicas")
    unknown = sorted(set(folds) - set(range(settings["n_folds"])))
    if unknown:
        raise InputError(f"--folds: {unknown} do not exist (the records have "
                         f"{settings['n_folds']} folds)")


def _write_config(out_dir, settings):
    io.atomic_write(io.join(out_dir, model.CONFIG), json.dumps(settings, indent=1) + "\n")


def _merge_config(out_dir, settings):
    """The settings to record, keeping the folds trained earlier; InputError on a mismatch."""
    path = io.join(out_dir, model.CONFIG)
    if not tf.io.gfile.exists(path):
        return settings
    previous = model.read_config(out_dir)
    for key in _FIXED_KEYS:
        if previous.get(key) != settings[key]:
            raise InputError(f"{path}: this folder was trained with {key}={previous.get(key)}, "
                             f"not {settings[key]}: use another --out_dir")
    return {**settings, "folds": previous.get("folds", [])}


def train(tfrec_dir, out_dir, backbone="efficientnet_b0", weights="imagenet", volume_size=7,
          step=None, image_size=None, folds=None, epochs=40, batch_size=96, lr=1e-3, aug="none",
          aug_prob=0.5, seed=0, lstm_units=1024, dense_units=300, mixed_precision="none",
          strategy=None, flags_text=None, verbose="auto"):
    """Trains `folds` (default all) and writes the model folder; returns scores.json's dict.

    `step`, when given, must equal the records' step. `image_size` (H, W) defaults to the stored
    size. `batch_size` is the global batch. `flags_text` is saved as flags.txt.
    """
    strategy = strategy or tf.distribute.get_strategy()
    manifest = records.read_manifest(tfrec_dir)
    check_records(manifest, tfrec_dir, volume_size, step)
    folds = list(range(manifest["n_folds"])) if folds is None else [int(f) for f in folds]
    settings = {
        "backbone": backbone, "weights": weights, "volume_size": volume_size,
        "image_size": [int(v) for v in image_size or manifest["image_size"]],
        "lstm_units": lstm_units, "dense_units": dense_units,
        "frames_per_side": manifest["frames_per_side"], "step": manifest["step"],
        "n_folds": manifest["n_folds"], "folds": [], "epochs": epochs,
        "batch_size": batch_size, "lr": lr, "aug": aug, "aug_prob": aug_prob, "seed": seed,
        "mixed_precision": mixed_precision, "tfrec_dir": str(tfrec_dir),
        "labels_sha256": manifest.get("labels_sha256"), "frames": manifest.get("frames"),
        "tensorflow": tf.__version__, "keras": keras.__version__,
    }
    _check_settings(settings, folds, strategy)
    settings = _merge_config(out_dir, settings)
    chief = strategies.is_chief(strategy)
    if chief:
        tf.io.gfile.makedirs(out_dir)
        _write_config(out_dir, settings)
        if flags_text is not None:
            io.atomic_write(io.join(out_dir, FLAGS_FILE), flags_text)

    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(
        "float32" if mixed_precision == "none" else mixed_precision)
    try:
        for fold in folds:
            if tf.io.gfile.exists(io.join(fold_dir(out_dir, fold), OOF)):
                print(f"fold {fold}: already trained, skipped")
            else:
                train_fold(settings, tfrec_dir, out_dir, fold, strategy, verbose)
            if chief:
                settings["folds"] = sorted(set(settings["folds"]) | {fold})
                _write_config(out_dir, settings)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    return write_scores(out_dir, settings["folds"]) if chief else None


def write_scores(out_dir, folds):
    """Gathers the folds' predictions into oof.csv and scores.json; returns the scores."""
    parts = [_read_csv(io.join(fold_dir(out_dir, f), OOF)) for f in folds]
    oof = pd.concat(parts, ignore_index=True)
    io.write_csv(oof, io.join(out_dir, OOF))
    scores = score_table(oof)
    io.atomic_write(io.join(out_dir, SCORES), json.dumps(scores, indent=1) + "\n")
    print(f"{out_dir}: out-of-fold MAE {scores['overall']['mae']:.4f} "
          f"RMSE {scores['overall']['rmse']:.4f} over folds {folds}")
    return scores

