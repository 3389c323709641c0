"""Errors the interfaces turn into a one-line ``error:`` message and exit code 2.

The library never words an error as a command-line flag. An error about one setting or parameter carries
that field by its Python name (``steps``, ``bbox``, ``out``) and, where it helps, the value given; each
interface shows the field its own way:

- the CLI as its option: ``--steps 0: must be at least 1``;
- a batch manifest or experiment plan as its TOML key: ``[[jobs]] 'a': steps = 0: must be at least 1``;
- the web UI as the control's label.

``str(error)`` is the plain rendering, ``steps 0: must be at least 1``.
"""

from __future__ import annotations


class _Unset:
    """No value given (pickled by name, so that an error sent from a worker process keeps it unset)."""

    def __reduce__(self) -> str:
        return "_UNSET"


_UNSET = _Unset()


class InputError(ValueError):
    """A bad input or option given by the user: reported as one line, exit code 2, no traceback.

    ``field`` names the setting or parameter at fault (``None`` when the message names its subject itself,
    e.g. a file path); ``value`` is the value given, shown after the field when set.
    """

    def __init__(self, message: str, *, field: str | None = None, value: object = _UNSET):
        super().__init__(message)
        self.message = message
        self.field = field
        self.value = value

    def render(self, label: str | None = None) -> str:
        """The one-line message, the field shown as ``label`` (default: the field's own name)."""
        if self.field is None:
            return self.message
        subject = label or self.field
        if self.value is not _UNSET:
            subject = f"{subject} {self.value}"
        return f"{subject}: {self.message}"

    def __str__(self) -> str:
        return self.render()

    def toml(self) -> str:
        """The message as a TOML file shows it: the field as its key, ``steps = 0: must be at least 1``."""
        if self.field is None:
            return self.message
        return self.render(f"{self.field} =" if self.value is not _UNSET else self.field)


class WriteFault(InputError):
    """An output that could not be written (a full disk, a read-only folder, a file in the way of a
    folder); nothing was left under its name."""

    def __init__(self, path, reason: str):
        super().__init__(f"{path}: cannot be written ({reason}); nothing was left under this name")
        self.path, self.reason = path, reason

    @classmethod
    def of(cls, path, exc: OSError) -> WriteFault:
        """The fault ``exc`` met writing ``path``; a short write (numpy says only "N requested and M
        written") is given the free space left, which tells a full disk."""
        if exc.strerror:
            return cls(path, exc.strerror)
        import shutil
        from pathlib import Path

        folder = Path(path).parent
        while not folder.exists():
            folder = folder.parent
        return cls(path, f"{exc}; {shutil.disk_usage(folder).free} bytes free there")


class WorkerFailed(RuntimeError):
    """A worker process of a run (a rank of ``--parallel``) failed on something other than a bad input:
    reported as one line, exit code 1."""


def cli_flag(field: str) -> str:
    """The command-line option of a field: ``conditioning_scale`` -> ``--conditioning-scale``."""
    return "--" + field.replace("_", "-")
