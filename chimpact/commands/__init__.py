"""The programs of the entry scripts, and the `chimpact` command that runs them by name:
`chimpact frames|records|train|infer|field|ensemble [flags]` is create_frames.py,
create_tfrecords.py, run_train.py, run_infer.py, run_field.py or ensemble.py with the same
flags."""

import importlib
import pathlib
import runpy
import sys
import sysconfig

from absl import app, flags

import chimpact
from chimpact.errors import UsageError

# command -> the top-level script that runs the same program.
SCRIPTS = {"frames": "create_frames.py", "records": "create_tfrecords.py",
           "train": "run_train.py", "infer": "run_infer.py", "field": "run_field.py",
           "ensemble": "ensemble.py"}
USAGE = """usage: chimpact COMMAND [flags]      (chimpact COMMAND --help: its flags)

  frames    extract frames from a folder of videos (create_frames.py)
  records   pack frames and labels into sequence TFRecords (create_tfrecords.py)
  train     train a distance model fold by fold (run_train.py; --preset=list)
  infer     predict test records, fill a submission, export a model (run_infer.py)
  field     distances in raw survey videos, per animal with MegaDetector (run_field.py)
  ensemble  blend trained models on their out-of-fold predictions (ensemble.py)

chimpact --version prints the version."""

HELP_FLAGS = {"-h", "-?", "--help", "--helpshort", "--helpfull", "--helpxml"}


def _version():
    print(f"chimpact {chimpact.__version__}")
    sys.exit(0)


def _flags_parser(flag_values):
    """absl's flag parsing into `flag_values`, a bad flag exiting 2 (a usage error) instead of
    absl's 1."""
    def parse(argv):
        try:
            return flag_values(argv)
        except flags.Error as e:
            print(f"error: {e} (--helpshort lists the flags)", file=sys.stderr)
            sys.exit(2)

    return parse


def _with_presets(argv):
    """argv with each --preset=NAME replaced by the preset's flags (the flags after it win)."""
    from chimpact import presets

    expanded = []
    for argument in argv:
        if argument == "--preset=list":
            for name, description in presets.describe().items():
                print(f"{name:26} {description}")
            sys.exit(0)
        name = argument.split("=", 1)[1] if argument.startswith("--preset=") else None
        expanded += presets.flags_of(name) if name else [argument]
    return expanded


def run(name, main, flag_values, argv=None):
    """Runs `main`, the entry script of command `name` (whose flags chimpact/commands/NAME.py
    defines in the script's `flag_values`, absl's FLAGS), on `argv` (default sys.argv):
    --version, and train's --preset, are read first; usage errors exit 2, failed work 1."""
    argv = list(sys.argv if argv is None else argv)
    if "--version" in argv[1:]:
        _version()
    program = importlib.import_module(f"{__name__}.{name}")
    try:
        argv = _with_presets(argv) if name == "train" else argv
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    # absl's --help prints the __main__ module's docstring and the flags key to sys.argv[0]:
    # the program's usage and flags.
    sys.modules["__main__"].__doc__ = program.__doc__
    for flag in flag_values.get_key_flags_for_module(program.__name__):
        flag_values.register_key_flag_for_module(sys.argv[0], flag)
    try:
        app.run(main, argv=argv,
                flags_parser=_flags_parser(flag_values))
    except SystemExit as done:
        # absl exits 1 after printing the help it was asked for: asking is no failure.
        if done.code == 1 and HELP_FLAGS & set(argv[1:]):
            sys.exit(0)
        raise


def main():
    """The `chimpact` console command."""
    command, arguments = (sys.argv[1:2] or [""])[0], sys.argv[2:]
    if command in ("-h", "--help", "help"):
        print(USAGE)
        sys.exit(0)
    if command == "--version":
        _version()
    if command not in SCRIPTS:
        print(f"error: {'unknown command ' + repr(command) if command else 'no command'}; "
              f"expected one of {', '.join(SCRIPTS)}\n\n{USAGE}", file=sys.stderr)
        sys.exit(2)
    sys.argv = [f"chimpact {command}", *arguments]
    runpy.run_path(str(_script(command)), run_name="__main__")


def _script(command):
    """The entry script of `command`: beside the package in a checkout, else in the folder pip
    installed the package's scripts into (setup.py `scripts`)."""
    for folder in (pathlib.Path(__file__).resolve().parents[2],
                   pathlib.Path(sysconfig.get_path("scripts"))):
        if (folder / SCRIPTS[command]).is_file():
            return folder / SCRIPTS[command]
    print(f"error: {SCRIPTS[command]} is not installed beside chimpact: reinstall the package "
          "(pip install .)", file=sys.stderr)
    sys.exit(1)
