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


def save_array(path: str | os.PathLike, array) -> None:
    """Store an array losslessly (``.npy``), atomically. ``array`` may also be frames made as they are read
    (a ``shape``, a ``dtype`` and ``array[a:b]``, e.g. ``tasks.spatial.FilledVideo``): the same file,
    written 16 frames at a time, never whole."""
    with atomic_path(path) as tmp:
        if isinstance(array, np.ndarray):
            with open(tmp, "wb") as fh:
                np.save(fh, array, allow_pickle=False)
            return
        with FrameWriter(tmp, array.shape, array.dtype) as writer:
            for start in range(0, len(array), 16):
                writer.append(array[start : start + 16])
            writer.close()


def load_array(path: str | os.PathLike, *, mmap: bool = False) -> np.ndarray:
    """Read an array written by :func:`save_array` (``mmap``: read-only, paged in on use)."""
    return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)


def save_mask(path: str | os.PathLike, mask) -> None:
    """Store a bool mask [F, H, W] (or a :class:`PackedMask`) bit-packed along the width (1/8 of the
    bytes), losslessly: one uint8 array, the shape (3 int64) then the bits, written 64 frames at a time."""
    frames, height, width = mask.shape
    shape = np.array([frames, height, width], np.int64).view(np.uint8)
    size = shape.size + frames * height * -(-width // 8)
    with atomic_path(path) as tmp, FrameWriter(tmp, (size,), np.uint8) as writer:
        writer.append(shape)
        for start in range(0, frames, 64):
            if isinstance(mask, PackedMask):
                bits = mask.bits[start : start + 64]
            else:
                bits = np.packbits(np.asarray(mask[start : start + 64], bool), axis=-1)
            writer.append(bits.ravel())
        writer.close()


def load_mask(path: str | os.PathLike, *, packed: bool = False) -> np.ndarray | PackedMask:
    """Read a mask written by :func:`save_mask` (``packed``: a :class:`PackedMask` over the memory-mapped
    file, unpacked only where it is indexed)."""
    raw = load_array(path, mmap=packed)
    frames, height, width = (int(v) for v in raw[:24].view(np.int64))
    bits = raw[24:].reshape(frames, height, -1)
    if packed:
        return PackedMask(bits, width)
    return np.unpackbits(bits, axis=-1, count=width).view(bool)  # 0/1 bytes: a view, not a second copy


class PackedMask:
    """A bool mask [F, H, W] kept bit-packed along the width (``bits`` uint8 [F, H, ceil(W/8)]) and unpacked
    only where indexed: ``mask[i]``, ``mask[a:b]``, ``mask[a:b, ..., None]`` are bool arrays of those frames
    alone, so a long clip's mask costs 1/8 of its bytes (none resident when ``bits`` is memory-mapped).
    ``np.asarray(mask)`` unpacks it whole."""

    ndim, dtype = 3, np.dtype(bool)

    def __init__(self, bits: np.ndarray, width: int):
        self.bits = bits
        self.shape = (bits.shape[0], bits.shape[1], int(width))

    @classmethod
    def of(cls, mask: np.ndarray) -> PackedMask:
        """A bool mask [F, H, W] packed."""
        return cls(np.packbits(np.asarray(mask, bool), axis=-1), mask.shape[-1])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        frames, rest = (key[0], key[1:]) if isinstance(key, tuple) and key else (key, ())
        if frames is Ellipsis:
            frames, rest = slice(None), key
        out = np.unpackbits(self.bits[frames], axis=-1, count=self.shape[2]).view(bool)
        if not rest:
            return out
        return out[rest] if out.ndim == 2 else out[(slice(None), *rest)]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    # ------------------------------------------------ reads like the bool array it stands for (the API's)
    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1] * self.shape[2]

    def sum(self, axis=None, **kwargs):
        """As ``ndarray.sum``; the whole-mask count is made from the bits, without unpacking."""
        if axis is None and not kwargs:
            return mask_counts(self).sum()
        return np.asarray(self).sum(axis, **kwargs)

    def mean(self, axis=None, **kwargs):
        """As ``ndarray.mean`` (the GENERATE share of the whole mask, from the bits, without unpacking)."""
        if axis is None and not kwargs:
            return float(self.sum()) / self.size
        return np.asarray(self).mean(axis, **kwargs)

    def any(self, axis=None, **kwargs):
        if axis is None and not kwargs:
            return bool(self.bits.any())  # the padding bits are 0
        return np.asarray(self).any(axis, **kwargs)

    def __getattr__(self, name: str):
        """The other read-only ``ndarray`` methods (``all``, ``astype``, ``nonzero`` ...) on the whole mask,
        unpacked."""
        if name in _ARRAY_METHODS:
            return getattr(np.asarray(self), name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __invert__(self) -> np.ndarray:
        return ~np.asarray(self)

    def __and__(self, other) -> np.ndarray:
        return np.asarray(self) & np.asarray(other)

    def __or__(self, other) -> np.ndarray:
        return np.asarray(self) | np.asarray(other)

    __rand__, __ror__ = __and__, __or__


_ARRAY_METHODS = frozenset(
    {"all", "astype", "copy", "max", "min", "nonzero", "ravel", "reshape", "tolist", "argmax", "argmin"}
)


def mask_counts(mask) -> np.ndarray:
    """The True pixels of each frame of a bool mask [F, H, W] or a :class:`PackedMask`, int64 [F]."""
    if isinstance(mask, PackedMask):  # a frame at a time: no whole-clip temporary
        return np.array([np.bitwise_count(bits).sum(dtype=np.int64) for bits in mask.bits], np.int64)
    return mask.reshape(len(mask), -1).sum(axis=1, dtype=np.int64)


def release(array) -> None:
    """Drop the pages of a memory-mapped array (:func:`load_array` with ``mmap``, or a :class:`PackedMask`
    over one) from this process's resident memory: they stay in the page cache and are read again on use.
    Anything else: nothing."""
    import mmap

    array = array.bits if isinstance(array, PackedMask) else array
    mapping = getattr(array, "_mmap", None)
    if mapping is not None and not mapping.closed:
        mapping.madvise(mmap.MADV_DONTNEED)


class FrameWriter:
    """A ``.npy`` of ``shape`` written block by block with plain file writes (a long run's output frames:
    nothing is kept resident). :meth:`close` checks that every frame was written; used as a context
    manager, the file is closed on the way out whatever happened."""

    def __init__(self, path: str | os.PathLike, shape: tuple[int, ...], dtype=np.uint8):
        self.path, self.shape, self.dtype, self.written = Path(path), tuple(shape), np.dtype(dtype), 0
        self.handle = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        header = {"descr": self.dtype.str, "fortran_order": False, "shape": self.shape}
        np.lib.format.write_array_header_1_0(self.handle, header)  # what np.save writes for such a shape

    def append(self, frames: np.ndarray) -> None:
        """Write the next ``len(frames)`` frames."""
        if frames.shape[1:] != self.shape[1:] or self.written + len(frames) > self.shape[0]:
            raise ValueError(f"frames {frames.shape} do not continue {self.shape} at frame {self.written}")
        self.handle.write(np.ascontiguousarray(frames, self.dtype).data)
        self.written += len(frames)

    def close(self) -> None:
        self.handle.close()
        if self.written != self.shape[0]:
            raise ValueError(f"{self.path}: {self.written} of {self.shape[0]} frames written")

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.handle.close()


class FrameReader:
    """The frames of a ``.npy`` file read on demand with positional reads (no mapping: what is read is not
    kept resident; safe from several threads). ``reader[i]`` and ``reader[a:b]`` are arrays."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        with open(self.path, "rb") as handle:
            major, _ = np.lib.format.read_magic(handle)
            read_header = (
                np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(handle)
            self.offset = handle.tell()
        if fortran:
            raise ValueError(f"{self.path}: a Fortran-ordered array")
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.frame_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        if isinstance(key, int | np.integer):
            return self[int(key) : int(key) + 1][0]
        start, stop, step = key.indices(len(self))
        if step != 1:
            raise IndexError("frames are read in contiguous ranges")
        count = max(0, stop - start)
        out = np.empty((count, *self.shape[1:]), self.dtype)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            view, done = memoryview(out.reshape(-1).view(np.uint8)), 0
            while done < count * self.frame_bytes:
                got = os.preadv(fd, [view[done:]], self.offset + start * self.frame_bytes + done)
                if got == 0:
                    raise ValueError(f"{self.path}: ends before frame {stop}")
                done += got
        finally:
            os.close(fd)
        return out

    def __iter__(self):
        for start in range(0, len(self), 8):
            yield from self[start : start + 8]
