"""Mask geometry for prepare: boxes, polygons, grow, feather, lost-track checks, long-job windows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vacelab import media
from vacelab.errors import InputError
from vacelab.geometry import is_valid_frame_count, kept_heads, plan_windows
from vacelab.tasks import masks


def brute_disk_dilation(image: np.ndarray, radius: int) -> np.ndarray:
    out = np.zeros_like(image)
    ys, xs = np.nonzero(image)
    yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
    for y, x in zip(ys, xs, strict=True):
        out |= (yy - y) ** 2 + (xx - x) ** 2 <= radius * radius
    return out


@pytest.mark.parametrize("radius", [1, 3, 8])
def test_dilate_disk_matches_brute_force(radius):
    rng = np.random.default_rng(radius)
    image = rng.random((40, 56)) > 0.985
    assert np.array_equal(masks.dilate_disk(image, radius), brute_disk_dilation(image, radius))


def test_grow_per_frame_and_static_frames():
    mask = np.zeros((5, 48, 64), bool)
    mask[:3, 20:24, 30:34] = True  # static over three frames
    mask[3, 5, 5] = True
    grown = masks.grow(mask, 4)
    for i in range(5):
        assert np.array_equal(grown[i], brute_disk_dilation(mask[i], 4))
    assert masks.grow(mask, 0) is mask
    with pytest.raises(InputError, match="must be 0 or more pixels") as error:
        masks.grow(mask, -1)
    assert (error.value.field, error.value.value) == ("grow", -1)


@pytest.mark.parametrize("seed", range(3))
def test_grow_of_a_packed_mask_is_the_unpacked_grow_bit_for_bit(seed):
    """A mask built packed grows exactly as the bool mask does: odd widths (padding bits), a repeated
    frame (its result reused), an empty frame, pixels on the frame's edge."""
    mask = np.random.default_rng(seed).random((6, 37, 53)) > 0.97
    mask[2] = mask[1]
    mask[4] = False
    mask[5, 0, 52] = True
    grown = masks.grow(media.PackedMask.of(mask), 3)
    assert isinstance(grown, media.PackedMask) and grown.shape == mask.shape
    unpacked = masks.grow(mask, 3)
    assert isinstance(unpacked, np.ndarray) and np.array_equal(np.asarray(grown), unpacked)
    for i in range(6):
        assert np.array_equal(unpacked[i], brute_disk_dilation(mask[i], 3))
    assert np.array_equal(media.mask_counts(grown), unpacked.reshape(6, -1).sum(axis=1))


def test_feather_alpha_ramps_inside_the_mask_only():
    mask = np.zeros((1, 40, 40), bool)
    mask[0, 10:30, 10:30] = True
    alpha = masks.feather_alpha(mask, 4)[0]
    assert (alpha[~mask[0]] == 0).all()
    assert alpha[10, 20] == pytest.approx(1 / 5)  # on the edge
    assert alpha[11, 20] == pytest.approx(2 / 5)
    assert alpha[14, 20] == pytest.approx(1.0)  # 4 px inside
    assert alpha[20, 20] == pytest.approx(1.0)
    assert masks.feather_alpha(mask, 0) is None


def test_bbox_mask_and_bounds():
    mask = np.asarray(masks.bbox_mask((2, 3, 10, 7), 2, (16, 32)))
    assert mask.sum() == 2 * 8 * 4
    assert mask[:, 3:7, 2:10].all()
    for bad in [(0, 0, 33, 8), (5, 5, 5, 9), (-1, 0, 4, 4)]:
        with pytest.raises(InputError, match="bbox"):
            masks.bbox_mask(bad, 1, (16, 32))


def test_polygons_plain_and_per_frame(tmp_path):
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps([[4, 4], [28, 4], [4, 12]]))
    shapes = masks.read_polygons(plain, 3)
    mask = np.asarray(masks.polygon_mask(shapes, 3, (16, 32)))
    assert mask.all(axis=0)[5, 6] and not mask.any(axis=0)[14, 30]
    assert (mask == mask[0]).all()

    ranged = tmp_path / "ranged.json"
    ranged.write_text(json.dumps([{"frames": [1, 2], "points": [[0, 0], [8, 0], [8, 8], [0, 8]]}]))
    mask = np.asarray(masks.polygon_mask(masks.read_polygons(ranged, 3), 3, (16, 32)))
    assert not mask[0].any() and mask[1, 4, 4] and mask[2, 4, 4] and not mask[1, 12, 20]


@pytest.mark.parametrize(
    "content, message",
    [
        ("[[1, 2], [3, 4]", "not valid JSON"),
        ('{"points": []}', "non-empty JSON list"),
        ("[[1, 2], [3, 4]]", "at least 3"),
        ('[[1, 2], [3, "x"], [5, 6]]', "at least 3"),
        ('[{"frames": [0, 9], "points": [[0, 0], [4, 0], [0, 4]]}]', "'frames'"),
        ('[{"frames": [0], "points": [[0, 0], [4, 0], [0, 4]]}]', "'frames'"),
    ],
)
def test_malformed_polygon_files(tmp_path, content, message):
    path = tmp_path / "poly.json"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        masks.read_polygons(path, 5)


def test_lost_track_notes_name_frames():
    mask = np.zeros((8, 10, 10), bool)
    mask[:, 2:4, 2:4] = True
    mask[3:5] = False  # lost
    mask[6, :, :] = True  # jumps from 4 px to 100 px
    notes = masks.lost_track_notes(mask)
    assert any("empty on frames 3-4" in n for n in notes)
    assert any("jumps" in n and "frames 6-7" in n for n in notes)
    steady = np.zeros((4, 10, 10), bool)
    steady[:, 1:5, 1:5] = True
    assert masks.lost_track_notes(steady) == []


@pytest.mark.parametrize("frames, window, overlap", [(97, 33, 9), (301, 81, 17), (81, 81, 17), (45, 17, 5)])
def test_plan_windows_whole_groups(frames, window, overlap):
    windows = plan_windows(frames, window, overlap)
    assert windows[0][0] == 0 and windows[-1][1] == frames
    for start, stop in windows:
        assert is_valid_frame_count(stop - start)
    for start, _ in windows[:-1]:
        assert start % 4 == 0
    for (_, stop), (start, _) in zip(windows, windows[1:], strict=False):
        shared = stop - start
        assert overlap <= shared < overlap + 4  # the last window may share up to 3 frames more
    assert kept_heads(windows)[1:] == [overlap] * (len(windows) - 1)  # frame 0 + whole VAE groups
    if frames > window:
        assert all(stop - start == window for start, stop in windows[:-1])
        assert windows[-1][1] - windows[-1][0] <= window  # the last one only as long as needed


@pytest.mark.parametrize("window, overlap", [(80, 17), (81, 81), (81, 90), (81, 16)])
def test_plan_windows_refuses_bad_settings(window, overlap):
    with pytest.raises(ValueError):
        plan_windows(301, window, overlap)
