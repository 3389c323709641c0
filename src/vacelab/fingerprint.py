"""The one content digest vacelab resumes by: a long run's saved windows, a batch's finished jobs, an
experiment's prepared jobs each store it and compare it with the digest of what they are asked to do."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np


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
        array = np.ascontiguousarray(array)
        digest.update(str((array.shape, array.dtype.str)).encode())
        digest.update(array.data)
    for path in files:
        digest.update(str(path.relative_to(root) if root else path).encode() + b"\0")
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()
