"""Metrics on constructed cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vacelab import metrics


def _video(frames=4, height=48, width=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)


def test_identical_videos_psnr_inf_ssim_one():
    video = _video()
    assert metrics.psnr(video, video) == math.inf
    assert metrics.ssim(video, video) == pytest.approx(1.0, abs=1e-12)
    mask = np.zeros(video.shape[:3], bool)
    mask[:, 10:30, 5:40] = True
    assert metrics.masked_psnr(video, video.copy(), mask) == math.inf
    assert metrics.masked_ssim(video, video.copy(), mask) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("sigma", [2.0, 5.0, 10.0])
def test_gaussian_noise_psnr_matches_theory(sigma):
    rng = np.random.default_rng(1)
    clean = np.full((8, 64, 96, 3), 128, np.uint8)  # mid-gray: no clipping at +-6 sigma
    noisy = np.clip(np.round(clean + rng.normal(0, sigma, clean.shape)), 0, 255).astype(np.uint8)
    # rounding to integers adds uniform quantisation noise of variance 1/12
    expected = 10 * math.log10(255**2 / (sigma**2 + 1 / 12))
    assert metrics.psnr(clean, noisy) == pytest.approx(expected, abs=0.05)


def test_psnr_known_constant_error():
    a = np.full((2, 16, 16, 3), 100, np.uint8)
    b = a + np.uint8(10)  # MSE = 100 exactly
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 100))
    assert metrics.psnr(b, a) == metrics.psnr(a, b)  # no uint8 wrap-around


def test_ssim_of_flat_images_follows_the_luminance_term():
    # flat images: variances and covariance are 0, SSIM = (2xy + C1) / (x^2 + y^2 + C1)
    a = np.full((32, 32, 3), 100, np.uint8)
    b = np.full((32, 32, 3), 150, np.uint8)
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 150 + c1) / (100**2 + 150**2 + c1)
    assert metrics.ssim(a, b) == pytest.approx(expected, rel=1e-9)


def test_ssim_interior_pixel_equals_the_textbook_formula():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (40, 40), dtype=np.uint8).astype(np.float64)
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255)
    y, x = 20, 17  # window fully inside the image
    g = np.exp(-(np.arange(-5, 6) ** 2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    pa, pb = a[y - 5 : y + 6, x - 5 : x + 6], b[y - 5 : y + 6, x - 5 : x + 6]
    ma, mb = (w * pa).sum(), (w * pb).sum()
    va, vb = (w * pa * pa).sum() - ma**2, (w * pb * pb).sum() - mb**2
    cov = (w * pa * pb).sum() - ma * mb
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    expected = (2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
    assert metrics.ssim_map(a, b)[y, x] == pytest.approx(expected, rel=1e-9)


def test_ssim_drops_as_noise_grows():
    clean = _video(frames=2)
    rng = np.random.default_rng(3)
    scores = [
        metrics.ssim(clean, np.clip(clean + rng.normal(0, s, clean.shape), 0, 255).astype(np.uint8))
        for s in (2, 10, 40)
    ]
    assert 1 > scores[0] > scores[1] > scores[2] > 0


def test_masked_variants_ignore_the_other_region():
    a = _video()
    mask = np.zeros(a.shape[:3], bool)
    mask[:, 8:40, 8:30] = True
    b = a.copy()
    b[~mask] = 255 - b[~mask]  # wreck everything outside the region, right up to its border
    assert metrics.masked_psnr(a, b, mask) == math.inf
    assert metrics.masked_ssim(a, b, mask) == pytest.approx(1.0, abs=1e-12)
    assert metrics.psnr(a, b) < 10 and metrics.ssim(a, b) < 0.5
    # and they do see a change inside the region
    c = a.copy()
    c[:, 20, 20] ^= 0x40
    assert metrics.masked_psnr(a, c, mask) < math.inf
    assert metrics.masked_ssim(a, c, mask) < 1.0


def test_empty_region_is_nan():
    a = _video(frames=1)
    empty = np.zeros(a.shape[:3], bool)
    assert math.isnan(metrics.masked_psnr(a, a, empty))
    assert math.isnan(metrics.masked_ssim(a, a, empty))
    assert math.isnan(metrics.flicker(a))  # one frame: no pair


def test_known_flicker_alternating_frames():
    d = 7
    base = np.random.default_rng(4).integers(40, 200, (1, 24, 32, 3))
    signs = np.array([1, -1] * 5)[:, None, None, None]
    video = (base + signs * d).astype(np.uint8)  # frames base+d, base-d, base+d, ...
    region = np.zeros(video.shape[:3], bool)
    region[:, 4:12, 6:20] = True
    noisy = video.copy()
    noisy[~region] = np.random.default_rng(5).integers(0, 256, noisy[~region].shape)  # outside: ignored
    assert metrics.flicker(noisy, region) == pytest.approx(2 * d)
    assert metrics.flicker(np.repeat(base, 6, axis=0).astype(np.uint8)) == 0.0


def test_flicker_counts_only_pixels_in_the_region_in_both_frames():
    video = np.zeros((3, 8, 8, 3), np.uint8)
    video[1] = 30
    region = np.zeros((3, 8, 8), bool)
    region[0, :4] = True  # pair 0-1 shares rows 0-3 (change 30); pair 1-2 shares nothing
    region[1, :4] = True
    assert metrics.flicker(video, region) == pytest.approx(30.0)


def test_run_metrics_keep_key_and_flicker():
    condition = _video(frames=9, seed=6)
    mask = np.ones(condition.shape[:3], bool)
    mask[[0, 8]] = False  # keyframes 0 and 8, whole frames KEEP
    mask[:, :, :8] = False  # plus a KEEP strip
    output = condition.copy()
    output[mask] = 127  # generated region: flat gray, no flicker
    result = metrics.run_metrics(condition, mask, output, key_frames=[0, 8])
    assert result["keep_psnr"] == math.inf
    assert result["keep_ssim"] == pytest.approx(1.0)
    assert result["key_psnr"] == math.inf and result["key_ssim"] == pytest.approx(1.0)
    assert result["flicker"] == 0.0
    output[0] = 0  # a keyframe lost
    worse = metrics.run_metrics(condition, mask, output, key_frames=[0, 8])
    assert worse["key_psnr"] < 10 and worse["keep_psnr"] < math.inf
    assert "key_psnr" not in metrics.run_metrics(condition, mask, output)


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError):
        metrics.psnr(_video(frames=2), _video(frames=3))
