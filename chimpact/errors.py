"""The error types for bad user input: each message is a single line naming the file or flag."""


class InputError(ValueError):
    """Bad input a user can fix; entry scripts print it as one line and exit 1."""


class UsageError(InputError):
    """A bad flag value or combination, found before any work: exit status 2."""
