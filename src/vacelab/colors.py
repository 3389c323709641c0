"""Colour matching of whole clips in CIE Lab (numpy only), and the sRGB <-> Lab conversion vacelab uses.

:func:`match_colors` maps the colour distribution of a clip (the pixels of ``mask``) onto that of a
reference (the pixels of ``reference_mask``): one map for the whole clip, so nothing flickers from frame
to frame. Methods, weakest to strongest:

- ``mean``: shift of the Lab means (what the border-band ``--color-match`` of a one-window job does);
- ``reinhard``: per channel, mean and standard deviation (Reinhard et al. 2001, in Lab);
- ``histogram``: per channel, the cumulative distribution (quantile mapping on 4096 levels);
- ``mkl``: the Monge-Kantorovich linear map (Pitie and Kokaram 2007): means and the whole 3x3 Lab
  covariance, so a cast that mixes channels is undone too.

Both distributions are read exactly, from the count of each 24-bit colour, and the map is computed once
per distinct colour and applied through a lookup table: a clip of 81 frames at 832x480 holds a few
hundred thousand distinct colours against 32 million pixels.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError

METHODS = ("mean", "reinhard", "histogram", "mkl")
LEVELS = 4096  # quantiles of the histogram map

# ------------------------------------------------------------------------------------ sRGB <-> CIE Lab
_RGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]],
    np.float32,
)
_WHITE = _RGB_TO_XYZ.sum(axis=1)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


_LINEAR = _srgb_to_linear(np.arange(256, dtype=np.float32) / 255.0)  # every uint8 level, linearised


_CHUNK = 16384  # pixels converted at a time: the temporaries stay in the CPU cache (about 3x faster)


def _per_chunk(convert, values: np.ndarray, dtype) -> np.ndarray:
    """``convert`` applied to [..., 3] ``values`` a chunk of pixels at a time (elementwise, so exact)."""
    flat = values.reshape(-1, 3)
    out = np.empty(flat.shape, dtype)
    for start in range(0, len(flat), _CHUNK):
        out[start : start + _CHUNK] = convert(flat[start : start + _CHUNK])
    return out.reshape(values.shape)


def _rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    t = (_LINEAR[rgb] @ _RGB_TO_XYZ.T) / _WHITE
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def _lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], -1)
    t = np.where(f > 6 / 29, f**3, 3 * (6 / 29) ** 2 * (f - 4 / 29)) * _WHITE
    linear = np.clip(t @ _XYZ_TO_RGB.T, 0.0, 1.0)
    c = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.clip(np.rint(c * 255), 0, 255).astype(np.uint8)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB uint8 [..., 3] -> CIE Lab (D65) float32 [..., 3]."""
    return _per_chunk(_rgb_to_lab, np.asarray(rgb, np.uint8), np.float32)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIE Lab (D65) [..., 3] -> sRGB uint8 [..., 3] (out-of-gamut values clipped)."""
    return _per_chunk(_lab_to_rgb, np.asarray(lab), np.uint8)


def mean_delta_e(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean CIE76 colour difference (Euclidean distance in Lab) between uint8 frames ``a`` and ``b``
    [..., 3], over the pixels of ``mask`` (default all)."""
    a, b = np.asarray(a, np.uint8), np.asarray(b, np.uint8)
    if mask is not None:
        a, b = a[mask], b[mask]
    if not a.size:
        return 0.0
    return float(np.linalg.norm(rgb_to_lab(a) - rgb_to_lab(b), axis=-1).mean())


# ---------------------------------------------------------------------------------------- the matching
def _codes(frames: np.ndarray) -> np.ndarray:
    """Each pixel's 24-bit colour ``r << 16 | g << 8 | b``, uint32 [...] (one frame at a time)."""
    out = np.empty(frames.shape[:-1], np.uint32)
    for index in np.ndindex(frames.shape[:-3] if frames.ndim > 3 else ()):
        frame, into = frames[index], out[index]
        np.left_shift(frame[..., 0], 16, out=into, dtype=np.uint32)
        into |= frame[..., 1].astype(np.uint32) << 8
        into |= frame[..., 2]
    return out


def _decode(codes: np.ndarray) -> np.ndarray:
    return np.stack([codes >> 16, (codes >> 8) & 255, codes & 255], -1).astype(np.uint8)


def _selection(frames, mask, field: str) -> tuple[np.ndarray, np.ndarray]:
    """The 24-bit colours of ``frames`` [..., 3], and of the pixels ``mask`` (default all) selects."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim < 3 or frames.shape[-1] != 3:
        raise InputError(
            f"must be uint8 frames [..., H, W, 3], got {frames.dtype} {frames.shape}", field=field
        )
    codes = _codes(frames)
    if mask is None:
        return codes, codes.ravel()
    mask = np.asarray(mask, bool)
    if mask.shape != codes.shape:
        name = "mask" if field == "video" else f"{field}_mask"
        raise InputError(f"shape {mask.shape} does not match the frames' {codes.shape}", field=name)
    return codes, codes[mask]


def _distribution(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct colours among ``codes``, their Lab values [N, 3] (float64) and pixel counts."""
    counts = np.bincount(codes, minlength=1 << 24)
    colours = np.flatnonzero(counts).astype(np.uint32)
    return colours, rgb_to_lab(_decode(colours)).astype(np.float64), counts[colours].astype(np.float64)


def _moments(lab: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = weight @ lab / weight.sum()
    centred = lab - mean
    return mean, (centred * weight[:, None]).T @ centred / weight.sum()


def _quantiles(values: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``LEVELS`` evenly spaced quantiles of weighted ``values`` (mid-point cumulative weights)."""
    order = np.argsort(values, kind="stable")
    values, weight = values[order], weight[order]
    cdf = (np.cumsum(weight) - 0.5 * weight) / weight.sum()
    return np.interp(np.linspace(0.0, 1.0, LEVELS), cdf, values)


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite 3x3 matrix."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.maximum(values, 0.0))) @ vectors.T


def _fit(method: str, lab: np.ndarray, weight: np.ndarray, ref_lab: np.ndarray, ref_weight: np.ndarray):
    """The Lab -> Lab map of ``method`` (a function of [N, 3] arrays) and its record."""
    mean, cov = _moments(lab, weight)
    ref_mean, ref_cov = _moments(ref_lab, ref_weight)
    record = {"lab_mean": _rounded(mean), "reference_lab_mean": _rounded(ref_mean)}
    if method == "mean":
        shift = ref_mean - mean
        record["lab_shift"] = _rounded(shift)
        return (lambda x: x + shift), record
    if method == "reinhard":
        std, ref_std = np.sqrt(np.diag(cov)), np.sqrt(np.diag(ref_cov))
        scale = np.where(std > 1e-3, ref_std / np.maximum(std, 1e-3), 1.0)
        record["lab_scale"] = _rounded(scale)
        return (lambda x: (x - mean) * scale + ref_mean), record
    if method == "mkl":
        eps = 1e-3 * np.eye(3)  # a flat channel (a grey clip) leaves the covariance singular
        root = _sqrtm(cov + eps)
        inverse = np.linalg.inv(root)
        matrix = inverse @ _sqrtm(root @ (ref_cov + eps) @ root) @ inverse  # symmetric, so x @ M == M @ x
        record["lab_matrix"] = [_rounded(row) for row in matrix]
        return (lambda x: (x - mean) @ matrix + ref_mean), record
    source = [_quantiles(lab[:, c], weight) for c in range(3)]
    target = [_quantiles(ref_lab[:, c], ref_weight) for c in range(3)]
    for c in range(3):  # strictly increasing abscissae for np.interp (a value may hold many quantiles)
        source[c] = source[c] + np.arange(LEVELS) * 1e-9

    def quantile_map(x: np.ndarray) -> np.ndarray:
        return np.stack([np.interp(x[:, c], source[c], target[c]) for c in range(3)], -1)

    record["levels"] = LEVELS
    return quantile_map, record


def _rounded(values) -> list[float]:
    return [round(float(v), 4) for v in values]


def match_colors_record(
    video: np.ndarray,
    reference: np.ndarray,
    method: str = "mean",
    mask: np.ndarray | None = None,
    reference_mask: np.ndarray | None = None,
    *,
    apply_to: np.ndarray | None = None,
) -> tuple[np.ndarray, dict]:
    """:func:`match_colors`, and what was done (for ``run.json``): ``method``, ``pixels`` matched and
    ``reference_pixels``, the Lab means, and the map's own figures (``lab_shift``, ``lab_scale``,
    ``lab_matrix`` or ``levels``); ``applied`` is False where ``mask`` selects nothing."""
    if method not in METHODS:
        raise InputError("choose from " + ", ".join(METHODS), field="color_match", value=method)
    video = np.asarray(video)
    every, codes = _selection(video, mask, "video")
    ref_codes = _selection(reference, reference_mask, "reference")[1]
    if not len(ref_codes):
        raise InputError("selects no pixels of the reference", field="reference_mask")
    target = None if apply_to is None else np.asarray(apply_to, bool)
    if target is not None and target.shape != video.shape[:-1]:
        raise InputError(
            f"shape {target.shape} does not match the frames' {video.shape[:-1]}", field="apply_to"
        )
    if not len(codes):
        return video.copy(), {"method": method, "applied": False, "reason": "the mask selects no pixels"}
    colours, lab, weight = _distribution(codes)
    _, ref_lab, ref_weight = _distribution(ref_codes)
    transform, fitted = _fit(method, lab, weight, ref_lab, ref_weight)
    record = {"method": method, "applied": True, "pixels": len(codes), "reference_pixels": len(ref_codes)}
    record |= fitted
    if target is None and mask is not None:
        target = np.asarray(mask, bool)
    elif target is not None:  # apply_to may pick colours the fit did not see
        colours = np.flatnonzero(np.bincount(every[target], minlength=1 << 24)).astype(np.uint32)
        lab = rgb_to_lab(_decode(colours)).astype(np.float64)
    packed = np.zeros((len(colours), 4), np.uint8)  # the mapped colours as 4-byte words: a fast lookup
    packed[:, :3] = lab_to_rgb(transform(lab))
    lut = np.empty(1 << 24, np.uint32)  # only the entries of `colours` are ever written or read
    lut[colours] = packed.view(np.uint32)[:, 0]
    result = np.empty_like(video) if target is None else video.copy()
    for index in np.ndindex(every.shape[:-2]):  # a frame at a time: no clip-sized temporaries
        if target is None or target[index].any():
            mapped = lut[every[index]].view(np.uint8).reshape(*every.shape[-2:], 4)[..., :3]
            np.copyto(result[index], mapped, where=True if target is None else target[index][..., None])
    return result, record


def match_colors(
    video: np.ndarray,
    reference: np.ndarray,
    method: str = "mean",
    mask: np.ndarray | None = None,
    reference_mask: np.ndarray | None = None,
    *,
    apply_to: np.ndarray | None = None,
) -> np.ndarray:
    """Map the colour distribution of ``video`` onto that of ``reference`` in CIE Lab; uint8 frames.

    ``video`` and ``reference``: uint8 [..., H, W, 3] (any number of frames each). The distribution of
    ``video`` is read over ``mask`` (bool [..., H, W], default every pixel), that of ``reference`` over
    ``reference_mask``; ``method`` is one of ``mean``, ``reinhard``, ``histogram``, ``mkl`` (see the
    module's doc). One map is fitted for the whole clip and applied to every pixel of ``apply_to``
    (default ``mask``, default all); every other pixel is returned bit-identical. For a long job's window:
    ``mask`` its overlap frames, ``reference`` the previous window's output on them, ``apply_to`` the
    window's generated pixels. :func:`match_colors_record` also returns what was done.
    """
    return match_colors_record(video, reference, method, mask, reference_mask, apply_to=apply_to)[0]
