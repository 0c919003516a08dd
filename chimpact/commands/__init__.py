"""The `chimpact` command, which runs the entry scripts by name: `chimpact
frames|records|train|infer|field|ensemble|import [flags]` is create_frames.py,
create_tfrecords.py, run_train.py, run_infer.py, run_field.py, ensemble.py or import_weights.py
with the same flags (the scripts define
and read them; the library reads none)."""

import runpy
import sys

import chimpact
from chimpact import cli
from chimpact.errors import InputError

# command -> the top-level script that runs the same program.
SCRIPTS = {"frames": "create_frames.py", "records": "create_tfrecords.py",
           "train": "run_train.py", "infer": "run_infer.py", "field": "run_field.py",
           "ensemble": "ensemble.py", "import": "import_weights.py"}
USAGE = """usage: chimpact COMMAND [flags]      (chimpact COMMAND --help: its flags)

  frames    extract frames from a folder of videos (create_frames.py)
  records   pack frames and labels into sequence TFRecords (create_tfrecords.py)
  train     train a distance model fold by fold (run_train.py; --preset=list)
  infer     predict test records, fill a submission, export a model (run_infer.py)
  field     distances in raw survey videos, per animal with MegaDetector (run_field.py)
  ensemble  blend trained models on their out-of-fold predictions (ensemble.py)
  import    the 3rd place's published weights as a model folder (import_weights.py)

chimpact --version prints the version."""


def main():
    """The `chimpact` console command."""
    command, arguments = (sys.argv[1:2] or [""])[0], sys.argv[2:]
    if command in ("-h", "--help", "help"):
        print(USAGE)
        sys.exit(0)
    if command == "--version":
        print(f"chimpact {chimpact.__version__}")
        sys.exit(0)
    if command not in SCRIPTS:
        print(f"error: {'unknown command ' + repr(command) if command else 'no command'}; "
              f"expected one of {', '.join(SCRIPTS)}\n\n{USAGE}", file=sys.stderr)
        sys.exit(2)
    sys.argv = [f"chimpact {command}", *arguments]
    runpy.run_path(str(_script(command)), run_name="__main__")


def _script(command):
    """The entry script of `command` (cli.entry_script); exits 1 when it is not installed."""
    try:
        return cli.entry_script(SCRIPTS[command])
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
