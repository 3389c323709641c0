"""Paste-back of kept pixels and colour matching of the generated region (numpy only).

Official VACE returns the raw model output, whose KEEP areas drift in colour and detail. vacelab's
composite makes every KEEP pixel exactly the source's and hides the seam on the GENERATE side only:

- Each GENERATE pixel within ``feather`` px (Euclidean) of a KEEP pixel of its frame gets the model's
  colour error at the nearby KEEP pixels (``source - output``, averaged over a box of radius
  ``feather``) added back, with weight ``1 - d / (feather + 1)`` falling with its distance ``d``. At the
  border the generated content therefore continues the kept pixels, and from ``feather + 1`` px inward
  it is the model's output untouched. KEEP pixels are copied, never blended.
- :func:`color_match` shifts the generated region's mean Lab colour onto that of the kept pixels near it.

Speed: everything is computed on the bounding box of the GENERATE area (grown by the reach of the
operation), never on whole frames; box sums are exact integer integral images read at the band pixels
only; Lab conversion (:mod:`vacelab.colors`) linearises through a 256-entry table.
"""

from __future__ import annotations

import numpy as np

from ..colors import _CHUNK, _lab_to_rgb, _rgb_to_lab, lab_to_rgb, rgb_to_lab  # noqa: F401 (re-exported)

MAX_FEATHER = 16


def _distance_to_keep(keep: np.ndarray, limit: int) -> np.ndarray:
    """Euclidean distance of each pixel of one frame [H, W] to its nearest KEEP pixel, capped at ``limit``."""
    height, width = keep.shape
    cap = np.float32(limit + 1)
    idx = np.broadcast_to(np.arange(width, dtype=np.float32), keep.shape)
    left = np.maximum.accumulate(np.where(keep, idx, -np.inf), axis=1)
    right = np.minimum.accumulate(np.where(keep, idx, np.inf)[:, ::-1], axis=1)[:, ::-1]
    row = np.minimum(np.minimum(idx - left, right - idx), cap)  # distance along the row
    squared = np.full((height + 2 * limit, width), cap**2, np.float32)  # rows beyond the frame: cap
    squared[limit : limit + height] = row**2
    best = squared[limit : limit + height].copy()
    term = np.empty_like(best)
    for offset in range(1, limit + 1):  # combine rows: d^2 = min_j row[y + j]^2 + j^2
        for start in (limit - offset, limit + offset):
            np.add(squared[start : start + height], np.float32(offset**2), out=term)
            np.minimum(best, term, out=best)
    return np.minimum(np.sqrt(best), cap)


def _box_sums_at(values: np.ndarray, ys: np.ndarray, xs: np.ndarray, radius: int) -> np.ndarray:
    """Sums of [H, W, C] ``values`` over the (2r+1)^2 boxes around the pixels (ys, xs) (zero outside).

    One integral image (integer sums stay exact), read at the wanted pixels only.
    """
    height, width, channels = values.shape
    integral = np.zeros((height + 2 * radius + 1, width + 2 * radius + 1, channels), values.dtype)
    integral[radius + 1 : radius + 1 + height, radius + 1 : radius + 1 + width] = values
    np.cumsum(integral, axis=0, out=integral)
    np.cumsum(integral, axis=1, out=integral)
    size = 2 * radius + 1
    return (
        integral[ys + size, xs + size] - integral[ys, xs + size] - integral[ys + size, xs] + integral[ys, xs]
    )


def _bounds(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    """The bounding box of the True pixels of [..., H, W] (over all leading axes), grown by ``margin``."""
    flat = mask.reshape(-1, *mask.shape[-2:]).any(axis=0)
    rows, cols = np.flatnonzero(flat.any(axis=1)), np.flatnonzero(flat.any(axis=0))
    height, width = flat.shape
    return (
        slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, height)),
        slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, width)),
    )


def _crop_weights(mask: np.ndarray, feather: int) -> tuple[slice, slice, np.ndarray] | None:
    """Feather weights of one frame [H, W] on the box that holds every weight other than ``mask``'s own.

    None where the frame has no border between KEEP and GENERATE (its weights are the mask itself).
    """
    keep = ~mask
    if keep.all() or not keep.any():
        return None
    rows, cols = _bounds(mask, feather + 1)  # a KEEP pixel within `feather` of GENERATE lies inside
    distance = _distance_to_keep(keep[rows, cols], feather)
    weights = np.where(mask[rows, cols], np.minimum(distance / (feather + 1), 1.0), 0.0).astype(np.float32)
    return rows, cols, weights


def _frame_keys(mask: np.ndarray) -> list[bytes]:
    """One hashable key per frame of [F, H, W]: masks repeat from frame to frame, their work need not."""
    return [row.tobytes() for row in np.packbits(mask.reshape(len(mask), -1), axis=1)]


def feather_weights(mask: np.ndarray, feather: int) -> np.ndarray:
    """Weight of the model's own output per pixel [F, H, W] in [0, 1]: 0 on KEEP, 1 beyond the band."""
    out = mask.astype(np.float32)
    if feather <= 0:
        return out
    cache: dict[bytes, tuple | None] = {}
    for f, key in enumerate(_frame_keys(mask)):
        if key not in cache:
            cache[key] = _crop_weights(mask[f], feather)
        if cache[key] is not None:
            rows, cols, weights = cache[key]
            out[f, rows, cols] = weights
    return out


def composite(
    output: np.ndarray, source: np.ndarray, mask: np.ndarray, feather: int = MAX_FEATHER
) -> np.ndarray:
    """``output`` with every KEEP pixel exactly ``source``, and a seam band of ``feather`` px inside GENERATE.

    ``output`` / ``source`` uint8 [F, H, W, 3], ``mask`` bool [F, H, W] (True = GENERATE).
    """
    if not 0 <= feather <= MAX_FEATHER:
        raise ValueError(f"feather {feather}: must be 0..{MAX_FEATHER} px")
    result = np.array(source, dtype=np.uint8, copy=True)
    cache: dict[bytes, tuple | None] = {}
    for f, key in enumerate(_frame_keys(mask)):
        if not mask[f].any():
            continue
        rows, cols = _bounds(mask[f], 0)
        np.copyto(result[f, rows, cols], output[f, rows, cols], where=mask[f, rows, cols, None])
        if feather == 0:
            continue
        if key not in cache:
            cache[key] = _crop_weights(mask[f], feather)
        if cache[key] is None:
            continue
        rows, cols, weights = cache[key]  # holds every box of radius `feather` around the band
        ys, xs = np.nonzero(mask[f, rows, cols] & (weights < 1.0))
        if not len(ys):
            continue
        keep = ~mask[f, rows, cols]
        out_f = output[f, rows, cols]
        sums = np.empty((*keep.shape, 4), np.int32)  # the model's error on KEEP (exact integers), KEEP count
        np.subtract(source[f, rows, cols], out_f, out=sums[..., :3], dtype=np.int32)
        sums[..., :3] *= keep[..., None]
        sums[..., 3] = keep
        box = _box_sums_at(sums, ys, xs, feather)
        mean_error = box[:, :3] / np.maximum(box[:, 3], 1.0)[:, None]
        fixed = out_f[ys, xs] + (1.0 - weights[ys, xs])[:, None] * mean_error
        result[f, rows, cols][ys, xs] = np.clip(np.rint(fixed), 0, 255).astype(np.uint8)
    return result


# ------------------------------------------------------------------------------------------ colour match
def _dilate(mask: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """True where a True pixel of ``mask`` lies within ``radius`` along ``axis`` (nothing beyond the ends)."""
    if radius <= 0:
        return mask

    def along(start, stop):
        return (slice(None),) * axis + (slice(start, stop),)

    length = mask.shape[axis]
    shape = list(mask.shape)
    shape[axis] += 2 * radius
    reach = np.zeros(shape, bool)  # ``mask`` with `radius` False entries on each side
    reach[along(radius, radius + length)] = mask
    covered = 1  # doubling: reach[j] = any of the `covered` entries ending at j, until 2r + 1
    while covered < 2 * radius + 1:
        step = min(covered, 2 * radius + 1 - covered)
        reach[along(step, None)] |= reach[along(None, -step)]  # numpy buffers overlapping operands
        covered += step
    return reach[along(2 * radius, None)]


def _near(mask: np.ndarray, radius: int, frames: int) -> np.ndarray:
    """Pixels within a box of ``radius`` px and ``frames`` frames of a True pixel of ``mask`` [F, H, W]."""
    near = _dilate(mask, frames, 0)
    return _dilate(_dilate(near, radius, 1), radius, 2)


def _mean_lab(pixels: np.ndarray, most: int = 1 << 20) -> np.ndarray:
    """Mean Lab colour of [N, 3] uint8 pixels (an even subsample of at most ``most`` of them)."""
    step = max(1, len(pixels) // most)
    return rgb_to_lab(pixels[::step]).mean(axis=0)


def color_match(
    output: np.ndarray,
    source: np.ndarray,
    mask: np.ndarray,
    *,
    ring: int = 8,
    ring_frames: int = 2,
    apply_to: np.ndarray | None = None,
) -> tuple[np.ndarray, dict]:
    """Shift the GENERATE region's mean colour (CIE Lab) onto that of the source's KEEP pixels around it.

    "Around" = within ``ring`` px in the same frame or ``ring_frames`` frames in time (so extension, whose
    kept part is whole frames, is matched to the last kept frames). The means compared are those of the
    kept pixels near GENERATE and of the generated pixels near KEEP (two thin bands facing each other
    across the border); one shift per Lab channel is applied to every GENERATE pixel of the clip (no
    flicker). Contrast (std) is not matched: two bands on either side of a border differ in extent and
    content, which biases a std ratio far more than it biases the means. Returns the frames (KEEP
    pixels untouched) and what was done, for ``run.json``. ``apply_to`` (bool [F, H, W], default ``mask``)
    picks the pixels shifted, e.g. a long job's window also shifts the generated pixels of its kept head.
    """
    skipped = {"applied": False, "reason": "no kept pixels next to the generated region"}
    if not mask.any() or mask.all():
        return output.copy(), skipped
    # both bands lie within `ring` px of GENERATE: work on that box only (it reaches every box of `ring`)
    box = (slice(None), *_bounds(mask, ring))
    crop = mask[box]
    kept = ~crop & _near(crop, ring, ring_frames)
    generated = crop & _near(~crop, ring, ring_frames)
    if not kept.any() or not generated.any():
        return output.copy(), skipped
    shift = _mean_lab(source[box][kept]) - _mean_lab(output[box][generated])
    result = output.copy()
    target = mask if apply_to is None else apply_to
    if target.any():
        box = (slice(None), *_bounds(target, 0))
        pixels = target[box]
        result[box][pixels] = lab_to_rgb(rgb_to_lab(output[box][pixels]) + shift)
    info = {"applied": True, "lab_shift": [round(float(v), 3) for v in shift]}
    return result, info
