"""The one content digest vacelab resumes by: a long run's saved windows, a batch's finished jobs, an
experiment's prepared jobs each store it and compare it with the digest of what they are asked to do."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .media.files import release


def fingerprint(
    facts=None, *, arrays: Iterable[np.ndarray] = (), files: Iterable[Path] = (), root: Path | None = None
) -> str:
    """A hex digest (BLAKE2b, 16 bytes) of ``facts`` (anything JSON can write, keys sorted), then each of
    ``arrays`` (shape, dtype and bytes), then each of ``files`` (its path relative to ``root`` and its
    bytes, read in chunks). Equal inputs give equal digests; any change of content changes it."""
    digest = hashlib.blake2b(digest_size=16)
    if facts is not None:
        digest.update(json.dumps(facts, sort_keys=True, default=str).encode())
    for array in arrays:
        array = array if array.ndim else np.ascontiguousarray(array)  # a scalar is hashed as shape (1,)
        digest.update(str((array.shape, array.dtype.str)).encode())
        if len(array) == 0:
            digest.update(np.ascontiguousarray(array).data)
        else:  # ~16 MB at a time: a long clip is never whole in memory
            step = max(1, (1 << 24) // max(1, array[0].nbytes))
            for start in range(0, len(array), step):
                digest.update(np.ascontiguousarray(array[start : start + step]).data)
                release(array)  # a memory-mapped clip's pages are let go as it is read
    for path in files:
        digest.update(str(path.relative_to(root) if root else path).encode() + b"\0")
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()
