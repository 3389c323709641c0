"""Output folders: refused when they would overwrite, built atomically, removed only when provably ours.

Every folder vacelab writes (job folders, results folders, reports) is built in a hidden sibling
``.NAME.<8 random>.part`` and renamed into place, with a marker file ``.vacelab`` that lists what was
written. :func:`remove_own_folder` (the batch redoing a job) deletes a folder only when that marker is
there and the folder holds exactly what it lists: a file a user put in it is never deleted.

A ``.part`` sibling left by a killed command is removed by the next command writing beside it once it is
a day old (younger ones may belong to a command still running). :func:`output_lock` keeps two commands
from writing one folder at once, and :func:`check_writable` refuses an output that cannot be written
before any model loads.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from . import media
from .errors import InputError, WriteFault

MARKER = ".vacelab"
STALE_SECONDS = 24 * 3600
DISK_MARGIN = 1.25  # free space asked beyond the expected size of an output


def check_new_folder(out: str | os.PathLike, inputs: list[str | os.PathLike] = ()) -> Path:
    """Refuse an output folder that exists (unless empty), that holds or is one of the inputs, or that
    lies inside an input folder (a job folder, an image folder: inputs are never changed)."""
    out = Path(out)
    if out.is_symlink() and not out.exists():
        raise InputError("is a symbolic link to nothing (a dangling link or a loop)", field="out", value=out)
    if out.exists() and not out.is_dir():
        raise InputError("is an existing file", field="out", value=out)
    if out.is_dir() and any(out.iterdir()):
        raise InputError("folder exists and is not empty (nothing is overwritten)", field="out", value=out)
    resolved = _resolve(out)
    for item in inputs:
        item = _resolve(Path(item))
        if resolved == item or resolved in item.parents:
            raise InputError(f"is, or holds, the input {item}", field="out", value=out)
        if item.is_dir() and item in resolved.parents:
            raise InputError(f"lies inside the input folder {item}", field="out", value=out)
    return out


def _resolve(path: Path) -> Path:
    try:
        return path.resolve()
    except (RuntimeError, OSError) as exc:  # a symlink loop: RuntimeError before Python 3.13
        raise InputError(f"{path}: cannot be resolved ({exc})") from None


@contextlib.contextmanager
def part_folder(out: str | os.PathLike):
    """A new hidden sibling ``.OUT.<8 random>.part`` of ``out`` for the block, removed after it (whatever
    is still in it); stale ones a killed command left beside ``out`` are swept first (:func:`remove_parts`).
    Creating it in a folder that cannot be written is one :class:`WriteFault`."""
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_parts(out.parent, out.name, older_than=STALE_SECONDS)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
    except OSError as exc:
        raise WriteFault.of(out, exc) from None
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_folder(out: str | os.PathLike, fill) -> Path:
    """Build a folder atomically: ``fill(tmp_dir)`` writes into a hidden sibling (:func:`part_folder`)
    that is then renamed.

    The marker ``.vacelab`` (the list of files written) is added last. A fault while writing (a full
    disk, a read-only folder) is one :class:`InputError` and leaves nothing under ``out``.
    """
    out = Path(out)
    with part_folder(out) as tmp:
        _fill_and_rename(tmp, out, fill)
    return out


def _fill_and_rename(tmp: Path, out: Path, fill) -> None:
    """``fill(tmp)``, the marker, then ``tmp`` renamed to ``out``; faults as one line naming ``out``."""
    try:
        fill(tmp)
        media.write_text(tmp / MARKER, json.dumps({"written_by": "vacelab", "files": _listing(tmp)}))
        os.chmod(tmp, media.default_mode(directory=True))
        if out.is_dir():
            out.rmdir()  # only an empty folder reaches here (check_new_folder)
        os.replace(tmp, out)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise InputError("was created by another command meanwhile (nothing is overwritten)", field="out",
                             value=out) from None  # fmt: skip
        raise WriteFault.of(out, exc) from None
    except WriteFault as fault:  # a file inside the folder: name the folder, not its temporary sibling
        raise WriteFault(out, fault.reason) from None


def _listing(folder: Path) -> list[str]:
    """Every file and folder under ``folder`` (relative POSIX paths, sorted), the marker excluded."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.name != MARKER)


def remove_own_folder(path: str | os.PathLike) -> None:
    """Delete ``path`` if vacelab wrote it and nothing was added since; refuse (InputError) otherwise.

    An empty folder is removed; a missing one is nothing to do.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir():
        raise InputError(f"{path}: is not a folder vacelab wrote; move it away (nothing is deleted)")
    if not any(path.iterdir()):
        path.rmdir()
        return
    try:
        listed = json.loads((path / MARKER).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(
            f"{path}: holds files vacelab did not write; move it away (nothing is deleted)"
        ) from None
    foreign = sorted(set(_listing(path)) - set(listed))
    if foreign:
        raise InputError(
            f"{path}: holds {foreign[0]!r}"
            + (f" and {len(foreign) - 1} more" if len(foreign) > 1 else "")
            + ", which vacelab did not write; move it away (nothing is deleted)"
        )
    shutil.rmtree(path)


def remove_parts(folder: Path, name: str, *, older_than: float | None = None) -> list[Path]:
    """Remove ``folder/.NAME.<8 random>.part``, the hidden siblings :func:`write_folder` builds NAME in,
    that a killed command left (only those ``older_than`` seconds when given), and its ``.NAME.lock`` when
    no live command holds it. Exactly that form: job ``a`` must not touch ``.a.b.<random>.part``, which
    job ``a.b`` may be writing at this moment."""
    own = re.compile(rf"\.{re.escape(name)}\.[a-z0-9_]{{8}}\.part")
    removed = _remove_free_lock(folder / f".{name}.lock")
    now = time.time()
    for path in folder.glob(f".{glob.escape(name)}.*"):
        if not own.fullmatch(path.name) or path.is_symlink() or not path.is_dir():
            continue
        with contextlib.suppress(OSError):
            if older_than is None or now - path.stat().st_mtime > older_than:
                shutil.rmtree(path)
                removed.append(path)
    return removed


def _remove_free_lock(lock: Path) -> list[Path]:
    """Remove the lock file a killed command left beside its output, unless a live command holds it."""
    try:
        with open(lock, "r+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            lock.unlink()
            return [lock]
    except OSError:  # absent, or held by a command writing now (BlockingIOError)
        return []


@contextlib.contextmanager
def output_lock(out: str | os.PathLike):
    """Hold ``.NAME.lock`` beside ``out`` while a command writes it: a second command is refused at once."""
    out = Path(out)
    lock = out.parent / f".{out.name}.lock"
    with contextlib.ExitStack() as stack:
        while True:
            try:
                out.parent.mkdir(parents=True, exist_ok=True)
                handle = stack.enter_context(open(lock, "a"))
            except OSError as exc:
                raise WriteFault.of(out, exc) from None
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                busy = "another vacelab command is writing this folder now"
                raise InputError(busy, field="out", value=out) from None
            # the holder before us may have removed the file after we opened it: lock the current one
            with contextlib.suppress(FileNotFoundError):
                if os.stat(lock).st_ino == os.fstat(handle.fileno()).st_ino:
                    break
            handle.close()
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)


def check_writable(out: str | os.PathLike, expected_bytes: int = 0) -> None:
    """Refuse, before any work, an ``out`` whose folder cannot be created and written, or whose disk has
    less free space than about ``expected_bytes``."""
    out = Path(out)
    parent = out.parent
    while not parent.exists():
        if parent.is_symlink():
            raise InputError(f"{parent} is a symbolic link to nothing", field="out", value=out)
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{parent} is not a folder", field="out", value=out)
    try:  # a real probe: access() says yes to root on a read-only file system
        os.rmdir(tempfile.mkdtemp(prefix=".vacelab-probe.", dir=parent))
    except OSError as exc:
        raise InputError(f"cannot be written: {parent}: {exc.strerror}", field="out", value=out) from None
    free = shutil.disk_usage(parent).free
    if free < expected_bytes * DISK_MARGIN:
        raise InputError(
            f"needs about {expected_bytes * DISK_MARGIN / 1e6:.0f} MB, {parent} has {free / 1e6:.0f} MB free",
            field="out",
            value=out,
        )
