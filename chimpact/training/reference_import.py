"""The 3rd place's published weights as chimpact model folders.

Its run.py saved each fold's best epoch with ModelCheckpoint(save_weights_only=True) as
`model-best-f{fold}-e{epoch}-{val_loss}-{val_rmse}.h5`: tf.keras 2's HDF5 layout (one group per
layer, in the model's order, with its `weight_names`) of efficientnet 1.1.1's EfficientNet-B0 in
TimeDistributed, LSTM(1024), Dense(300, relu) and Dense(1), fed x / 255. chimpact's cnn_lstm
family with efficientnet_b0 and input_scaling unit is the same network: every array of the file
is matched by name and shape (the Dense layers by their order, whatever their numbered names),
and the Normalization layer, which the reference lacked, stays the identity.
The archive of the winner holds `models/run-YYYYMMDD-HHMM-{preset}/model-best-f*.h5` for its 12
configurations; import_archive makes a model folder of each.
"""

import json
import logging
import os
import re

import h5py
import keras
import numpy as np

from chimpact import presets, storage
from chimpact.data import video
from chimpact.errors import InputError, UsageError
from chimpact.training import model, model_folder

log = logging.getLogger(__name__)

FOLD_NAME = re.compile(r"model-best-f(\d+)")
# The fold's validation MAE (its MAE loss) and RMSE, which ModelCheckpoint put in the name.
FOLD_DIR = re.compile(r"fold\d+")
SCORES_NAME = re.compile(r"model-best-f\d+-e\d+-(\d+\.\d+)-(\d+\.\d+)\.h5")
RUN_NAME = re.compile(r"run-\d{8}-\d{4}-(.+)")
# The 12 reference configurations: {full|down}-a{aug set}p{percent}-f{frames}s{step}.
REFERENCE_PRESET = re.compile(r"(full|down)-a\d+p\d+-f\d+s\d+")
# Gamma correction of each frame source: the full-size videos were gamma-corrected when
# overexposed (its extract_images_full_with_gamma_correction.py), the downsampled ones never.
SOURCE_GAMMA = {"full": "auto", "down": "off"}
# The reference stored 11 frames per example (n_frames) and read the centred volume_size.
FRAMES_PER_SIDE = 5
N_FOLDS = 5
# What a reference layer's numbered name stands for in chimpact's network.
_DENSE = re.compile(r"dense(_\d+)?/(kernel|bias)(:0)?")
_LSTM = re.compile(r"lstm(_\d+)?/lstm_cell(_\d+)?/(\w+)(:0)?")
_DENSE_LAYERS = ("dense", "distance")
# The backbone's input Normalization (numbered by Keras when a session builds several), which
# the reference lacked: it stays the identity of input_scaling unit.
_NORMALIZATION = re.compile(r"normalization(_\d+)?/")


def reference_presets():
    """The names of the reference's configurations among the packaged presets."""
    return sorted(name for name in presets.describe() if REFERENCE_PRESET.fullmatch(name))


def preset_config(preset, image_size=None):
    """The config.json of a model folder holding `preset`'s imported weights (no folds yet):
    the preset's architecture and window, its 512x512 frames (or `image_size`, (H, W)) resized
    and read as x / 255 as the reference did, and the frames it decoded (1 fps, gamma-corrected
    as its source was)."""
    if not REFERENCE_PRESET.fullmatch(preset or ""):
        raise UsageError(f"--preset={preset}: not one of the reference's configurations "
                         f"({', '.join(reference_presets())})")
    values = dict(argument[2:].split("=", 1) for argument in presets.flags_of(preset))
    defaults = video.DecodeOptions()
    decode = {"fps": defaults.fps, "gamma": SOURCE_GAMMA[preset.split("-")[0]],
              "gamma_value": defaults.gamma_value, "white_threshold": defaults.white_threshold,
              "white_ratio": defaults.white_ratio, "labelled": True}
    return {**model_folder.LATER_SETTINGS,
            "family": "cnn_lstm", "backbone": values["backbone"], "weights": "imported",
            "volume_size": int(values["volume_size"]),
            "image_size": list(image_size or map(int, values["image_size"].split(","))),
            "frame_resize": "reference",
            "lstm_units": int(values["lstm_units"]), "dense_units": int(values["dense_units"]),
            "input_scaling": values["input_scaling"], "frames_per_side": FRAMES_PER_SIDE,
            "step": int(values["step"]), "n_folds": N_FOLDS, "folds": [], "aug": values["aug"],
            "aug_prob": float(values["aug_prob"]), "preset": preset, "frames": decode,
            "imported_from": {}, "validation_mae": {}, "keras": keras.__version__}


def fold_of(path):
    """The fold a reference checkpoint holds, from its name (model-best-f{fold}-...)."""
    found = FOLD_NAME.match(os.path.basename(path))
    if not found:
        raise UsageError(f"--weights={path}: the fold is not in its name (model-best-f{{fold}}-"
                         "...h5): give it with --folds")
    return int(found[1])


def read_arrays(path):
    """[(name, array)] of a tf.keras 2 HDF5 weights file in its order, each named by its weight
    name without `:0` (`stem_conv/kernel`, `lstm/lstm_cell/bias`, `dense_1/kernel`)."""
    with storage.local_copy(path) as local:
        try:
            handle = h5py.File(local, "r")
        except OSError:
            raise InputError(f"--weights={path}: not an HDF5 file") from None
        with handle:
            group = handle["model_weights"] if "model_weights" in handle else handle
            if "layer_names" not in group.attrs:
                raise InputError(f"--weights={path}: not a tf.keras weights file (no "
                                 "layer_names): the reference's run.py saved its checkpoints "
                                 "with save_weights_only=True")
            arrays = []
            for layer in group.attrs["layer_names"]:
                layer = layer.decode() if isinstance(layer, bytes) else layer
                for weight in group[layer].attrs.get("weight_names", []):
                    weight = weight.decode() if isinstance(weight, bytes) else weight
                    arrays.append((weight.removesuffix(":0"), np.asarray(group[layer][weight])))
    return arrays


def chimpact_names(names):
    """{reference array name: the variable path in chimpact's network}: the LSTM's numbered
    names unnumbered, the Dense layers by their order (the first `dense`, the output
    `distance`; tf.keras numbered them by how many a session had built), and a depthwise
    kernel named `kernel` as Keras 3 names it."""
    dense_layers = list(dict.fromkeys(name.split("/")[0] for name in names
                                      if _DENSE.fullmatch(name)))
    renamed = {}
    for name in names:
        lstm, dense = _LSTM.fullmatch(name), _DENSE.fullmatch(name)
        if lstm:
            renamed[name] = f"lstm/lstm_cell/{lstm[3]}"
        elif dense and dense_layers.index(name.split("/")[0]) < len(_DENSE_LAYERS):
            renamed[name] = f"{_DENSE_LAYERS[dense_layers.index(name.split('/')[0])]}/{dense[2]}"
        else:
            renamed[name] = name.replace("/depthwise_kernel", "/kernel")
    return renamed


def load_reference(network, path):
    """Sets `network` (model.build_model of the preset) to the arrays of the reference file
    `path`; InputError naming the first array that does not fit, before anything is set."""
    variables = {v.path: v for v in network.weights if not _NORMALIZATION.match(v.path)}
    arrays = read_arrays(path)
    targets = chimpact_names([name for name, _ in arrays])
    assigned = {}
    for name, array in arrays:
        target = targets[name]
        variable = variables.get(target)
        if variable is None or target in assigned:
            raise InputError(f"--weights={path}: array {name} {array.shape} has no place in "
                             f"the reference's {network.name}: another architecture")
        if tuple(variable.shape) != array.shape:
            raise InputError(f"--weights={path}: array {name} has shape {array.shape}, the "
                             f"reference's {network.name} {tuple(variable.shape)} at {target}")
        assigned[target] = array
    missing = [name for name in variables if name not in assigned]
    if missing:
        raise InputError(f"--weights={path}: lacks {missing[0]} ({len(missing)} arrays of the "
                         f"reference's {network.name} missing): another architecture")
    for target, array in assigned.items():
        variables[target].assign(array)
    return network


def import_weights(weights, preset, out_dir, folds=None, image_size=None):
    """Writes the model folder `out_dir` of the reference checkpoints `weights` (local or
    gs://, one per fold, the fold read from each name unless `folds` gives them) trained with
    `preset`, to read frames at `image_size` (default the preset's 512x512); every file is read
    and matched before anything is written. Returns its config."""
    config = preset_config(preset, image_size)
    folds = [fold_of(path) for path in weights] if folds is None else [int(f) for f in folds]
    if len(folds) != len(weights):
        raise UsageError(f"--folds: {len(folds)} folds for {len(weights)} --weights files")
    if len(set(folds)) != len(folds):
        raise UsageError(f"--weights: fold {next(f for f in folds if folds.count(f) > 1)} "
                         "is given twice")
    existing = _existing_config(out_dir)
    if existing is None:
        storage.check_own_folder(out_dir, "out_dir", FOLD_DIR.fullmatch, "import_weights.py")
    elif any(existing.get(key) != config[key] for key in ("preset", "image_size")):
        raise InputError(f"--out_dir={out_dir}: holds a model folder of "
                         f"{existing.get('preset') or 'a trained model'} at "
                         f"{existing.get('image_size')}, not {preset} at {config['image_size']}: "
                         "use another --out_dir")
    networks = {}
    for path, fold in zip(weights, folds):
        if not storage.exists(path):
            raise InputError(f"--weights={path}: file not found")
        networks[fold] = load_reference(model.build_from_config(config), path)
    storage.makedirs(out_dir)
    config = existing or config
    for path, fold in zip(weights, folds):
        storage.makedirs(model_folder.fold_dir(out_dir, fold))
        model.save_weights(networks[fold], model_folder.fold_weights_path(out_dir, fold))
        config["folds"] = sorted(set(config["folds"]) | {fold})
        config["imported_from"][str(fold)] = os.path.basename(path)
        scores = SCORES_NAME.fullmatch(os.path.basename(path))
        if scores:
            config["validation_mae"][str(fold)] = float(scores[1])
        model_folder.write_config(out_dir, config)
        log.info("fold %d: %s imported into %s", fold, path, out_dir)
    return config


def _existing_config(out_dir):
    """config.json of `out_dir` when it holds one, else None."""
    if not storage.exists(storage.join(out_dir, model_folder.CONFIG)):
        return None
    return read_imported(out_dir)


def read_imported(model_dir):
    """The config.json of a model folder, with the keys an imported one has."""
    return {"preset": None, "imported_from": {}, "validation_mae": {},
            **model_folder.read_config(model_dir)}


def archive_runs(archive_dir):
    """{preset: [checkpoint paths by fold]} of an archive laid out as the winner's
    (`models/run-*-{preset}/model-best-f*.h5`, or the run folders directly in `archive_dir`)."""
    root = storage.join(archive_dir, "models")
    root = root if storage.isdir(root) else archive_dir
    runs = {}
    for entry in storage.listdir(root):
        found = RUN_NAME.fullmatch(entry)
        if not found or not REFERENCE_PRESET.fullmatch(found[1]):
            continue
        folder = storage.join(root, entry)
        checkpoints = [name for name in storage.listdir(folder)
                       if FOLD_NAME.match(name) and name.endswith(".h5")]
        runs[found[1]] = [storage.join(folder, name) for name in _last_per_fold(checkpoints)]
    if not runs:
        raise InputError(f"--archive_dir={archive_dir}: no run-*-{{preset}}/model-best-f*.h5 "
                         f"under {root}")
    return runs


def _last_per_fold(names):
    """Of sorted checkpoint names, the last of each fold (as the reference's run.py loaded
    sorted(glob('model-best-f{fold}*.h5'))[-1])."""
    return list({FOLD_NAME.match(name)[1]: name for name in names}.values())


def import_archive(archive_dir, out_dir, image_size=None):
    """Imports each configuration of the archive into `out_dir`/{preset}; returns
    {preset: its model folder}."""
    runs = archive_runs(archive_dir)
    storage.check_own_folder(out_dir, "out_dir", REFERENCE_PRESET.fullmatch, "import_weights.py")
    folders = {}
    for preset, checkpoints in runs.items():
        folders[preset] = storage.join(out_dir, preset)
        import_weights(checkpoints, preset, folders[preset], image_size=image_size)
    return folders


def describe(config):
    """One line saying what an imported folder holds."""
    return (f"{config['preset']}: folds {config['folds']}, {config['volume_size']} frames "
            f"{config['step']} s apart at {'x'.join(map(str, config['image_size'][::-1]))}, "
            f"imported from {json.dumps(config['imported_from'])}")
