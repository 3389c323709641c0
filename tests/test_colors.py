"""Colour matching of whole clips (vacelab.colors, numpy only) and the drift harness."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import vacelab
from vacelab.colors import (
    METHODS,
    lab_to_rgb,
    match_colors,
    match_colors_record,
    mean_delta_e,
    rgb_to_lab,
)
from vacelab.errors import InputError
from vacelab.sample import sample_clip

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"  # the scripts run as the user runs them


@pytest.fixture(scope="module")
def natural() -> np.ndarray:
    """The sample clip, every 8th frame at a quarter of its size (13 x 120 x 208)."""
    return np.ascontiguousarray(sample_clip()[0][::8, ::4, ::4])


def cast(frames: np.ndarray) -> np.ndarray:
    """An affine per-channel Lab cast: darker, flatter luminance, warm tint, more saturation (then the
    uint8 conversion clips what leaves the gamut)."""
    lab = rgb_to_lab(frames)
    mean_l = lab[..., 0].mean()
    out = np.empty_like(lab)
    out[..., 0] = mean_l - 10 + 0.75 * (lab[..., 0] - mean_l)
    out[..., 1] = 1.25 * lab[..., 1] + 6
    out[..., 2] = 1.25 * lab[..., 2] + 14
    return lab_to_rgb(out)


def test_known_answer_cast_is_undone(natural):
    bad = cast(natural)
    before = mean_delta_e(bad, natural)
    assert before > 15  # a strong cast
    error = {method: mean_delta_e(match_colors(bad, natural, method), natural) for method in METHODS}
    # measured on this clip: mean 6.59, reinhard 0.32, histogram 0.21, mkl 0.39 (gamut clipping: not 0)
    assert 0 < error["reinhard"] < 3
    assert 0 < error["histogram"] < 2.5
    assert 0 < error["mkl"] < 1.0
    assert error["mean"] > error["reinhard"] + 3  # the mean shift leaves the contrast and saturation part
    assert error["mean"] < before / 2  # but it does take the tint


def test_mkl_undoes_a_cast_that_mixes_channels(natural):
    """A hue rotation (a* and b* mixed, 25 degrees): no per-channel method can undo it, mkl's full
    covariance does (measured: mean 5.36, reinhard 3.49, histogram 3.33, mkl 0.78 from 5.72)."""
    angle = np.radians(25)
    rotation = np.array(
        [[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]], np.float32
    )
    turned = lab_to_rgb(rgb_to_lab(natural) @ rotation.T)
    error = {method: mean_delta_e(match_colors(turned, natural, method), natural) for method in METHODS}
    assert error["mkl"] < 1.5
    assert min(error["mean"], error["reinhard"], error["histogram"]) > 2 * error["mkl"]


def test_one_frame_is_a_clip_too(natural):
    bad = cast(natural)[0]
    out = match_colors(bad, natural[0], "mkl")
    assert out.shape == bad.shape and mean_delta_e(out, natural[0]) < 1.0


def test_matching_a_clip_to_itself_changes_little(natural):
    for method in METHODS:
        assert mean_delta_e(match_colors(natural, natural, method), natural) < 0.5, method


def test_only_masked_pixels_change(natural):
    bad = cast(natural)
    mask = np.zeros(natural.shape[:3], bool)
    mask[:, 20:90, 30:150] = True
    for method in METHODS:
        out, record = match_colors_record(bad, natural, method, mask=mask, reference_mask=mask)
        assert out.dtype == np.uint8 and out.shape == bad.shape
        assert np.array_equal(out[~mask], bad[~mask]), method  # unmasked: bit-identical
        assert mean_delta_e(out, natural, mask) < mean_delta_e(bad, natural, mask) / 3, method
        assert record["method"] == method and record["applied"] and record["pixels"] == mask.sum()
    assert np.array_equal(bad, cast(natural))  # the input is not modified


def test_apply_to_maps_other_pixels_with_the_fit_of_mask(natural):
    bad = cast(natural)
    fit = np.zeros(natural.shape[:3], bool)
    fit[:3] = True  # the first frames only, as a window's overlap
    apply_to = np.zeros_like(fit)
    apply_to[2:] = True
    out = match_colors(bad, natural[:3], "reinhard", mask=fit, apply_to=apply_to)
    assert np.array_equal(out[:2], bad[:2])
    assert mean_delta_e(out[2:], natural[2:]) < 2  # the later frames, never seen by the fit, are fixed


def test_reference_of_another_size_and_one_frame(natural):
    bad = cast(natural)
    out = match_colors(bad, natural[0, ::2, ::2], "histogram")
    assert mean_delta_e(out, natural) < mean_delta_e(bad, natural) / 3


def test_unknown_method_and_bad_masks_refused(natural):
    with pytest.raises(InputError) as caught:
        match_colors(natural, natural, "mvgd")
    assert caught.value.field == "color_match" and caught.value.value == "mvgd"
    assert str(caught.value) == "color_match mvgd: choose from mean, reinhard, histogram, mkl"
    with pytest.raises(InputError) as caught:
        match_colors(natural, natural, "mean", mask=np.ones((2, 2), bool))
    assert caught.value.field == "mask"
    with pytest.raises(InputError) as caught:
        match_colors(natural, natural, "mean", reference_mask=np.zeros(natural.shape[:3], bool))
    assert caught.value.field == "reference_mask"
    with pytest.raises(InputError) as caught:
        match_colors(natural.astype(np.float32), natural)
    assert caught.value.field == "video"


def test_empty_mask_returns_the_frames():
    frames = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    out, record = match_colors_record(frames, frames, "mkl", mask=np.zeros((2, 8, 8), bool))
    assert np.array_equal(out, frames) and not record["applied"]


def test_flat_clip_does_not_break_mkl_or_reinhard():
    grey = np.full((2, 8, 8, 3), 128, np.uint8)
    reference = np.full((1, 4, 4, 3), (150, 120, 100), np.uint8)
    for method in METHODS:
        out = match_colors(grey, reference, method)
        assert np.abs(out.astype(int) - reference[0, 0, 0]).max() <= 1, method


def test_public_api():
    assert vacelab.match_colors is match_colors


def drift_table(*args: str) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, float]]:
    """Run ``benchmarks/drift.py --quick ARGS``: per row, the drift of each window and the seams, and the
    cut of each method at the last window."""
    command = [sys.executable, str(BENCH / "drift.py"), "--quick", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = next(line for line in lines if line.startswith("| method"))
    assert "window 5" in header and "seam 4-5" in header
    rows = {
        line.split("|")[1].strip(): [float(v) for v in line.split("|")[2:-1]]
        for line in lines
        if line.startswith("| ") and line != header
    }
    assert set(rows) == {"clean", "none", *METHODS}
    cut = next(line for line in lines if line.startswith("drift cut at window 5: "))
    ratios = {name: float(x) for name, x in re.findall(r"(\w+) ([\d.]+)x", cut)}
    assert set(ratios) == set(METHODS)
    return {k: v[:5] for k, v in rows.items()}, {k: v[5:] for k, v in rows.items()}, ratios


def test_drift_harness_prints_its_table():
    drift, seams, cut = drift_table()
    assert drift["none"] == sorted(drift["none"]) and drift["none"][-1] > 10  # growing, window by window
    for method in ("reinhard", "histogram", "mkl"):  # each cuts the fifth window's drift at least 3x
        assert drift[method][-1] * 3 < drift["none"][-1] and cut[method] > 3, method
        assert max(seams[method]) < min(seams["none"]), method
    assert cut["mean"] < 3  # a mean shift leaves saturation and contrast: the drift still grows
    assert drift["mean"] == sorted(drift["mean"])


def test_drift_harness_with_regenerated_overlaps():
    """The recommended default for long jobs (mkl, docs/long-videos.md) holds when the shared frames
    differ between windows (noise, a patch of other content)."""
    drift, seams, cut = drift_table("--regenerated")
    assert cut["mkl"] > 3 and cut["mkl"] >= max(cut.values()) * 0.95
    assert max(seams["mkl"]) < min(seams["none"])


def test_the_settings_know_the_same_methods():
    from vacelab.colors import METHODS
    from vacelab.generation.settings import COLOR_METHODS

    assert COLOR_METHODS == METHODS
