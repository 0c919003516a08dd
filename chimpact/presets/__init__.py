"""The training presets, absl flagfiles shipped inside the package (NAME.flags): `--preset=NAME`
reads one wherever chimpact is installed; from the repository root each is also
models/NAME.flags (models/ links to this folder)."""

import importlib.resources
import re

from chimpact.errors import UsageError

SUFFIX = ".flags"
# How a preset names another (a path from the repository root, so that --flagfile works too).
_NESTED = re.compile(r"^--flagfile=models/([\w.+-]+)\.flags$")


def _files():
    folder = importlib.resources.files(__name__)
    return {entry.name[:-len(SUFFIX)]: entry for entry in folder.iterdir()
            if entry.name.endswith(SUFFIX)}


def describe(width=72):
    """{name: the first sentence of its leading comment, cut to `width`}, sorted by name."""
    described = {}
    for name, entry in sorted(_files().items()):
        comment = []
        for line in entry.read_text().splitlines():
            if not line.startswith("#"):
                break
            comment.append(line[1:].strip())
        sentence = " ".join(comment).split(". ")[0]
        described[name] = sentence if len(sentence) <= width else sentence[:width - 3] + "..."
    return described


def flags_of(name, _seen=()):
    """The flags preset `name` sets, as command-line arguments in its order, the presets it
    names expanded in place; UsageError for an unknown name."""
    files = _files()
    if name not in files:
        raise UsageError(f"--preset={name}: no such preset (--preset=list shows them)")
    if name in _seen:
        raise UsageError(f"--preset={name}: names itself through {' -> '.join(_seen)}")
    arguments = []
    for line in files[name].read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "//")):
            continue
        nested = _NESTED.match(line)
        arguments += flags_of(nested.group(1), (*_seen, name)) if nested else [line]
    return arguments
