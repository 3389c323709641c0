"""The numbers of the audit: what the model reads of a mask, per latent step and per frame.

Pure numpy on the bit-packed GENERATE mask (8 pixels per byte), so an 81x480x832 job is analysed in a few
tens of milliseconds. No wording here: :mod:`.findings` turns these numbers into findings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import geometry as geo
from ..errors import InputError

NOTABLE = 0.01  # share of the frame below which a difference between masks is ignored
SEVERE = 0.10  # share of the frame from which mixing / a mismatch is a real problem
KEY_MARGIN = 0.10  # a frame is a KEEP-marked "key" frame when its KEEP share beats the median by this


@dataclass
class LatentStep:
    """One latent time step: the frames the VAE encodes into it and the mask the model reads for it."""

    index: int
    frames: list[int]
    mask_frame: int | list[int]  # the frame read (reference encoding) or the frames read (aligned)
    keep_fraction: float  # KEEP share of the mask the model reads for this step
    group_keep_fraction: float  # KEEP share over all pixels of the frames encoded into this step
    mixed_fraction: float  # share of pixels that are KEEP in some frames of the group and GENERATE in others
    imposed_fraction: float  # share read as KEEP although some frame of the group is GENERATE there
    has_keep: bool  # some frame of the group has a KEEP pixel (the inactive latent carries content)
    spatial_anchor: bool  # a whole 16x16 token is KEEP in every frame of the group

    @property
    def mixed(self) -> bool:
        return self.mixed_fraction >= NOTABLE

    @property
    def imposes_keep(self) -> bool:
        """The mask read says KEEP where a frame of the step's own group is GENERATE."""
        return self.imposed_fraction >= NOTABLE

    @property
    def reads_outside(self) -> bool:
        """The mask read for this step is a frame outside its own VAE group (reference encoding)."""
        return isinstance(self.mask_frame, int) and self.mask_frame not in self.frames

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "frames": self.frames,
            "mask_frame": self.mask_frame,
            "keep_fraction": round(self.keep_fraction, 4),
            "group_keep_fraction": round(self.group_keep_fraction, 4),
            "mixed": self.mixed,
            "mixed_fraction": round(self.mixed_fraction, 4),
            "imposed_fraction": round(self.imposed_fraction, 4),
            "has_keep": self.has_keep,
            "spatial_anchor": self.spatial_anchor,
        }


def as_bool_mask(mask) -> np.ndarray:
    """``mask`` as bool [F, H, W] (True = GENERATE); a one-line error for any other shape or value."""
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise InputError(f"mask must be [frames, height, width], got shape {list(mask.shape)}")
    if mask.dtype != bool:
        if not np.isin(mask, (0, 1)).all():
            raise InputError("mask must be binary (bool or 0/1; True/1 = GENERATE)")
        mask = mask.astype(bool)
    return mask


def runs(flags) -> list[tuple[int, int]]:
    """Inclusive (first, last) index runs where ``flags`` is true."""
    found, start = [], None
    for i, flag in enumerate(list(flags) + [False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            found.append((start, i - 1))
            start = None
    return found


def popcount(bits: np.ndarray, axis=None) -> np.ndarray:
    return np.bitwise_count(bits).sum(axis=axis, dtype=np.int64)


def keep_token(packed: np.ndarray, height: int, width: int) -> np.ndarray:
    """Per leading index of ``packed`` [..., H, W/8]: whether a whole 16x16 token is KEEP (bits all 0)."""
    lead = packed.shape[:-2]
    columns = np.ascontiguousarray(packed).view(np.uint16)  # one token column (16 px) per element
    rows = np.bitwise_or.reduce(columns.reshape(*lead, height // geo.TOKEN_PX, geo.TOKEN_PX, -1), axis=-2)
    return (rows == 0).reshape(*lead, -1).any(axis=-1)


def dilate3(blocks: np.ndarray) -> np.ndarray:
    """3x3 dilation of bool [..., h, w] on the block grid."""
    padded = np.pad(blocks, [(0, 0)] * (blocks.ndim - 2) + [(1, 1), (1, 1)])
    h, w = blocks.shape[-2:]
    out = np.zeros_like(blocks)
    for dy in range(3):
        for dx in range(3):
            out |= padded[..., dy : dy + h, dx : dx + w]
    return out


class MaskAnalysis:
    """What the model reads of a bit-packed GENERATE mask [F, H, W/8]: latent steps, per-frame KEEP shares,
    the KEEP lost to the mask read, anchors."""

    def __init__(self, packed: np.ndarray, shape: tuple[int, int, int], encoding: str):
        self.packed = packed
        self.frames, self.height, self.width = shape
        self.encoding = encoding
        self.area = self.height * self.width
        self.groups = [list(g) for g in geo.vae_groups(self.frames)]
        self.reads = geo.read_frames_for(self.frames, encoding)
        self.read_set = {f for r in self.reads for f in r}
        self.frame_keep = 1.0 - popcount(packed.reshape(self.frames, -1), axis=1) / self.area
        # Frames holding a KEEP region at least one token thick: what the model can anchor on.
        self.frame_anchor = keep_token(packed, self.height, self.width)
        self.lost: dict[int, float] = {}  # frame -> share of it that is KEEP but read as GENERATE
        self.steps = [self._step(t) for t in range(len(self.groups))]

    def _step(self, t: int) -> LatentStep:
        group = self.groups[t]
        bits = self.packed[group]
        union = np.bitwise_or.reduce(bits, axis=0)  # GENERATE in some frame of the group
        inter = np.bitwise_and.reduce(bits, axis=0)  # GENERATE in every frame of the group
        read = self.packed[self.reads[t][0]] if self.encoding == "reference" else union
        for f in group:
            self.lost[f] = popcount(~self.packed[f] & read) / self.area
        return LatentStep(
            index=t,
            frames=group,
            mask_frame=self.reads[t][0] if self.encoding == "reference" else self.reads[t],
            keep_fraction=float(1.0 - popcount(read) / self.area),
            group_keep_fraction=float(self.frame_keep[group].mean()),
            mixed_fraction=float(popcount(union & ~inter) / self.area),
            imposed_fraction=float(popcount(~read & union) / self.area),
            has_keep=bool(popcount(inter) < self.area),
            spatial_anchor=bool(keep_token(union, self.height, self.width)),
        )

    def frames_of(self, steps) -> list[int]:
        return [f for t in steps for f in self.groups[t]]

    def step_of(self, frame: int) -> int:
        return 0 if frame == 0 else (frame + geo.VAE_STRIDE_T - 1) // geo.VAE_STRIDE_T

    def key_runs(self) -> list[tuple[int, int]]:
        """Runs of frames marked KEEP clearly more than the typical frame (keyframes, kept clips)."""
        keep = self.frame_keep
        return runs(keep >= min(np.median(keep) + KEY_MARGIN, 1.0)) if keep.max() > 0 else []

    def last_frame_pattern(self) -> bool:
        """Only the first frames and the last frame are KEEP (VACE's last-frame / first-last-frame tasks)."""
        kept = runs(self.frame_keep > 0)
        last = self.frames - 1
        return (
            bool(kept)
            and kept[-1] == (last, last)
            and (len(kept) == 1 or (len(kept) == 2 and kept[0][0] == 0))
        )

    def thin_blocks(self):
        """Per part (GENERATE, KEEP): parts too thin to fill an 8x8 latent pixel, else a 16x16 token.

        Yields ``(part, severity, blocks [F, h, w] bool, block_px)`` for each part that has any."""
        f, h, w = self.frames, self.height // geo.VAE_STRIDE_S, self.width // geo.VAE_STRIDE_S
        rows = self.packed.reshape(f, h, geo.VAE_STRIDE_S, w)
        some = np.bitwise_or.reduce(rows, axis=2) != 0  # 8x8 block holds a GENERATE pixel
        full = np.bitwise_and.reduce(rows, axis=2) == 255  # 8x8 block is all GENERATE
        for part, any8, all8 in (("GENERATE", some, full), ("KEEP", ~full, ~some)):
            thin8 = any8 & ~all8 & ~dilate3(all8)
            any16 = any8.reshape(f, h // 2, 2, w // 2, 2).any(axis=(2, 4))
            all16 = all8.reshape(f, h // 2, 2, w // 2, 2).all(axis=(2, 4))
            thin16 = any16 & ~all16 & ~dilate3(all16)
            if thin8.any():
                yield part, "warning", thin8, geo.VAE_STRIDE_S
            elif thin16.any():
                yield part, "info", thin16, geo.TOKEN_PX

    def thin_blocks_at(self, frame: int) -> list[tuple[str, str, np.ndarray, int]]:
        """What :meth:`thin_blocks` finds in one frame: ``(part, severity, blocks [h, w], block_px)``."""
        return [
            (part, severity, blocks[frame], scale)
            for part, severity, blocks, scale in self.thin_blocks()
            if blocks[frame].any()
        ]
