"""Glue for the absl entry scripts: report InputError as one line and a non-zero exit."""

import functools
import sys

from chimpact.errors import InputError


def reports_input_errors(main):
    """Wraps an absl `main(argv)` so that an InputError prints `error: ...` and exits 1."""

    @functools.wraps(main)
    def wrapped(argv):
        try:
            return main(argv)
        except InputError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)

    return wrapped
