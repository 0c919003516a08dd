"""The layout of a model folder (run_train.py --out_dir, run_infer.py --model_dir), which
training writes and inference and the ensemble read:

    config.json  flags.txt  oof.csv  scores.json  logs/fold{f}/ (TensorBoard)
    oof_tta.csv  test_preds.csv (run_infer.py)
    fold{f}/best.weights.h5  fold{f}/history.csv  fold{f}/oof.csv (written last: fold done)
    fold{f}/checkpoint.npz   the fold's whole training state (chimpact.checkpoint), until done

Prediction tables are keyed by (video_id, time): oof.csv and oof_tta.csv have distance, fold
and pred, test_preds.csv pred; with TTA both add one column per view, pred being their mean.
"""

import json

from chimpact import storage
from chimpact.errors import InputError

CONFIG = "config.json"
FLAGS_FILE = "flags.txt"
OOF = "oof.csv"
OOF_TTA = "oof_tta.csv"
TEST_PREDS = "test_preds.csv"
SCORES = "scores.json"
HISTORY = "history.csv"
CHECKPOINT = "checkpoint.npz"
BEST_WEIGHTS = "best.weights.h5"


def fold_dir(model_dir, fold):
    return storage.join(model_dir, f"fold{fold}")


def fold_weights_path(model_dir, fold):
    """Where training keeps the best weights of `fold`."""
    return storage.join(fold_dir(model_dir, fold), BEST_WEIGHTS)


def read_config(model_dir):
    """The config.json of a trained model folder (written by chimpact.train)."""
    path = storage.join(model_dir, CONFIG)
    if not storage.exists(path):
        raise InputError(f"{model_dir}: no {CONFIG}: not a folder written by run_train.py")
    return json.loads(storage.read_text(path))


def write_config(model_dir, config):
    storage.atomic_write(storage.join(model_dir, CONFIG), json.dumps(config, indent=1) + "\n")
