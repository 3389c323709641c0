"""The audit picture's spatial view (``vacelab audit JOB --png FILE --frame N``): the "where"."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vacelab.audit import audit_arrays
from vacelab.audit.plot import GENERATE, SEVERITY, draw_audit, spatial_pixels
from vacelab.cli import main
from vacelab.errors import InputError
from vacelab.job import Job, save_job

H, W, FRAMES = 64, 96, 9
SCALE = 6  # 640 // 96: a small job is enlarged to about 640 px wide
GRAY = 127


def known_mask() -> np.ndarray:
    """A 32x32 GENERATE box, and a 2 px GENERATE line (too thin for an 8x8 latent pixel) in frame 4."""
    mask = np.zeros((FRAMES, H, W), bool)
    mask[:, 16:48, 16:48] = True
    mask[4, 8:56, 76:78] = True
    return mask


def read_png(path) -> np.ndarray:
    with Image.open(path) as png:
        assert png.format == "PNG" and png.mode == "RGB"
        return np.asarray(png)


@pytest.fixture
def pictures(tmp_path):
    mask, video = known_mask(), np.full((FRAMES, H, W, 3), GRAY, np.uint8)
    plain = audit_arrays(mask, video_shape=video.shape[:3])
    spatial = audit_arrays(mask, video_shape=video.shape[:3], frame=4, video=video)
    draw_audit(plain, tmp_path / "plain.png")
    draw_audit(spatial, tmp_path / "spatial.png")
    return plain, spatial, read_png(tmp_path / "plain.png"), read_png(tmp_path / "spatial.png")


def test_the_view_is_drawn_below_todays_picture(pictures):
    plain, spatial, before, after = pictures
    assert plain.spatial is None and spatial.to_dict() == plain.to_dict()  # the report itself is unchanged
    height, width = before.shape[:2]
    assert after.shape == (height + 54 + H * SCALE + 12 + 50, max(width, W * SCALE + 24), 3)
    assert np.array_equal(after[:height, :width], before)  # today's picture, untouched, on top
    view, top = after[height + 54 : height + 54 + H * SCALE, 12 : 12 + W * SCALE], height + 54
    pixels, scale = spatial_pixels(spatial.spatial)
    assert scale == SCALE and np.array_equal(view, pixels) and top > 0


def test_grid_lines_generate_and_thin_parts_are_visible(pictures):
    *_, spatial, _, after = pictures
    view = spatial_pixels(spatial.spatial)[0].astype(int)

    def at(x, y):  # a pixel of the frame (job pixels), read in the middle of its enlarged cell
        return view[y * SCALE + SCALE // 2, x * SCALE + SCALE // 2]

    def line(x, y):  # the first enlarged row of that pixel: where a horizontal grid line is drawn
        return view[y * SCALE, x * SCALE + SCALE // 2]

    keep = at(3, 3)
    assert list(keep) == [GRAY] * 3  # KEEP and off the grid: the frame itself
    latent, token = line(3, 8), line(3, 16)  # y = 8: the 8 px latent grid only; y = 16: the token grid too
    assert not np.array_equal(latent, keep) and not np.array_equal(token, keep)
    assert not np.array_equal(latent, token)
    assert latent.sum() > keep.sum() > token.sum()  # light latent lines, dark token lines
    assert np.array_equal(view[3 * SCALE + 2, 8 * SCALE], latent)  # and the vertical ones
    tint = np.round(GRAY * 0.55 + np.array(GENERATE) * 0.45)
    assert np.array_equal(at(30, 30), tint)  # GENERATE, off the grid
    thin = at(77, 30)  # the 2 px line: highlighted as a warning (too thin for an 8x8 latent pixel)
    assert not np.array_equal(thin, tint) and not np.array_equal(thin, keep)
    assert np.abs(thin - np.array(SEVERITY["warning"])).sum() < np.abs(tint - SEVERITY["warning"]).sum()
    (part,) = spatial.spatial.thin
    assert part[:2] == ("GENERATE", "warning") and part[3] == 8
    assert np.flatnonzero(part[2].any(axis=0)).tolist() == [9]  # block column 9: x 72-79


def test_a_frame_without_thin_parts_and_a_mask_without_video(tmp_path):
    report = audit_arrays(known_mask(), frame=0)
    assert report.spatial.thin == [] and report.spatial.image is None
    view = spatial_pixels(report.spatial)[0]
    assert view.shape == (H * SCALE, W * SCALE, 3) and list(view[3 * SCALE + 2, 3 * SCALE + 2]) == [160] * 3


@pytest.mark.parametrize("frame", [FRAMES, -1, True, 2.0])
def test_a_frame_outside_the_job_is_refused(frame):
    with pytest.raises(InputError, match=r"^frame .*: outside the audited frames \(0\.\.8\)$") as caught:
        audit_arrays(known_mask(), frame=frame)
    assert caught.value.field == "frame"


def test_cli(tmp_path, capsys):
    mask = known_mask()
    video = np.full((*mask.shape, 3), GRAY, np.uint8)
    job = save_job(Job("inpaint", video, mask, 16.0), tmp_path / "job", preview=False)
    assert main(["audit", str(job), "--png", str(tmp_path / "plain.png")]) == 0
    assert main(["audit", str(job), "--png", str(tmp_path / "at4.png"), "--frame", "4"]) == 0
    out = capsys.readouterr().out
    assert f"wrote picture: {tmp_path / 'at4.png'}" in out
    expected = audit_arrays(mask, video_shape=video.shape[:3], frame=4, video=video)
    expected.source = {"job": str(job), "task": "inpaint"}
    draw_audit(expected, tmp_path / "expected.png")
    assert np.array_equal(read_png(tmp_path / "at4.png"), read_png(tmp_path / "expected.png"))
    plain = read_png(tmp_path / "plain.png")
    assert read_png(tmp_path / "at4.png").shape[0] > plain.shape[0]
    for argv, message in [
        (
            ["--png", str(tmp_path / "x.png"), "--frame", "9"],
            "error: --frame 9: outside the audited frames (0..8)",
        ),
        (["--frame", "4"], "error: --frame 4: the spatial view is drawn into the picture; give --png FILE"),
    ]:
        assert main(["audit", str(job), *argv]) == 2
        assert capsys.readouterr().err.strip().splitlines() == [message]
    assert not (tmp_path / "x.png").exists()
