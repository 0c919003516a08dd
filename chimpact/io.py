"""File access through tf.io.gfile, so every path may be local, gs:// or ram://.

Writes are atomic: data goes to a temporary name beside the target, then is renamed, so a
killed job never leaves a file that looks complete.
"""

import contextlib
import io
import os
import re
import shutil
import tempfile
import uuid

import pandas as pd
import tensorflow as tf

from chimpact.errors import InputError


def is_remote(path):
    """True for paths with a URL scheme (gs://, ram://, s3://...) that the OS cannot open."""
    return "://" in str(path)


def join(*parts):
    """Joins path parts with '/', which is right for local POSIX paths and URLs alike."""
    return os.path.join(*[str(p) for p in parts])


_TEMPORARY = re.compile(r"\.tmp-[0-9a-f]{8}")


def temp_name(path):
    """A unique sibling of `path` used while it is being written."""
    return f"{path}.tmp-{uuid.uuid4().hex[:8]}"


def is_temporary(name):
    """True for a name made by temp_name (a write that a kill may have left unfinished)."""
    return bool(_TEMPORARY.search(name.rstrip("/")))


def atomic_write(path, data):
    """Writes bytes or str to `path` through a temporary name and a rename."""
    tmp = temp_name(path)
    mode = "wb" if isinstance(data, (bytes, bytearray)) else "w"
    with tf.io.gfile.GFile(tmp, mode) as f:
        f.write(data)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def write_csv(frame, path, **kwargs):
    """Writes a pandas DataFrame as CSV atomically (index omitted)."""
    buf = io.StringIO()
    frame.to_csv(buf, index=False, **kwargs)
    atomic_write(path, buf.getvalue())


def read_csv(path, **kwargs):
    """A CSV file (local or remote) as a pandas DataFrame; kwargs go to pandas.read_csv."""
    with tf.io.gfile.GFile(path, "r") as f:
        return pd.read_csv(f, **kwargs)


def read_table(path, columns, label=None, absent="file not found"):
    """A CSV with at least `columns` (video_id read as text); a one-line InputError naming
    `label` (default: the path) when the file is absent (`absent` says what to do) or lacks one."""
    label = label or path
    if not tf.io.gfile.exists(path):
        raise InputError(f"{label}: {absent}")
    table = read_csv(path, dtype={"video_id": str})
    lacking = [c for c in columns if c not in table.columns]
    if lacking:
        raise InputError(f"{label}: lacks column(s) {', '.join(lacking)}")
    return table


def read_text(path):
    with tf.io.gfile.GFile(path, "r") as f:
        return f.read()


def read_bytes(path):
    with tf.io.gfile.GFile(path, "rb") as f:
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
        tf.io.gfile.copy(path, local, overwrite=True)
        yield local


@contextlib.contextmanager
def local_dir():
    """A temporary local directory, removed afterwards."""
    path = tempfile.mkdtemp(prefix="chimpact-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
