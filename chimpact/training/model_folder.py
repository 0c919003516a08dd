"""The layout of a model folder (run_train.py --out_dir, run_infer.py --model_dir), which
training writes and inference and the ensemble read:

    config.json  flags.txt  oof.csv  scores.json  logs/fold{f}/ (TensorBoard)
    oof_tta.csv  test_preds.csv (run_infer.py)
    fold{f}/best.weights.h5  fold{f}/history.csv  fold{f}/oof.csv (written last: fold done)
    fold{f}/checkpoint.npz   the fold's whole training state (training.checkpoint), until done

Prediction tables are keyed by (video_id, time): oof.csv and oof_tta.csv have distance, fold
and pred, test_preds.csv pred; with TTA both add one column per view, pred being their mean.
"""

import json

from chimpact import storage
from chimpact.data import frames, video
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
# Settings that config.json gained after its first folders were written, at the value those
# folders were trained with, so that older folders read (and resume) as they were.
LATER_SETTINGS = {"family": "cnn_lstm", "crop_bottom": 0.0, "frame_fill": "clamp",
                  "loss": "mae", "schedule": "plateau", "optimizer": "adam", "weight_decay": 0.0,
                  "use_boxes": False, "mixed_precision": "none", "pseudo_labels_sha256": None,
                  "input_scaling": "imagenet", "frame_resize": "ffmpeg"}


def fold_dir(model_dir, fold):
    return storage.join(model_dir, f"fold{fold}")


def fold_weights_path(model_dir, fold):
    """Where training keeps the best weights of `fold`."""
    return storage.join(fold_dir(model_dir, fold), BEST_WEIGHTS)


def read_config(model_dir):
    """The config.json of a trained model folder (written by chimpact.training.train)."""
    path = storage.join(model_dir, CONFIG)
    if not storage.exists(path):
        raise InputError(f"{model_dir}: no {CONFIG}: not a folder written by run_train.py")
    return {**LATER_SETTINGS, **json.loads(storage.read_text(path))}


def write_config(model_dir, config):
    storage.atomic_write(storage.join(model_dir, CONFIG), json.dumps(config, indent=1) + "\n")


def decode_options(config, fps=None):
    """decode_video's settings for raw videos: those of the model's training frames (config's
    `frames`, from the records), else create_frames.py's defaults; `fps` overrides."""
    defaults = video.DecodeOptions()
    trained = config.get("frames") or {}
    options = {name: getattr(defaults, name) if trained.get(name) is None else trained[name]
               for name in frames.DECODE_SETTINGS}
    if fps:
        options["fps"] = float(fps)
    return options
