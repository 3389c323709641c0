"""Errors the interfaces turn into a one-line ``error:`` message and exit code 2."""


class InputError(ValueError):
    """A bad input or option given by the user: reported as one line, exit code 2, no traceback."""
