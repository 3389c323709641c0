"""Video quality measures for experiment reports (numpy only).

Every function takes uint8 (or float, 0-255 scale) videos [F, H, W, 3] (or single frames [H, W, 3]) and,
for the masked variants, a bool region [F, H, W] (or [H, W]) saying which pixels count.

- :func:`psnr` / :func:`masked_psnr`: ``10 log10(255^2 / MSE)`` over all channels of the pixels counted;
  ``inf`` for identical inputs, ``nan`` for an empty region.
- :func:`ssim` / :func:`masked_ssim`: SSIM (Wang et al. 2004) on luminance (BT.601 Y), Gaussian window
  sigma 1.5 truncated at 11x11, K1 = 0.01, K2 = 0.03, L = 255, computed frame by frame. The local means,
  variances and covariance are Gaussian-weighted over the pixels of the region only (the window is
  renormalised over them), so pixels outside the region never influence the score; the score is the
  mean of the SSIM map over the region. For a full region this is the standard Gaussian SSIM, with the
  window renormalised at the image border instead of padded.
- :func:`flicker`: the mean absolute change (0-255, averaged over RGB) from each frame to the next, over
  the pixels of the region in both frames; ``nan`` when no pixel is in the region in two consecutive
  frames.
"""

from __future__ import annotations

import math

import numpy as np

PEAK = 255.0
SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # 11x11 window
SSIM_K1, SSIM_K2 = 0.01, 0.03
LUMA = np.array([0.299, 0.587, 0.114])


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"videos differ in shape: {a.shape} vs {b.shape}")
    return a, b


def _videos_and_region(a, b, mask) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two equal-shape videos [F, H, W, C] (a single frame gets a time axis) and the bool region [F, H, W]."""
    a, b = _pair(a, b)
    if a.ndim == 3:
        a, b = a[None], b[None]
        mask = None if mask is None else np.asarray(mask)[None]
    return a, b, _region(mask, a.shape[:-1])


def _region(mask, shape: tuple[int, ...]) -> np.ndarray:
    """The region as bool of the pixel shape (the video shape without its channel axis)."""
    region = np.ones(shape, bool) if mask is None else np.asarray(mask, bool)
    if region.shape != shape:
        raise ValueError(f"mask shape {region.shape} does not match the pixels {shape}")
    return region


# ------------------------------------------------------------------------------------------------- PSNR
def psnr(a, b) -> float:
    """PSNR in dB of two videos or images of equal shape (``inf`` when identical)."""
    return masked_psnr(a, b, None)


def masked_psnr(a, b, mask) -> float:
    """PSNR in dB over the pixels where ``mask`` is True (all channels); ``nan`` for an empty mask."""
    a, b, region = _videos_and_region(a, b, mask)
    count = int(np.count_nonzero(region)) * a.shape[-1]
    if not count:
        return math.nan
    total = 0.0
    for i in range(a.shape[0]):  # frame by frame: no full-video float copies
        squared = _difference(a[i], b[i]) ** 2
        total += float(squared.sum(axis=-1)[region[i]].sum())
    mse = total / count
    return math.inf if mse == 0 else 10.0 * math.log10(PEAK * PEAK / mse)


def _difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a - b`` exactly: in int32 for integer frames, float64 otherwise."""
    kind = (
        np.int32 if np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer) else np.float64
    )
    return a.astype(kind) - b.astype(kind)


# ------------------------------------------------------------------------------------------------- SSIM
def _gaussian() -> np.ndarray:
    x = np.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=np.float64)
    kernel = np.exp(-(x * x) / (2 * SSIM_SIGMA**2))
    return kernel / kernel.sum()


def _blur(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable Gaussian filter of a 2-D float array, zero outside the image."""
    r = len(kernel) // 2
    out = image
    for axis in (0, 1):
        padded = np.pad(out, [(r, r) if ax == axis else (0, 0) for ax in range(2)])
        size = out.shape[axis]
        acc = np.zeros_like(out)
        for k, weight in enumerate(kernel):
            acc += weight * (padded[k : k + size] if axis == 0 else padded[:, k : k + size])
        out = acc
    return out


def _luma(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame, np.float64)
    return frame @ LUMA if frame.ndim == 3 else frame


def ssim_map(a, b, mask=None) -> np.ndarray:
    """The SSIM map of two frames [H, W, 3] (or luminance [H, W]) over ``mask`` [H, W] (nan outside it)."""
    x, y = _luma(a), _luma(b)
    if x.shape != y.shape:
        raise ValueError(f"frames differ in shape: {x.shape} vs {y.shape}")
    region = _region(mask, x.shape).astype(np.float64)
    kernel = _gaussian()
    weight = _blur(region, kernel)
    inside = (region > 0) & (weight > 0)
    norm = np.where(inside, weight, 1.0)
    mean_x, mean_y = _blur(x * region, kernel) / norm, _blur(y * region, kernel) / norm
    var_x = _blur(x * x * region, kernel) / norm - mean_x**2
    var_y = _blur(y * y * region, kernel) / norm - mean_y**2
    cov = _blur(x * y * region, kernel) / norm - mean_x * mean_y
    c1, c2 = (SSIM_K1 * PEAK) ** 2, (SSIM_K2 * PEAK) ** 2
    value = ((2 * mean_x * mean_y + c1) * (2 * cov + c2)) / (
        (mean_x**2 + mean_y**2 + c1) * (var_x + var_y + c2)
    )
    return np.where(inside, value, np.nan)


def ssim(a, b) -> float:
    """Mean SSIM of two videos [F, H, W, 3] or frames [H, W, 3] (1.0 when identical)."""
    return masked_ssim(a, b, None)


def masked_ssim(a, b, mask) -> float:
    """Mean SSIM over the pixels where ``mask`` is True; pixels outside it never enter the statistics."""
    a, b, region = _videos_and_region(a, b, mask)
    total, count = 0.0, 0
    for i in range(a.shape[0]):
        n = int(np.count_nonzero(region[i]))
        if n:
            total += float(np.nansum(ssim_map(a[i], b[i], region[i])))
            count += n
    return total / count if count else math.nan


# ---------------------------------------------------------------------------------------------- flicker
def flicker(video, mask=None) -> float:
    """Mean absolute frame-to-frame change (0-255) over pixels in ``mask`` in both frames of each pair."""
    video = np.asarray(video)
    region = _region(mask, video.shape[:-1])
    total, count = 0.0, 0
    for i in range(video.shape[0] - 1):
        both = region[i] & region[i + 1]
        n = int(np.count_nonzero(both))
        if n:
            change = np.abs(_difference(video[i + 1], video[i])).sum(axis=-1)
            total += float(change[both].sum()) / video.shape[-1]
            count += n
    return total / count if count else math.nan


# ------------------------------------------------------------------------------------------- per run
def run_metrics(condition, mask, output, *, key_frames=None) -> dict:
    """The experiment measures of one generated ``output`` against the conditioning video it was given.

    ``condition`` uint8 [F, H, W, 3] (the job's video: the source on KEEP pixels), ``mask`` bool [F, H, W]
    True = GENERATE. ``key_frames``: indices of frames given as keyframes (keyframe jobs), else None.
    Returns ``keep_psnr``, ``keep_ssim`` (KEEP pixels), ``flicker`` (GENERATE pixels) and, with
    ``key_frames``, ``key_psnr`` / ``key_ssim`` over those whole frames.
    """
    condition, output = _pair(condition, output)
    keep = ~np.asarray(mask, bool)
    result = {
        "keep_psnr": masked_psnr(output, condition, keep),
        "keep_ssim": masked_ssim(output, condition, keep),
        "flicker": flicker(output, ~keep),
    }
    if key_frames is not None:
        keys = np.asarray(list(key_frames), int)
        result["key_psnr"] = psnr(output[keys], condition[keys]) if len(keys) else math.nan
        result["key_ssim"] = ssim(output[keys], condition[keys]) if len(keys) else math.nan
    return result
