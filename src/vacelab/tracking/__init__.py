"""Masks that follow an object through a clip: SAM 2 from a box or clicks, SAM 3 from a phrase.

``track_mask`` is the whole public surface. Prompts are checked here (no torch import, so the prepare
path stays light); the models run in :mod:`vacelab.tracking._sam2` and :mod:`vacelab.tracking._sam3`,
imported only when a mask is tracked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

DEFAULT_MODEL = "facebook/sam2.1-hiera-tiny"
DEFAULT_TEXT_MODEL = "facebook/sam3"
DTYPES = ("auto", "bf16", "fp16", "fp32")

# SAM 2 point labels: 0 negative click, 1 positive click, 2 / 3 top-left / bottom-right box corner.
NEGATIVE, POSITIVE, BOX_TOP_LEFT, BOX_BOTTOM_RIGHT = 0, 1, 2, 3

Progress = bool | Callable[[int, int], None] | None


@dataclass(frozen=True)
class Prompt:
    """One object's prompt on one frame, in clip pixels: points with SAM 2 labels (a box is two points)."""

    frame: int
    coords: tuple[tuple[float, float], ...]
    labels: tuple[int, ...]


def track_mask(
    video: np.ndarray,
    *,
    boxes: Sequence[tuple[Sequence[float], int]] | None = None,
    points: Sequence[tuple[Sequence[Sequence[float]], Sequence[int], int]] | None = None,
    text: str | None = None,
    model: str | None = None,
    dtype: str = "auto",
    device: str = "auto",
    progress: Progress = None,
) -> np.ndarray:
    """Track objects through ``video`` and return their merged mask, bool ``[F, H, W]`` (True = object).

    - ``video``: uint8 ``[F, H, W, 3]``; all coordinates are pixels of these frames (x right, y down).
    - ``boxes``: ``[((x0, y0, x1, y1), frame), ...]``; each box is one object, prompted on ``frame``.
    - ``points``: ``[([(x, y), ...], [label, ...], frame), ...]``; each entry is one object; label 1 is a
      positive click, 0 a negative one; at least one positive click per object.
    - ``text``: a phrase ("the red car"): every instance SAM 3 finds is tracked; not combinable with
      boxes/points.
    - ``model``: hub id or local folder for ``from_pretrained``; default ``facebook/sam2.1-hiera-tiny``
      (SAM 2 video) for boxes/points and ``facebook/sam3`` (SAM 3 video) for text.
    - ``dtype``: ``auto`` (bf16 on CUDA, fp32 on CPU), ``bf16``, ``fp16`` or ``fp32``.
    - ``device``: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
    - ``progress``: ``None``/``True`` a tqdm bar over frames, ``False`` silent, or a callable
      ``progress(done, total)`` called after each frame.

    Prompts are propagated forward and backward from the earliest prompted frame through the whole clip;
    all objects are merged into one mask. Bad prompts, a missing model or unknown options raise
    :class:`~vacelab.errors.InputError` with one line.
    """
    video = _check_video(video)
    frames, height, width = video.shape[:3]
    prompts = [_box_prompt(b, frames, height, width) for b in boxes or ()]
    prompts += [_points_prompt(p, frames, height, width) for p in points or ()]
    if dtype not in DTYPES:
        raise InputError(f"tracking dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if text is not None:
        if not text.strip():
            raise InputError(
                "--segment: the phrase is empty; name the object to track, e.g. --segment 'red car'"
            )
        if prompts:
            raise InputError(
                "--segment cannot be combined with --track-box/--track-points (different models)"
            )
    elif not prompts:
        raise InputError(
            "nothing to track: give a box (--track-box), clicks (--track-points) or a phrase (--segment)"
        )

    from ._runtime import ProgressSteps, resolve_device_dtype

    torch_device, torch_dtype = resolve_device_dtype(device, dtype)
    with ProgressSteps(progress, frames) as steps:
        if text is not None:
            from ._sam3 import track_text

            return track_text(
                video, text.strip(), model or DEFAULT_TEXT_MODEL, torch_device, torch_dtype, steps
            )
        from ._sam2 import track_prompts

        return track_prompts(video, prompts, model or DEFAULT_MODEL, torch_device, torch_dtype, steps)


# ------------------------------------------------------------------------------------------- validation
def _check_video(video) -> np.ndarray:
    video = np.asarray(video)
    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3 or min(video.shape[:3]) < 1:
        raise InputError(f"tracking needs a uint8 video [F, H, W, 3], got {video.dtype} {list(video.shape)}")
    return video


def _check_frame(frame, frames: int, what: str) -> int:
    if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)):
        raise InputError(f"{what}: frame {frame!r} is not a whole number")
    if not 0 <= frame < frames:
        raise InputError(f"{what}: frame {frame} is outside the clip (frames 0..{frames - 1})")
    return int(frame)


def _numbers(values, count: int | None, what: str) -> tuple[float, ...]:
    try:
        numbers = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise InputError(f"{what}: {values!r} are not numbers") from None
    if (count is not None and len(numbers) != count) or not np.all(np.isfinite(numbers)):
        raise InputError(f"{what}: expected {count} finite numbers, got {values!r}")
    return numbers


def _box_prompt(entry, frames: int, height: int, width: int) -> Prompt:
    try:
        box, frame = entry
    except (TypeError, ValueError):
        raise InputError(f"track box {entry!r} is not ((x0, y0, x1, y1), frame)") from None
    x0, y0, x1, y1 = _numbers(box, 4, "track box")
    what = f"track box {x0:g},{y0:g},{x1:g},{y1:g}"
    frame = _check_frame(frame, frames, what)
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise InputError(
            f"{what}: needs 0 <= x0 < x1 <= {width} and 0 <= y0 < y1 <= {height} (the {width}x{height} frame)"
        )
    return Prompt(frame, ((x0, y0), (x1, y1)), (BOX_TOP_LEFT, BOX_BOTTOM_RIGHT))


def _points_prompt(entry, frames: int, height: int, width: int) -> Prompt:
    try:
        coords, labels, frame = entry
        coords = [_numbers(xy, 2, "track points") for xy in coords]
        labels = [int(label) for label in labels]
    except (TypeError, ValueError):
        raise InputError(f"track points {entry!r} are not ([(x, y), ...], [label, ...], frame)") from None
    what = "track points " + ",".join(f"{x:g},{y:g}" for x, y in coords)
    frame = _check_frame(frame, frames, what)
    if not coords or len(coords) != len(labels):
        raise InputError(
            f"{what}: need one label per point, got {len(coords)} points and {len(labels)} labels"
        )
    if not set(labels) <= {NEGATIVE, POSITIVE} or POSITIVE not in labels:
        raise InputError(f"{what}: labels must be 1 (positive) or 0 (negative), with at least one positive")
    for x, y in coords:
        if not (0 <= x <= width and 0 <= y <= height):
            raise InputError(f"{what}: point {x:g},{y:g} lies outside the {width}x{height} frame")
    return Prompt(frame, tuple(coords), tuple(labels))
