"""Geometry of Wan2.1 VACE checked against torch and diffusers' own ``WanVACEPipeline.prepare_masks``."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import prepare_masks

from vacelab import geometry as geo

# The read table of the field report (cause 2): 81 frames -> 21 steps.
FIELD_REPORT_READS_81 = [1, 5, 9, 13, 17, 21, 25, 28, 32, 36, 40, 44, 48, 52, 55, 59, 63, 67, 71, 75, 79]


@pytest.fixture(scope="module")
def pipe():
    from vacelab.testing.tiny import build_tiny_pipeline

    return build_tiny_pipeline()


def irregular_mask(frames: int, height: int, width: int, seed: int) -> np.ndarray:
    """A moving ellipse, random speckle and a few KEEP-only / GENERATE-only frames."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    mask = np.empty((frames, height, width), bool)
    for f in range(frames):
        cy, cx = height * (0.3 + 0.4 * f / max(frames, 1)), width * (0.7 - 0.4 * f / max(frames, 1))
        mask[f] = ((yy - cy) / (0.25 * height)) ** 2 + ((xx - cx) / (0.2 * width)) ** 2 < 1
    mask ^= rng.random(mask.shape) < 0.05
    mask[rng.integers(0, frames, size=max(1, frames // 8))] = False
    mask[rng.integers(0, frames, size=max(1, frames // 8))] = True
    return mask


def test_read_table_81_frames_matches_field_report():
    assert geo.mask_read_frames(81).tolist() == FIELD_REPORT_READS_81
    assert 0 not in geo.mask_read_frames(81)  # frame 0's mask is never read


def test_read_frames_equal_torch_nearest_exact_for_many_lengths():
    import torch

    for frames in range(1, 202):
        steps = geo.mask_step_count(frames)
        index = torch.arange(frames, dtype=torch.float32).view(1, 1, frames)
        torch_reads = torch.nn.functional.interpolate(index, size=steps, mode="nearest-exact")[0, 0]
        assert geo.mask_read_frames(frames).tolist() == torch_reads.long().tolist(), frames


def test_vae_groups_partition_the_frames():
    groups = geo.vae_groups(81)
    assert len(groups) == 21 == geo.latent_frame_count(81)
    assert list(groups[0]) == [0] and list(groups[1]) == [1, 2, 3, 4] and list(groups[20]) == [77, 78, 79, 80]
    assert sorted(f for g in groups for f in g) == list(range(81))
    # Steps 0-6 read the first frame of the next group; steps 7-20 read inside their own group.
    reads = geo.mask_read_frames(81)
    inside = [int(reads[t]) in groups[t] for t in range(21)]
    assert inside == [False] * 7 + [True] * 14


def test_geometry_sizes_and_problems():
    g = geo.Geometry(frames=81, height=480, width=832)
    assert (g.latent_frames, g.latent_height, g.latent_width, g.tokens) == (21, 60, 104, 32760)
    assert g.problems() == []
    assert geo.Geometry(81, 480, 832, ref_frames=2).tokens == 23 * 30 * 52
    problems = geo.Geometry(frames=80, height=470, width=832).problems()
    assert len(problems) == 2
    assert "80 frames is not 4n+1" in problems[0] and "use 77 or 81" in problems[0]
    assert "height 470" in problems[1]


def test_target_size():
    assert geo.target_size("480p") == (480, 832)
    assert geo.target_size("480p", source_hw=(1920, 1080)) == (832, 480)
    assert geo.target_size("720p") == (720, 1280)
    assert geo.target_size("640x352") == (352, 640)
    for bad in ("foo", "640x350", "0x16"):
        with pytest.raises(ValueError):
            geo.target_size(bad)


@pytest.mark.parametrize(
    ("frames", "height", "width", "refs"),
    [
        (81, 480, 832, 0),  # 480p, the trained default
        (81, 480, 832, 2),
        (17, 720, 1280, 1),  # 720p
        (1, 64, 96, 0),
        (5, 64, 96, 1),
        (13, 96, 64, 2),
        (33, 64, 96, 0),
        (49, 32, 48, 1),
        (121, 32, 48, 2),
    ],
)
def test_mask_latent_equals_diffusers_prepare_masks(pipe, frames, height, width, refs):
    mask = irregular_mask(frames, height, width, seed=frames + refs)
    ours = geo.mask_latent(mask, ref_frames=refs)
    theirs = prepare_masks(pipe, mask, refs)
    assert ours.dtype == np.float32
    assert ours.shape == (64, refs + geo.latent_frame_count(frames), height // 8, width // 8)
    np.testing.assert_array_equal(ours, theirs)


def test_aligned_encoding_reads_each_group():
    mask = np.ones((9, 16, 16), bool)
    mask[4] = False  # one KEEP frame in group 1-4
    mask[5:9] = False  # group 5-8 all KEEP
    latent = geo.mask_latent(mask, encoding="aligned")
    assert latent.shape == (64, 3, 2, 2)
    # Step 1 mixes KEEP and GENERATE -> GENERATE; step 2 is KEEP everywhere; step 0 reads frame 0 itself.
    assert latent[:, 0].min() == 1 and latent[:, 1].min() == 1 and latent[:, 2].max() == 0
    assert geo.read_frames_for(9, "aligned") == [[0], [1, 2, 3, 4], [5, 6, 7, 8]]
    with pytest.raises(ValueError):
        geo.mask_latent(mask, encoding="nearest")
