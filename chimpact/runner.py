"""--runner=beam: a stage's work, one element per video or shard, as an Apache Beam pipeline on
Beam's local runner (one worker process per core) or on Dataflow, Flink or Spark (their own
pipeline options). Each element writes its own outputs, as the local path does, and the driver
reads them back: the outputs are the same files whichever ran them, and a re-run finds the
finished elements. Beam is imported here only, and only when asked for."""

import contextlib
import functools
import logging
import os
import pickle
import shlex

from chimpact import storage
from chimpact.errors import InputError, UsageError

log = logging.getLogger(__name__)

RUNNERS = ("local", "beam")
INSTALL = "pip install 'chimpact[beam]'"


def check_beam(paths=()):
    """UsageError, before any work, for a missing apache-beam or a ram:// path among `paths`
    (this process's memory, which Beam's worker processes cannot see)."""
    try:
        with _quiet():
            import apache_beam  # noqa: F401
    except ImportError:
        raise UsageError(f"--runner=beam needs apache-beam: {INSTALL}") from None
    for path in paths:
        if path and str(path).startswith("ram://"):
            raise UsageError(f"{path}: ram:// lives in this process's memory, which Beam's "
                             "workers cannot see: give a folder or a bucket")


def pipeline_args(beam_options="", extra=()):
    """Beam's pipeline options from --beam_options (one string, shell-quoted) and the arguments
    after `--`; without a --runner among them, Beam's local runner with one worker process per
    core (--direct_num_workers=N changes that). UsageError for quoting or a runner that Beam
    does not know, before any work."""
    try:
        args = [*shlex.split(beam_options or ""), *extra]
    except ValueError as e:
        raise UsageError(f"--beam_options={beam_options}: {e}") from None
    given = {arg.split("=", 1)[0] for arg in args}
    defaults = []
    if "--runner" not in given:
        defaults = ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
                    "--default_sdk_harness_log_level=WARNING"]
        if "--direct_num_workers" not in given:
            defaults.append(f"--direct_num_workers={os.cpu_count()}")
    else:
        _check_runner(next(arg for arg in args if arg.split("=", 1)[0] == "--runner"))
    return [*defaults, *args]


def _check_runner(argument):
    """UsageError unless Beam knows the runner that `argument` (--runner=NAME) names."""
    with _quiet():
        from apache_beam.runners import create_runner

        try:
            create_runner(argument.split("=", 1)[-1])
        except ValueError as e:
            raise UsageError(f"{argument}: {e}") from None


@contextlib.contextmanager
def _quiet():
    """Only Beam's errors are shown: its INFO lines (each worker's start and stop) and the
    warnings of its Google Cloud modules that are not installed are no news to a user."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


@functools.cache
def _work_fn():
    """The DoFn class (made on first use: apache_beam is imported only then)."""
    import apache_beam as beam

    class Work(beam.DoFn):
        """Calls `work(elements[i])` for each index i, after reading the elements and calling
        `work.setup()` once per worker (a model loaded once, not once per video)."""

        def __init__(self, work, elements_path):
            self.work, self.elements_path = work, elements_path

        def setup(self):
            self.elements = pickle.loads(storage.read_bytes(self.elements_path))
            if hasattr(self.work, "setup"):
                self.work.setup()

        def process(self, index):
            self.work(self.elements[index])
            return ()

    return Work


def run(work, elements, args, scratch, name="chimpact"):
    """Runs `work(element)` once per element (picklable values; `work` a picklable callable
    that writes its results itself) on a Beam pipeline with the options `args`
    (pipeline_args), and returns when every element is done. The elements wait in a file in
    the folder `scratch` (the pipeline carries only their indices: Dataflow refuses a job
    graph over 10 MB). A pipeline that fails (an element failed on every retry) is an
    InputError with Beam's last line."""
    elements = list(elements)
    if not elements:
        return
    given = dict(arg[2:].split("=", 1) for arg in args if "=" in arg)
    workers = given.get("direct_num_workers")
    log.info("%s: %d elements on Beam's %s%s; it reports no progress until they are done", name,
             len(elements), given.get("runner", "default runner"),
             f" with {workers} worker processes" if workers else "")
    storage.makedirs(scratch)
    elements_path = storage.temp_name(storage.join(scratch, f"{name}-elements.pkl"))
    storage.atomic_write(elements_path, pickle.dumps(elements))
    with _quiet():
        import apache_beam as beam
        from apache_beam.options.pipeline_options import PipelineOptions

        try:
            with beam.Pipeline(options=PipelineOptions(args)) as pipeline:
                _ = (pipeline
                     | f"{name} elements" >> beam.Create(range(len(elements)), reshuffle=True)
                     | name >> beam.ParDo(_work_fn()(work, elements_path)))
        except (KeyboardInterrupt, InputError):
            raise
        except Exception as e:  # whatever the runner raises for a failed pipeline
            lines = [line for line in str(e).splitlines() if line.strip()]
            raise InputError("the Beam pipeline failed: "
                             f"{lines[-1] if lines else type(e).__name__}") from None
        finally:
            storage.remove(elements_path)
