"""Files vacelab writes and reads back exactly: atomic writes (a temporary sibling renamed into place),
lossless arrays (``.npy``) and bit-packed masks."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import WriteFault


def default_mode(directory: bool = False) -> int:
    """Permissions a plain ``open``/``mkdir`` would give under the current umask (mkstemp uses 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path`` (never half-written).

    A fault while writing (``OSError``) becomes a :class:`~vacelab.errors.WriteFault` naming ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + path.suffix, dir=path.parent)
    except OSError as exc:
        raise WriteFault.of(path, exc) from None
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except OSError as exc:  # a full disk, a folder in the way: one line, nothing under the final name
        raise WriteFault.of(path, exc) from None
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def save_array(path: str | os.PathLike, array: np.ndarray) -> None:
    """Store an array losslessly (``.npy``), atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array, allow_pickle=False)


def load_array(path: str | os.PathLike, *, mmap: bool = False) -> np.ndarray:
    """Read an array written by :func:`save_array` (``mmap``: read-only, paged in on use)."""
    return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)


def save_mask(path: str | os.PathLike, mask: np.ndarray) -> None:
    """Store a bool mask [F, H, W] bit-packed along the width (1/8 of the bytes), losslessly."""
    frames, height, width = mask.shape
    packed = np.packbits(mask.astype(bool), axis=-1)
    save_array(
        path, np.concatenate([np.array([frames, height, width], np.int64).view(np.uint8), packed.ravel()])
    )


def load_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a mask written by :func:`save_mask`."""
    raw = load_array(path)
    frames, height, width = (int(v) for v in raw[:24].view(np.int64))
    packed = raw[24:].reshape(frames, height, -1)
    return np.unpackbits(packed, axis=-1, count=width).astype(bool)
