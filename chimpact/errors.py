"""The one error type for bad user input: its message is a single line naming the file or flag."""


class InputError(ValueError):
    """Bad input a user can fix; entry scripts print it as one line and exit non-zero."""
