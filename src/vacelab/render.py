"""Pictures for people: side-by-side previews and comparisons (numpy + Pillow only)."""

from __future__ import annotations

import numpy as np

GENERATE_TINT = np.array([255, 64, 64], np.float32)


def mask_overlay(frames: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Tint the GENERATE pixels of ``frames`` [F, H, W, 3] red."""
    out = frames.astype(np.float32)
    out[mask] = out[mask] * (1 - alpha) + GENERATE_TINT * alpha
    return out.round().astype(np.uint8)


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


def preview_frames(job) -> np.ndarray:
    """``preview.gif`` content: source | conditioning video with the GENERATE area tinted."""
    return side_by_side(job.source_frames(), mask_overlay(job.video, job.mask))
