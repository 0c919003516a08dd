"""An entry script run in this process for its flags (its main not run), as often as tests ask."""

import runpy

from absl import flags


def define_flags(script):
    """runpy.run_path(script): its flags defined, after those an earlier run of a script left
    are removed. absl skips a flag defined again by a module of the same name (`<run_path>`)
    only when that module is another object; CPython may give a new one the id of one already
    freed, and absl then raises DuplicateFlagError (a flaky failure)."""
    for name in {flag.name for flag in flags.FLAGS.get_flags_for_module("<run_path>")}:
        delattr(flags.FLAGS, name)
    return runpy.run_path(str(script))
