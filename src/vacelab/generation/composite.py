"""Paste-back of kept pixels and colour matching of the generated region (numpy only).

Official VACE returns the raw model output, whose KEEP areas drift in colour and detail. vacelab's
composite makes every KEEP pixel exactly the source's and hides the seam on the GENERATE side only:

- Each GENERATE pixel within ``feather`` px (Euclidean) of a KEEP pixel of its frame gets the model's
  colour error at the nearby KEEP pixels (``source - output``, averaged over a box of radius
  ``feather``) added back, with weight ``1 - d / (feather + 1)`` falling with its distance ``d``. At the
  border the generated content therefore continues the kept pixels, and from ``feather + 1`` px inward
  it is the model's output untouched. KEEP pixels are copied, never blended.
- :func:`color_match` shifts the generated region's mean Lab colour onto that of the kept pixels near it.
"""

from __future__ import annotations

import numpy as np

MAX_FEATHER = 16


def _distance_to_keep(keep: np.ndarray, limit: int) -> np.ndarray:
    """Euclidean distance of each pixel of one frame [H, W] to its nearest KEEP pixel, capped at ``limit``."""
    height, width = keep.shape
    cap = np.float32(limit + 1)
    idx = np.broadcast_to(np.arange(width, dtype=np.float32), keep.shape)
    left = np.maximum.accumulate(np.where(keep, idx, -np.inf), axis=1)
    right = np.minimum.accumulate(np.where(keep, idx, np.inf)[:, ::-1], axis=1)[:, ::-1]
    row = np.minimum(np.minimum(idx - left, right - idx), cap)  # distance along the row
    best = row**2
    for offset in range(1, limit + 1):  # combine rows: d^2 = min_j row[y + j]^2 + j^2
        shifted = np.full_like(row, cap)
        shifted[offset:] = row[:-offset]
        best = np.minimum(best, shifted**2 + offset**2)
        shifted = np.full_like(row, cap)
        shifted[:-offset] = row[offset:]
        best = np.minimum(best, shifted**2 + offset**2)
    return np.minimum(np.sqrt(best), cap)


def _box_sum(values: np.ndarray, radius: int) -> np.ndarray:
    """Sum over the (2r+1)^2 box around each pixel of [H, W, ...] (zero outside), by an integral image."""
    pad = [(radius + 1, radius)] + [(radius + 1, radius)] + [(0, 0)] * (values.ndim - 2)
    integral = np.pad(values, pad).cumsum(axis=0).cumsum(axis=1)
    size = 2 * radius + 1
    return (
        integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size] + integral[:-size, :-size]
    )


def _crop_around(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    """The bounding box of the True pixels of one frame, grown by ``margin`` and clipped to the frame."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    height, width = mask.shape
    return (
        slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, height)),
        slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, width)),
    )


def _frame_weights(mask: np.ndarray, feather: int) -> np.ndarray:
    """:func:`feather_weights` of one frame [H, W]."""
    keep = ~mask
    if keep.all() or not keep.any():
        return mask.astype(np.float32)
    rows, cols = _crop_around(mask, feather + 1)  # a KEEP pixel within `feather` of GENERATE lies inside
    weights = mask.astype(np.float32)
    distance = _distance_to_keep(keep[rows, cols], feather)
    weights[rows, cols] = np.where(mask[rows, cols], np.minimum(distance / (feather + 1), 1.0), 0.0)
    return weights


def feather_weights(mask: np.ndarray, feather: int) -> np.ndarray:
    """Weight of the model's own output per pixel [F, H, W] in [0, 1]: 0 on KEEP, 1 beyond the band."""
    if feather <= 0:
        return mask.astype(np.float32)
    cache: dict[bytes, np.ndarray] = {}  # masks repeat from frame to frame: one distance transform each
    out = np.empty(mask.shape, np.float32)
    for f in range(mask.shape[0]):
        key = np.packbits(mask[f]).tobytes()
        if key not in cache:
            cache[key] = _frame_weights(mask[f], feather)
        out[f] = cache[key]
    return out


def composite(
    output: np.ndarray, source: np.ndarray, mask: np.ndarray, feather: int = MAX_FEATHER
) -> np.ndarray:
    """``output`` with every KEEP pixel exactly ``source``, and a seam band of ``feather`` px inside GENERATE.

    ``output`` / ``source`` uint8 [F, H, W, 3], ``mask`` bool [F, H, W] (True = GENERATE).
    """
    if not 0 <= feather <= MAX_FEATHER:
        raise ValueError(f"feather {feather}: must be 0..{MAX_FEATHER} px")
    result = np.where(mask[..., None], output, source)
    if feather == 0:
        return result
    weights = feather_weights(mask, feather)
    for f in range(mask.shape[0]):
        band = mask[f] & (weights[f] < 1.0)
        if not band.any():
            continue
        rows, cols = _crop_around(band, feather)  # every box of radius `feather` around the band
        keep = (~mask[f, rows, cols]).astype(np.float64)
        out_f = output[f, rows, cols].astype(np.float64)
        error = (source[f, rows, cols] - out_f) * keep[..., None]
        mean_error = _box_sum(error, feather) / np.maximum(_box_sum(keep, feather), 1.0)[..., None]
        fixed = out_f + (1.0 - weights[f, rows, cols])[..., None] * mean_error
        inside = band[rows, cols]
        result[f, rows, cols][inside] = np.clip(np.rint(fixed[inside]), 0, 255).astype(np.uint8)
    return result


# ------------------------------------------------------------------------------------------ colour match
_RGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]],
    np.float32,
)
_WHITE = _RGB_TO_XYZ.sum(axis=1)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB uint8 [..., 3] -> CIE Lab (D65) float32 [..., 3]."""
    c = rgb.astype(np.float32) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    t = (linear @ _RGB_TO_XYZ.T) / _WHITE
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIE Lab (D65) [..., 3] -> sRGB uint8 [..., 3] (out-of-gamut values clipped)."""
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], -1)
    t = np.where(f > 6 / 29, f**3, 3 * (6 / 29) ** 2 * (f - 4 / 29)) * _WHITE
    linear = np.clip(t @ np.linalg.inv(_RGB_TO_XYZ).T, 0.0, 1.0)
    c = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.clip(np.rint(c * 255), 0, 255).astype(np.uint8)


def _near(mask: np.ndarray, radius: int, frames: int) -> np.ndarray:
    """Pixels within a box of ``radius`` px and ``frames`` frames of a True pixel of ``mask`` [F, H, W]."""
    cache: dict[bytes, np.ndarray] = {}
    spatial = np.empty_like(mask)
    for f in range(mask.shape[0]):
        key = np.packbits(mask[f]).tobytes()
        if key not in cache:
            cache[key] = _box_sum(mask[f].astype(np.int32), radius) > 0
        spatial[f] = cache[key]
    near = spatial.copy()
    for offset in range(1, frames + 1):
        near[offset:] |= spatial[:-offset]
        near[:-offset] |= spatial[offset:]
    return near


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
    kept = ~mask & _near(mask, ring, ring_frames)
    generated = mask & _near(~mask, ring, ring_frames)
    if not kept.any() or not generated.any():
        return output.copy(), {"applied": False, "reason": "no kept pixels next to the generated region"}
    shift = _mean_lab(source[kept]) - _mean_lab(output[generated])
    result = output.copy()
    target = mask if apply_to is None else apply_to
    result[target] = lab_to_rgb(rgb_to_lab(output[target]) + shift)
    info = {"applied": True, "lab_shift": [round(float(v), 3) for v in shift]}
    return result, info
