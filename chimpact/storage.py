"""Where chimpact's files live: local paths, or gs:// (ram:// in tests) through tf.io.gfile.

TensorFlow is imported only when a remote path is met, so that a stage that reads tables only
(ensemble.py) starts without it. Writes are atomic: data goes to a temporary name beside the
target, then is renamed, so a killed job never leaves a file that looks complete.
"""

import contextlib
import io
import os
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import uuid

import pandas as pd

from chimpact.errors import InputError, UsageError

_TEMPORARY = re.compile(r"\.tmp-[0-9a-f]{8}")


def is_remote(path):
    """True for paths with a URL scheme (gs://, ram://, s3://...) that the OS cannot open."""
    return "://" in str(path)


def gfile():
    """tf.io.gfile, imported (quietly, cli.require_tensorflow) on the first remote path (see
    the module docstring)."""
    from chimpact import cli

    cli.require_tensorflow()
    import tensorflow as tf

    return tf.io.gfile


GCS_API = "https://storage.googleapis.com/storage/v1/b/"
REACH_TIMEOUT_S = 10


def check_reachable(paths, timeout=REACH_TIMEOUT_S):
    """InputError naming the flag and path of the first gs:// bucket of `paths` ({flag: path
    or list of paths}) that Google Cloud Storage does not answer for within `timeout` seconds,
    before TensorFlow's client retries for minutes. Any HTTP answer (even 401 or 403: the
    credentials are TensorFlow's to find) counts as reachable."""
    buckets = {}
    for flag, values in paths.items():
        for path in values if isinstance(values, (list, tuple)) else [values]:
            if str(path or "").startswith("gs://"):
                buckets.setdefault(str(path)[5:].split("/")[0], (flag, path))
    for bucket, (flag, path) in buckets.items():
        request = urllib.request.Request(GCS_API + bucket, method="HEAD")
        try:
            urllib.request.urlopen(request, timeout=timeout).close()
        except urllib.error.HTTPError:
            pass
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", None) or e
            raise InputError(f"--{flag}={path}: cannot reach Google Cloud Storage for "
                             f"gs://{bucket} ({reason}; waited {timeout} s at most): check the "
                             "network, a proxy (HTTPS_PROXY) or the bucket's name") from e


def io_errors():
    """What a file operation can raise: OSError, and tf.errors.OpError once a remote path has
    loaded TensorFlow (it is not imported for that)."""
    tf = sys.modules.get("tensorflow")
    return (OSError,) if tf is None else (OSError, tf.errors.OpError)


def join(*parts):
    """Joins path parts with '/', which is right for local POSIX paths and URLs alike."""
    return os.path.join(*[str(p) for p in parts])


def exists(path):
    return gfile().exists(path) if is_remote(path) else os.path.exists(path)


def isdir(path):
    return gfile().isdir(path) if is_remote(path) else os.path.isdir(path)


def check_folder(path, flag):
    """InputError naming --`flag` when the folder `path`, to be read, is not there (before a
    reader looks for a file in it and names that file instead)."""
    if path and not isdir(path):
        raise InputError(f"--{flag}={path}: folder not found")


def listdir(path):
    """The names in the folder `path`, sorted, without a folder's trailing '/'; none when it is
    absent."""
    if not isdir(path):
        return []
    names = gfile().listdir(path) if is_remote(path) else os.listdir(path)
    return sorted(name.rstrip("/") for name in names)


def check_own_folder(path, flag, owns, program):
    """UsageError naming --`flag` and an entry found, before any work, when the output folder
    `path` holds a file or folder that `owns(name)` does not claim as `program`'s output (a
    thesis, photos, another stage's output), which its own would be mixed in with. The
    leftovers of a killed write (temp_name) are its own; an absent or empty folder passes."""
    foreign = [name for name in listdir(path) if not owns(name) and not is_temporary(name)]
    if foreign:
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise UsageError(f"--{flag}={path}: holds {foreign[0]}{more}, which {program} did not "
                         "write: give an empty or new folder")


def makedirs(path):
    if is_remote(path):
        gfile().makedirs(path)
    else:
        os.makedirs(path, exist_ok=True)


def check_writable(path, flag, kind="folder"):
    """InputError naming --`flag` unless `path` can be written as a `kind` ("folder" or
    "file"): not a file where a folder goes nor a folder where a file goes, and (local paths)
    its nearest existing ancestor a writable folder. Checked before any work starts."""
    if not path:
        return
    if is_remote(path):
        exists = gfile().exists(path)
        isdir = exists and gfile().isdir(path)
        ancestors = ()
    else:
        exists, isdir = os.path.exists(path), os.path.isdir(path)
        ancestors = [os.path.dirname(os.path.abspath(path))]
        while not os.path.exists(ancestors[-1]):
            ancestors.append(os.path.dirname(ancestors[-1]))
    if exists and isdir != (kind == "folder"):
        raise InputError(f"--{flag}={path}: is a {'folder' if isdir else 'file'}, where "
                         f"a {kind} is to be written")
    for ancestor in ancestors[-1:]:
        if not os.path.isdir(ancestor):
            raise InputError(f"--{flag}={path}: {ancestor} is a file, so no {kind} can be made "
                             "below it")
        if not os.access(ancestor, os.W_OK):
            raise InputError(f"--{flag}={path}: {ancestor} is not writable")


def open_file(path, mode="r"):
    """A file object for `path` (text or binary `mode`), local or remote."""
    return gfile().GFile(path, mode) if is_remote(path) else open(path, mode)


def rename(source, target):
    """Renames `source` to `target`, replacing it."""
    if is_remote(target):
        gfile().rename(source, target, overwrite=True)
    else:
        os.replace(source, target)


def temp_name(path):
    """A unique sibling of `path` used while it is being written."""
    return f"{path}.tmp-{uuid.uuid4().hex[:8]}"


def is_temporary(name):
    """True for a name made by temp_name (a write that a kill may have left unfinished)."""
    return bool(_TEMPORARY.search(name.rstrip("/")))


def atomic_write(path, data):
    """Writes bytes or str to `path` through a temporary name and a rename."""
    tmp = temp_name(path)
    with open_file(tmp, "wb" if isinstance(data, (bytes, bytearray)) else "w") as f:
        f.write(data)
    rename(tmp, path)


def write_csv(frame, path, **kwargs):
    """Writes a pandas DataFrame as CSV atomically (index omitted)."""
    buf = io.StringIO()
    frame.to_csv(buf, index=False, **kwargs)
    atomic_write(path, buf.getvalue())


def parse_csv(source, **kwargs):
    """pandas.read_csv of `source` (a file object), column names stripped of the spaces a
    hand-made header leaves (`video_id, time`): every table chimpact reads goes through it."""
    table = pd.read_csv(source, **kwargs)
    return table.rename(columns=lambda name: name.strip() if isinstance(name, str) else name)


def read_csv(path, **kwargs):
    """A CSV file (local or remote) as a pandas DataFrame (parse_csv); kwargs go to
    pandas.read_csv."""
    with open_file(path, "r") as f:
        return parse_csv(f, **kwargs)


def check_columns(table, columns, label):
    """InputError naming `label` and the columns found unless `table` has all of `columns`."""
    lacking = [c for c in columns if c not in table.columns]
    if lacking:
        raise InputError(f"{label}: lacks column(s) {', '.join(lacking)} (has "
                         f"{', '.join(map(str, table.columns))})")


def read_table(path, columns, label=None, absent="file not found"):
    """A CSV with at least `columns` (video_id read as text); a one-line InputError naming
    `label` (default: the path) when the file is absent (`absent` says what to do) or lacks one."""
    label = label or path
    if not exists(path):
        raise InputError(f"{label}: {absent}")
    table = read_csv(path, dtype={"video_id": str})
    check_columns(table, columns, label)
    return table


def read_text(path):
    with open_file(path, "r") as f:
        return f.read()


def remove(path):
    """Removes the file `path`, if it is there."""
    if is_remote(path):
        if gfile().exists(path):
            gfile().remove(path)
    elif os.path.exists(path):
        os.remove(path)


def remove_tree(path):
    """Removes the folder `path` and what it holds, if it is there."""
    if is_remote(path):
        if gfile().isdir(path):
            gfile().rmtree(path)
    else:
        shutil.rmtree(path, ignore_errors=True)


def read_bytes(path):
    with open_file(path, "rb") as f:
        return f.read()


@contextlib.contextmanager
def local_copy(path):
    """Yields a local filesystem path for `path`, copying a remote file to a temporary folder.

    The copy keeps the file's whole name, since readers such as Keras choose the format from it
    (`.weights.h5` versus `.h5`).
    """
    if not is_remote(path):
        yield str(path)
        return
    with local_dir() as folder:
        local = os.path.join(folder, os.path.basename(str(path)))
        gfile().copy(path, local, overwrite=True)
        yield local


@contextlib.contextmanager
def local_dir():
    """A temporary local directory, removed afterwards."""
    path = tempfile.mkdtemp(prefix="chimpact-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
