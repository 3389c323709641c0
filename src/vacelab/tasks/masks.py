"""Masks for inpaint/remove: boxes, polygons, growing, the feathered fill blend, lost-track checks.

All masks are bool [F, H, W], True = GENERATE, in the job's pixel space, built bit-packed
(:class:`~vacelab.media.PackedMask`: 1/8 of the bytes, 100 MB for 2001 frames at 480p, beside a 2.4 GB
clip). Morphology is plain numpy (cumulative sums: linear in the pixel count whatever the radius), per
distinct frame, inside the masked area's bounding box, so a static mask over 81 frames costs one frame.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..media import PackedMask, mask_counts


def bbox_mask(box: tuple, frames: int, size: tuple[int, int], field: str = "bbox") -> PackedMask:
    """A box ``(x0, y0, x1, y1)`` (x1, y1 exclusive, job pixels) on every frame (one frame's bits, read
    for every frame)."""
    x0, y0, x1, y1 = _box_pixels(box, size, field)
    frame = np.zeros((1, *size), bool)
    frame[:, y0:y1, x0:x1] = True
    bits = PackedMask.of(frame).bits
    return PackedMask(np.broadcast_to(bits, (frames, *bits.shape[1:])), size[1])


def keyed_bbox_mask(
    keys: list[tuple[int, tuple]], frames: int, size: tuple[int, int], field: str = "bbox"
) -> np.ndarray:
    """Boxes keyed to frames, ``[(frame, (x0, y0, x1, y1)), ...]`` (job pixels, distinct frames inside
    the clip): each corner moves linearly from one key to the next, and is held before the first key and
    after the last. Every frame's box is rounded to whole pixels as :func:`bbox_mask` rounds one box."""
    keys = sorted(keys, key=lambda key: key[0])
    for _, box in keys:
        _box_pixels(box, size, field)  # every key inside the frame: so is every box between two keys
    at = [frame for frame, _ in keys]
    corners = np.array([[float(v) for v in box] for _, box in keys])
    bits = _empty_bits(frames, size)
    for frame in range(frames):
        box = [np.interp(frame, at, corners[:, i]) for i in range(4)]
        x0, y0, x1, y1 = (int(round(float(v))) for v in box)
        row = np.zeros(size[1], bool)
        row[x0:x1] = True
        bits[frame, y0:y1] = np.packbits(row)
    return PackedMask(bits, size[1])


def _empty_bits(frames: int, size: tuple[int, int]) -> np.ndarray:
    """The bits of an empty :class:`~vacelab.media.PackedMask` of ``frames`` frames of ``size``."""
    return np.zeros((frames, size[0], -(-size[1] // 8)), np.uint8)


def _box_pixels(box: tuple, size: tuple[int, int], field: str) -> tuple[int, int, int, int]:
    """A box rounded to whole job pixels, refused unless it lies inside the frame and is not empty."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    height, width = size
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise InputError(
            f"must satisfy 0 <= X0 < X1 <= {width} and 0 <= Y0 < Y1 <= {height} "
            f"(job pixels, {width}x{height})",
            field=field,
            value=f"{x0},{y0},{x1},{y1}",
        )
    return x0, y0, x1, y1


def read_polygons(path: str | Path, frames: int) -> list[tuple[range, np.ndarray]]:
    """Read ``--polygon`` JSON: a list of ``[x, y]`` points (every frame), or a list of
    ``{"frames": [a, b], "points": [[x, y], ...]}`` (frames a..b inclusive). Returns (frames, points)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("no such file", field="polygon", value=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read ({exc.__class__.__name__})", field="polygon", value=path) from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"not valid JSON ({exc.msg}, line {exc.lineno})", field="polygon", value=path
        ) from None
    if not isinstance(data, list) or not data:
        raise InputError("expected a non-empty JSON list", field="polygon", value=path)
    if all(isinstance(item, dict) for item in data):
        shapes = []
        for i, item in enumerate(data):
            span = item.get("frames")
            if (
                not isinstance(span, list)
                or len(span) != 2
                or not all(isinstance(v, int) for v in span)
                or not 0 <= span[0] <= span[1] < frames
            ):
                raise InputError(
                    f"item {i}: 'frames' must be [a, b] with 0 <= a <= b < {frames}, got {span!r}",
                    field="polygon",
                    value=path,
                )
            shapes.append((range(span[0], span[1] + 1), _points(item.get("points"), path, f"item {i}: ")))
        return shapes
    return [(range(frames), _points(data, path))]


def _points(value, path: Path, item: str = "") -> np.ndarray:
    try:
        points = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        points = None
    if points is None or points.ndim != 2 or points.shape[1] != 2 or len(points) < 3:
        raise InputError(
            f"{item}'points' must be a list of at least 3 [x, y] pairs", field="polygon", value=path
        )
    if not np.isfinite(points).all():
        raise InputError(f"{item}points must be finite numbers", field="polygon", value=path)
    return points


def polygon_mask(shapes: list[tuple[range, np.ndarray]], frames: int, size: tuple[int, int]) -> PackedMask:
    """Rasterise polygons (job pixel space) onto their frames."""
    from PIL import Image, ImageDraw

    bits = _empty_bits(frames, size)
    for span, points in shapes:
        canvas = Image.new("1", (size[1], size[0]), 0)
        ImageDraw.Draw(canvas).polygon([tuple(p) for p in points.tolist()], fill=1, outline=1)
        drawn = np.asarray(canvas, dtype=bool)
        if not drawn.any():
            raise InputError(
                f"a polygon lies entirely outside the {size[1]}x{size[0]} frame", field="polygon"
            )
        bits[span.start : span.stop] |= np.packbits(drawn, axis=-1)
    return PackedMask(bits, size[1])


# ------------------------------------------------------------------------------------------- morphology
def _dilate_axis(mask: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """True where any pixel within ``radius`` along ``axis`` is True (running sum, any radius in O(n))."""
    if radius <= 0:
        return mask
    n = mask.shape[axis]
    counts = np.cumsum(mask, axis=axis, dtype=np.int32)
    counts = np.concatenate([np.zeros_like(np.take(counts, [0], axis=axis)), counts], axis=axis)
    idx = np.arange(n)
    upper = np.take(counts, np.minimum(idx + radius + 1, n), axis=axis)
    lower = np.take(counts, np.maximum(idx - radius, 0), axis=axis)
    return upper > lower


def dilate_disk(image: np.ndarray, radius: int) -> np.ndarray:
    """Dilate a 2-D bool image by a disk of ``radius`` pixels (rows of the disk as 1-D dilations)."""
    height = image.shape[0]
    rows: dict[int, np.ndarray] = {}
    out = np.zeros_like(image)
    for dy in range(-radius, radius + 1):
        half = int(np.sqrt(radius * radius - dy * dy))
        if half not in rows:
            rows[half] = _dilate_axis(image, half, axis=1)
        row = rows[half]
        if dy >= 0:
            out[dy:] |= row[: height - dy]
        else:
            out[:dy] |= row[-dy:]
    return out


def _per_frame(mask: PackedMask, margin: int, fn) -> tuple[tuple[int, int, int, int], list] | None:
    """Apply ``fn`` to each distinct frame, cropped to the masked bounding box plus ``margin``: results
    one per frame (a frame equal to the one before shares its result)."""
    results = []
    previous = None
    any_rows = mask.bits.any(axis=(0, 2))
    if not any_rows.any():
        return None
    any_cols = np.unpackbits(np.bitwise_or.reduce(mask.bits, axis=(0, 1)), count=mask.shape[2]).view(bool)
    height, width = mask.shape[1:]
    y0 = max(0, int(np.argmax(any_rows)) - margin)
    y1 = min(height, height - int(np.argmax(any_rows[::-1])) + margin)
    x0 = max(0, int(np.argmax(any_cols)) - margin)
    x1 = min(width, width - int(np.argmax(any_cols[::-1])) + margin)
    for i, bits in enumerate(mask.bits):
        if previous is not None and np.array_equal(bits, previous[0]):
            results.append(previous[1])
            continue
        result = fn(mask[i][y0:y1, x0:x1])
        previous = (bits, result)
        results.append(result)
    return (y0, y1, x0, x1), results


def grow(mask: PackedMask | np.ndarray, px: int) -> PackedMask | np.ndarray:
    """Dilate every frame of ``mask`` by a disk of ``px`` pixels (packed or not, as ``mask`` is)."""
    if px < 0:
        raise InputError("must be 0 or more pixels", field="grow", value=px)
    if px > max(mask.shape[1:]):
        raise InputError(f"must be at most the frame's larger side ({max(mask.shape[1:])} px)", field="grow",
                         value=px)  # fmt: skip
    if px == 0:
        return mask
    packed = mask if isinstance(mask, PackedMask) else PackedMask.of(mask)
    found = _per_frame(packed, px, lambda crop: dilate_disk(crop, px))
    if found is None:
        return mask
    (y0, y1, x0, x1), crops = found
    out = np.empty(packed.bits.shape, np.uint8)
    previous = None
    for i, crop in enumerate(crops):
        if crop is not previous:  # a frame equal to the one before: its bits again
            frame = packed[i]
            frame[y0:y1, x0:x1] = crop
            bits, previous = np.packbits(frame, axis=-1), crop
        out[i] = bits
    grown = PackedMask(out, packed.shape[2])
    return grown if packed is mask else np.asarray(grown)


def check_feather(px: int) -> int:
    """``px`` of :func:`feather_alpha`, refused unless 0 or more."""
    if px < 0:
        raise InputError("must be 0 or more pixels", field="fill_feather", value=px)
    return px


def feather_alpha(mask: np.ndarray, px: int) -> np.ndarray | None:
    """Weight of the fill inside the GENERATE area of ``mask`` (bool [F, H, W]: a few frames at a time,
    float32 is 4 bytes a pixel): rises from ``1/(px+1)`` at the mask's edge to 1 at ``px`` pixels inside
    it (chessboard distance); 0 outside. Each frame's weights are its own. None when ``px`` is 0."""
    if check_feather(px) == 0:
        return None

    def inner_depth(crop: np.ndarray) -> np.ndarray:
        depth = crop.astype(np.uint8)
        inside = crop
        for _ in range(px):
            inside = inside & ~_dilate_axis(_dilate_axis(~inside, 1, axis=0), 1, axis=1)
            depth += inside
        return depth

    alpha = np.zeros(mask.shape, np.float32)
    found = _per_frame(PackedMask.of(mask), 1, inner_depth)
    if found is not None:
        (y0, y1, x0, x1), depths = found
        for i, depth in enumerate(depths):
            alpha[i, y0:y1, x0:x1] = depth / np.float32(px + 1)
    return alpha


def lost_track_notes(mask: PackedMask | np.ndarray, jump: float = 2.0) -> list[str]:
    """Warnings for frames where the mask vanishes or its area jumps by more than ``jump``x."""
    area = mask_counts(mask)
    if not area.any():
        return []
    notes = []
    empty = np.flatnonzero(area == 0)
    if len(empty):
        notes.append(f"warning: the mask is empty on frames {frame_ranges(empty)} (lost track?)")
    a, b = area[:-1].astype(np.float64), area[1:].astype(np.float64)
    both = (a > 0) & (b > 0)
    jumps = np.flatnonzero(both & ((b > a * jump) | (a > b * jump))) + 1
    if len(jumps):
        notes.append(
            f"warning: the mask area jumps by more than {jump:g}x at frames {frame_ranges(jumps)} "
            "(lost track?)"
        )
    return notes


def frame_ranges(frames: np.ndarray) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3, 7"``."""
    parts, start = [], None
    for i, f in enumerate(frames):
        if start is None:
            start = f
        if i + 1 == len(frames) or frames[i + 1] != f + 1:
            parts.append(f"{start}" if start == f else f"{start}-{f}")
            start = None
    return ", ".join(parts)
