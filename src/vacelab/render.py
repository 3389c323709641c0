"""Pictures for people: side-by-side previews and comparisons (numpy + Pillow only)."""

from __future__ import annotations

import numpy as np

GENERATE_TINT = np.array([255, 64, 64], np.float32)


def mask_overlay(frames: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Tint the GENERATE pixels of ``frames`` [F, H, W, 3] red (only those pixels go through float)."""
    out = np.array(frames, dtype=np.uint8, copy=True)
    out[mask] = (out[mask] * np.float32(1 - alpha) + GENERATE_TINT * alpha).round().astype(np.uint8)
    return out


def mask_frames(mask: np.ndarray) -> np.ndarray:
    """A bool mask [F, H, W] as white-on-black RGB frames."""
    return np.repeat((mask.astype(np.uint8) * 255)[..., None], 3, axis=-1)


def side_by_side(*videos: np.ndarray, gap: int = 4) -> np.ndarray:
    """Join equally long [F, H, W, 3] videos left to right with a white gap (heights must match)."""
    frames, height = videos[0].shape[:2]
    spacer = np.full((frames, height, gap, 3), 255, np.uint8)
    parts = []
    for i, video in enumerate(videos):
        if i:
            parts.append(spacer)
        parts.append(video)
    return np.concatenate(parts, axis=2)


class PreviewFrames:
    """``preview.gif`` content: source | conditioning video with the GENERATE area tinted; for a control
    job source | control video (untinted: the control is what the model reads) | mask. Made one frame at a
    time as it is read (``len``, ``shape``, ``frames[i]``, iteration: what ``media.write_gif`` and
    ``media.write_mp4`` read), so a long job's preview is never whole in memory.

    All sides are first subsampled by a whole factor to at most ``max_side_width`` pixels wide, and to
    every ``every``-th frame (cheap strided views), so the preview costs a fraction of the job.
    """

    def __init__(self, job, max_side_width: int = 320, every: int = 1):
        self.job, self.every = job, every
        self.step = max(1, -(-job.video.shape[2] // max_side_width))
        frames, height, width = job.video.shape[:3]
        side = (-(-height // self.step), -(-width // self.step))
        panels = 3 if job.task == "control" else 2
        self.shape = (len(range(0, frames, every)), side[0], panels * side[1] + 4 * (panels - 1), 3)  # gap 4

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int) -> np.ndarray:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        f = index % len(self) * self.every
        view = np.s_[f : f + 1, :: self.step, :: self.step]
        job = self.job
        if job.task == "control":
            return side_by_side(job.source_frames()[view], job.video[view], mask_frames(job.mask[view]))[0]
        return side_by_side(job.source_frames()[view], mask_overlay(job.video[view], job.mask[view]))[0]
