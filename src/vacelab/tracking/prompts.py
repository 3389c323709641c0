"""Prompts of the objects to track, checked without torch: boxes and clicks in clip pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

# SAM 2 point labels: 0 negative click, 1 positive click, 2 / 3 top-left / bottom-right box corner.
NEGATIVE, POSITIVE, BOX_TOP_LEFT, BOX_BOTTOM_RIGHT = 0, 1, 2, 3


@dataclass(frozen=True)
class Prompt:
    """One object's prompt on one frame, in clip pixels: points with SAM 2 labels (a box is two points)."""

    frame: int
    coords: tuple[tuple[float, float], ...]
    labels: tuple[int, ...]


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


def box_prompt(entry, frames: int, height: int, width: int) -> Prompt:
    """``((x0, y0, x1, y1), frame)`` checked against the clip: one object's box as two corner points."""
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


def points_prompt(entry, frames: int, height: int, width: int) -> Prompt:
    """``([(x, y), ...], [label, ...], frame)`` checked against the clip: one object's clicks."""
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
