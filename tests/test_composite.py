"""Paste-back of KEEP pixels, the seam band, and colour matching (numpy only, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from vacelab.generation.composite import (
    _CHUNK,
    _distance_to_keep,
    _lab_to_rgb,
    _near,
    _rgb_to_lab,
    color_match,
    composite,
    feather_weights,
    lab_to_rgb,
    rgb_to_lab,
)

F, H, W = 3, 64, 96


def gradient_video() -> np.ndarray:
    x = np.linspace(30, 220, W)[None, None, :]
    y = np.linspace(40, 200, H)[None, :, None]
    t = np.arange(F)[:, None, None] * 5.0
    return np.stack(np.broadcast_arrays(x + t, y + 0 * x, 0.5 * (x + y) + 0 * t), -1).round().astype(np.uint8)


def box_mask() -> np.ndarray:
    mask = np.zeros((F, H, W), bool)
    mask[:, 16:48, 24:72] = True
    return mask


def test_distance_to_keep_matches_brute_force():
    rng = np.random.default_rng(1)
    keep = rng.random((23, 31)) > 0.97
    keep[0, 0] = True
    ys, xs = np.nonzero(keep)
    yy, xx = np.mgrid[:23, :31]
    brute = np.sqrt((yy[..., None] - ys) ** 2 + (xx[..., None] - xs) ** 2).min(axis=-1)
    limit = 6
    assert np.allclose(_distance_to_keep(keep, limit), np.minimum(brute, limit + 1))


def test_keep_pixels_exact_and_band_inside_generate():
    rng = np.random.default_rng(0)
    source = gradient_video()
    output = rng.integers(0, 256, source.shape, dtype=np.uint8)
    mask = box_mask()
    result = composite(output, source, mask, feather=8)
    assert np.array_equal(result[~mask], source[~mask])
    weights = feather_weights(mask, 8)
    inner = mask & (weights == 1.0)
    assert np.array_equal(result[inner], output[inner])  # beyond the band: the model's output untouched
    assert inner[:, 16 + 9 : 48 - 9, 24 + 9 : 72 - 9].all() and not inner[:, 16:24, 24:72].any()
    band = mask & (weights < 1.0)
    assert (result[band] != output[band]).any()


def test_seam_band_continues_the_kept_pixels():
    source = gradient_video()
    mask = box_mask()
    drifted = np.clip(source.astype(int) + 24, 0, 255).astype(np.uint8)  # the model drifted everywhere
    raw = composite(drifted, source, mask, feather=0)
    smooth = composite(drifted, source, mask, feather=16)
    # first GENERATE column next to the border (row 32, x = 24): jump from the kept neighbour at x = 23
    jump_raw = np.abs(raw[:, 32, 24].astype(int) - source[:, 32, 23].astype(int)).max()
    jump_smooth = np.abs(smooth[:, 32, 24].astype(int) - source[:, 32, 23].astype(int)).max()
    assert jump_raw >= 20 and jump_smooth <= 4
    assert np.array_equal(smooth[~mask], source[~mask])


def test_feather_zero_is_a_hard_paste_and_range_is_checked():
    source, mask = gradient_video(), box_mask()
    output = np.zeros_like(source)
    assert np.array_equal(composite(output, source, mask, 0), np.where(mask[..., None], output, source))
    with pytest.raises(ValueError):
        composite(output, source, mask, 17)


def test_lab_round_trip():
    rgb = np.random.default_rng(2).integers(0, 256, (1000, 3), dtype=np.uint8)
    assert np.abs(lab_to_rgb(rgb_to_lab(rgb)).astype(int) - rgb).max() <= 1


def test_color_match_undoes_a_constructed_colour_shift():
    source, mask = gradient_video(), box_mask()
    lab = rgb_to_lab(source)
    shifted_lab = lab.copy()
    shifted_lab[..., 0] += 12  # brighter
    shifted_lab[..., 1] += 9  # towards magenta
    shifted_lab[..., 2] -= 7  # towards blue
    output = np.where(mask[..., None], lab_to_rgb(shifted_lab), source)
    before = np.abs(output[mask].astype(float) - source[mask]).mean()
    matched, info = color_match(output, source, mask)
    after = np.abs(matched[mask].astype(float) - source[mask]).mean()
    assert info["applied"] and before > 10 and after < before / 4
    assert np.array_equal(matched[~mask], output[~mask])


def test_color_match_uses_kept_frames_in_time_for_extension():
    source = gradient_video()
    mask = np.zeros((F, H, W), bool)
    mask[2] = True  # the last frame is generated, whole
    output = source.copy()
    output[2] = np.clip(source[2].astype(int) - 30, 0, 255)
    matched, info = color_match(output, source, mask)
    assert info["applied"]
    assert (
        np.abs(matched[2].astype(int) - source[2]).mean()
        < np.abs(output[2].astype(int) - source[2]).mean() / 3
    )


def test_color_match_without_kept_pixels_does_nothing():
    source = gradient_video()
    matched, info = color_match(source, source, np.ones((F, H, W), bool))
    assert not info["applied"] and np.array_equal(matched, source)


def blob_mask(frames: int, height: int, width: int, seed: int) -> np.ndarray:
    """Several blobs per frame (holes, frame edges, an empty and a full frame): every code path."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    mask = np.zeros((frames, height, width), bool)
    for f in range(frames):
        for cy, cx, r in zip(
            rng.integers(0, height, 3), rng.integers(0, width, 3), rng.integers(3, 12, 3), strict=True
        ):
            mask[f] |= (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    mask[0] = False
    mask[-1] = True
    return mask


def test_composite_band_matches_a_direct_computation():
    # the speed-ups (bounding boxes, integral images read at band pixels) change no pixel
    rng = np.random.default_rng(4)
    mask = blob_mask(5, 40, 56, seed=4)
    source = rng.integers(0, 256, (*mask.shape, 3), dtype=np.uint8)
    output = rng.integers(0, 256, (*mask.shape, 3), dtype=np.uint8)
    feather = 5
    weights = feather_weights(mask, feather)
    expected = np.where(mask[..., None], output, source)
    for f, y, x in zip(*np.nonzero(mask & (weights < 1.0)), strict=True):
        box = np.s_[f, max(y - feather, 0) : y + feather + 1, max(x - feather, 0) : x + feather + 1]
        keep = ~mask[box]
        error = (source[box].astype(float) - output[box])[keep].sum(axis=0) / max(keep.sum(), 1)
        fixed = output[f, y, x] + (1.0 - weights[f, y, x]) * error
        expected[f, y, x] = np.clip(np.rint(fixed), 0, 255)
    assert np.array_equal(composite(output, source, mask, feather), expected)


def test_near_matches_a_brute_force_box_in_space_and_time():
    mask = np.random.default_rng(5).random((6, 20, 24)) > 0.985
    radius, frames = 3, 1
    padded = np.pad(mask, [(frames, frames), (radius, radius), (radius, radius)])
    brute = np.zeros_like(mask)
    for dt in range(2 * frames + 1):
        for dy in range(2 * radius + 1):
            for dx in range(2 * radius + 1):
                brute |= padded[dt : dt + 6, dy : dy + 20, dx : dx + 24]
    assert np.array_equal(_near(mask, radius, frames), brute)


def test_lab_conversion_in_chunks_equals_one_pass():
    rgb = np.random.default_rng(6).integers(0, 256, (2, _CHUNK + 7, 3), dtype=np.uint8)
    lab = rgb_to_lab(rgb)
    assert lab.shape == rgb.shape and np.array_equal(lab, _rgb_to_lab(rgb))
    assert np.array_equal(lab_to_rgb(lab + 3.0), _lab_to_rgb(lab + 3.0))
