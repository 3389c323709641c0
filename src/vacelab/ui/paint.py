"""The painted mask of ``vacelab ui``: per editor frame, one of a few distinct 2-D masks, written as the
image folder ``vacelab prepare --mask`` reads."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ..errors import InputError
from .policy import SessionFolder


class Paint:
    """The painted mask: per editor frame, an index into a list of distinct 2-D masks (-1: none)."""

    def __init__(self, frames: int, hw: tuple[int, int]):
        self.ids = np.full(frames, -1, np.int64)
        self.masks: list[np.ndarray] = []
        self.hw = hw
        self.version = 0
        self._written: tuple[tuple[int, int], Path] | None = None  # ((version, lead), folder)

    def any(self) -> bool:
        return bool((self.ids >= 0).any())

    def frame(self, index: int) -> np.ndarray | None:
        i = self.ids[index]
        return None if i < 0 else self.masks[i]

    def apply(self, mask: np.ndarray, first: int, last: int) -> None:
        """Set frames ``first..last`` (inclusive) to ``mask`` (an empty mask clears them)."""
        if not 0 <= first <= last < len(self.ids):
            raise InputError(f"frames {first}..{last}: choose a range inside 0..{len(self.ids) - 1}")
        if mask.any():
            self.masks.append(mask)
            self.ids[first : last + 1] = len(self.masks) - 1
        else:
            self.ids[first : last + 1] = -1
        used = sorted(set(self.ids[self.ids >= 0].tolist()))
        remap = np.full(len(self.masks) + 1, -1, np.int64)  # last entry maps -1 to -1
        remap[used] = np.arange(len(used))
        self.masks = [self.masks[i] for i in used]
        self.ids = remap[self.ids]
        self.version += 1

    def clear(self) -> None:
        self.ids[:] = -1
        self.masks = []
        self.version += 1

    def folder(self, session: SessionFolder, source_hw: tuple[int, int], lead: int = 0) -> Path:
        """The mask as an image folder at the source's size, one PNG per frame (what ``--mask`` reads),
        after ``lead`` blank frames (the frames before ``--start``, which prepare skips)."""
        if self._written and self._written[0] == (self.version, lead):
            return self._written[1]
        from PIL import Image

        out = session.new("mask")
        out.mkdir()
        blank = out / "blank.png"
        Image.new("1", source_hw[::-1], 0).save(blank)
        uniques = []
        for i, mask in enumerate(self.masks):
            uniques.append(out / f"mask{i}.png")
            image = Image.fromarray(mask).resize(source_hw[::-1], Image.Resampling.NEAREST)
            image.convert("1").save(uniques[-1])
        for frame, i in enumerate([-1] * lead + self.ids.tolist()):
            _link_or_copy(blank if i < 0 else uniques[i], out / f"{frame:06d}.png")
        blank.unlink()
        for path in uniques:
            path.unlink()
        self.discard()  # the previous version's folder is not needed any more
        self._written = ((self.version, lead), out)
        return out

    def discard(self) -> None:
        """Delete the last mask folder written."""
        if self._written:
            shutil.rmtree(self._written[1], ignore_errors=True)
            self._written = None


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        target.hardlink_to(source)  # frames sharing a mask share one file
    except OSError:
        shutil.copyfile(source, target)


__all__ = ["Paint"]
