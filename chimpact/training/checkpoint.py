"""A fold's resumable training state in one file, replaced atomically after every epoch.

The file (numpy .npz) holds the model's variables, the optimizer's (Adam moments, step count,
learning rate, and the loss scale under mixed_float16) and the fold's progress as JSON (the next
epoch, the history rows, the best epoch), so that weights and progress can never disagree: it is
written under a temporary name and renamed, and a kill in the middle of a write leaves the
previous file whole. On gs:// the rename is a server-side copy, which also appears whole or not.
"""

import io
import json
import zipfile

import keras
import numpy as np

from chimpact import storage
from chimpact.errors import InputError

_PROGRESS = "progress"


def _arrays(prefix, variables):
    return {f"{prefix}/{i:05d}": keras.ops.convert_to_numpy(v) for i, v in enumerate(variables)}


def save(path, network, progress):
    """Writes the state of a compiled, trained `network` and the `progress` dict to `path`."""
    arrays = {**_arrays("model", network.variables),
              **_arrays("optimizer", network.optimizer.variables),
              _PROGRESS: np.frombuffer(json.dumps(progress).encode(), np.uint8)}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    storage.atomic_write(path, buffer.getvalue())


def load(path):
    """(progress dict, arrays) of the checkpoint at `path`, or (None, None) when there is none."""
    if not storage.exists(path):
        return None, None
    try:
        with np.load(io.BytesIO(storage.read_bytes(path)), allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
        return json.loads(arrays.pop(_PROGRESS).tobytes()), arrays
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise InputError(f"{path}: unreadable checkpoint ({type(e).__name__}): delete it to "
                         "train the fold again from its first epoch") from e


def restore(network, arrays, path):
    """Assigns the saved variables to a compiled `network` (built in the strategy's scope),
    creating its optimizer's variables first if need be; InputError when they do not fit."""
    if not network.optimizer.built:  # (LossScaleOptimizer.build would add its variables twice)
        network.optimizer.build(network.trainable_variables)
    for prefix, variables in (("model", network.variables),
                              ("optimizer", network.optimizer.variables)):
        saved = sorted(name for name in arrays if name.startswith(prefix + "/"))
        shapes = [tuple(v.shape) for v in variables]
        if [arrays[name].shape for name in saved] != shapes:
            raise InputError(f"{path}: holds a {prefix} state of another shape than this run's: "
                             "use another --out_dir, or delete the fold's folder to retrain it")
        for variable, name in zip(variables, saved):
            variable.assign(arrays[name])
