"""What the entry scripts share besides the library: running an absl program (--version, train's
--preset, usage errors exiting 2, help exiting 0) and the flags both prediction programs take.
It lives beside the scripts, and is installed with them, so that the library reads no flag."""

import os
import sys

from absl import app, flags

import chimpact
from chimpact import cli, presets, runner, settings
from chimpact.errors import UsageError

FLAGS = flags.FLAGS
HELP_FLAGS = {"-h", "-?", "--help", "--helpshort", "--helpfull", "--helpxml"}


def version():
    """Prints the version and exits 0 (`--version`)."""
    print(f"chimpact {chimpact.__version__}")
    sys.exit(0)


def _parse(argv):
    """absl's flag parsing, a bad flag exiting 2 (a usage error) instead of absl's 1."""
    try:
        return FLAGS(argv)
    except flags.Error as e:
        print(f"error: {e} (--helpshort lists the flags)", file=sys.stderr)
        sys.exit(2)


def with_presets(argv):
    """argv with each --preset=NAME replaced by the preset's flags (the flags after it win);
    --preset=list prints the presets and exits 0."""
    expanded = []
    for argument in argv:
        if argument == "--preset=list":
            for name, description in presets.describe().items():
                print(f"{name:26} {description}")
            sys.exit(0)
        name = argument.split("=", 1)[1] if argument.startswith("--preset=") else None
        expanded += presets.flags_of(name) if name else [argument]
    return expanded


def _named_by_file(path):
    """The script's file name, under which its flags are filed from now on: absl heads --help
    with the path the script was started from (sys.argv[0]), which installed is a virtual
    environment's bin/, `chimpact COMMAND` included (runpy puts the path there)."""
    name = os.path.basename(path)
    for table in (FLAGS.flags_by_module_dict(), FLAGS.key_flags_by_module_dict()):
        if path in table:
            table[name] = table.pop(path)
    sys.argv[0] = name
    return name


def run(main, argv=None, expand_presets=False):
    """Runs the absl program `main` on `argv` (default sys.argv): --version first, then (with
    `expand_presets`, run_train.py) each --preset=NAME; usage errors exit 2, failed work 1,
    asking for help 0."""
    argv = list(sys.argv if argv is None else argv)
    argv[0] = _named_by_file(argv[0])
    if "--version" in argv[1:]:
        version()
    try:
        argv = with_presets(argv) if expand_presets else argv
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    try:
        app.run(main, argv=argv, flags_parser=_parse)
    except SystemExit as done:
        # absl exits 1 after printing the help it was asked for: asking is no failure.
        if done.code == 1 and HELP_FLAGS & set(argv[1:]):
            sys.exit(0)
        raise


def define_runner_flags():
    """Defines --runner and --beam_options (create_frames.py, create_tfrecords.py,
    run_field.py); the script adopts them with flags.adopt_module_key_flags(chimpact_flags)
    and reads them with beam_args."""
    flags.DEFINE_enum("runner", "local", list(runner.RUNNERS), "local: this machine's cores "
                      "(threads, no Beam); beam: one element per video (shard, for records) "
                      "of an Apache Beam pipeline, on Beam's local runner with a worker "
                      "process per core unless --beam_options (or the arguments after `--`) "
                      "name another, such as --runner=DataflowRunner.")
    flags.DEFINE_string("beam_options", "", "With --runner=beam: Beam's pipeline options, one "
                        "shell-quoted string, e.g. \"--runner=DataflowRunner --project=P "
                        "--region=R --temp_location=gs://B/tmp\"; the arguments after `--` are "
                        "added to them.")


def beam_args(argv, paths=()):
    """Beam's pipeline options of --runner=beam (None for local), from --beam_options and
    `argv`'s arguments after `--`; UsageError for arguments that nothing takes, a missing
    apache-beam, or a ram:// path among `paths`."""
    extra = argv[1:]
    if FLAGS.runner == "local":
        if extra or FLAGS.beam_options:
            raise UsageError(f"{' '.join(extra) or '--beam_options'}: Beam's options go with "
                             "--runner=beam")
        return None
    runner.check_beam(paths)
    return runner.pipeline_args(FLAGS.beam_options, extra)


def define_prediction_flags():
    """Defines the flags of run_infer.py and run_field.py (the model folder, its test-time views
    and how they combine, batches and devices); the script adopts them as its own with
    flags.adopt_module_key_flags(chimpact_flags)."""
    flags.DEFINE_string("model_dir", None, "Trained model folder (run_train.py --out_dir), "
                        "local or gs://: config.json and fold*/best.weights.h5.")
    flags.DEFINE_integer("tta", 1, "Test-time views averaged: 1 = none, then flips and "
                         "rotations (identity, flip lr, flip ud, rot90, rot180, rot270, ...).",
                         lower_bound=1)
    flags.DEFINE_enum("aggregate", "mean", list(settings.AGGREGATES), "How the folds' and the "
                      "test-time views' predictions combine: mean, or median (over the folds, "
                      "then over the views, as the 1st place did).")
    flags.DEFINE_integer("batch_size", 16, "Global batch size (rounded up to a multiple of the "
                         "replicas).", lower_bound=1)
    flags.DEFINE_enum("strategy", "auto", settings.STRATEGIES, "tf.distribute strategy (under "
                      "JAX: auto, mirrored and tpu use every device, default one).")
    flags.DEFINE_enum("backend", None, list(settings.BACKENDS), cli.BACKEND_HELP)
    flags.DEFINE_string("tpu", None, "TPU name, grpc://HOST:PORT or `local` (TPU VM).")
    flags.DEFINE_enum("jit_compile", "auto", list(cli.JIT_COMPILE_FLAG), cli.JIT_COMPILE_HELP)
    flags.mark_flag_as_required("model_dir")
