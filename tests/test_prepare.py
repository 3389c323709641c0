"""`vacelab prepare` on the real decoded sample clip: arrays, files, long jobs, CLI errors."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vacelab import media
from vacelab.cli import main
from vacelab.errors import InputError
from vacelab.geometry import vae_groups
from vacelab.job import load_job
from vacelab.sample import sample_mask, sample_path
from vacelab.tasks import prepare

SIZE = (192, 320)  # job (height, width)
SMALL = dict(size="320x192", frames=17)


@pytest.fixture(scope="module")
def clip() -> Path:
    return sample_path()


@pytest.fixture(scope="module")
def source(clip) -> np.ndarray:
    """The sample decoded independently at job size: what KEEP pixels must equal."""
    frames, _ = media.read_video(clip, size=SIZE, fps=16, max_frames=17)
    return frames


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate([(96, 160), (200, 120), (40, 40), (60, 400)]):
        path = folder / f"img{i}.png"
        media.write_png(path, rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        paths.append(path)
    return paths


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------- inpaint / remove
def test_inpaint_bbox_arrays(clip, source):
    job = prepare("inpaint", video=str(clip), bbox="40,30,120,90", **SMALL)
    assert job.video.shape == (17, *SIZE, 3) and job.mask.shape == (17, *SIZE)
    assert isinstance(job.mask, media.PackedMask)  # built bit-packed: 1/8 of the bytes
    expected = np.zeros((17, *SIZE), bool)
    expected[:, 30:90, 40:120] = True
    mask = np.asarray(job.mask)
    assert np.array_equal(mask, expected)
    assert (job.video[mask] == 127).all()
    assert np.array_equal(job.video[~mask], source[~mask])
    assert np.array_equal(job.original, source)
    assert job.fps == 16 and job.windows is None


def test_filled_video_fills_the_frames_read_as_the_whole_clip_fill(source, tmp_path):
    """FilledVideo (an inpaint job's gray-filled video, made as it is read, its feather weights made for
    those frames alone) gives the whole clip's fill (whole-clip weights) for every index a job's readers
    use, on frames whose mask is empty too, over a packed mask as over a bool one; the file saved is the
    same."""
    from vacelab.tasks import masks
    from vacelab.tasks.spatial import FilledVideo, fill_gray

    mask = np.zeros(source.shape[:3], bool)
    mask[3:, 30:90, 40:120] = True  # frames 0-2: nothing to fill
    mask[9, 100:150, 200:300] = True
    mask[12:, 0:40, 0:20] = True  # at the frame's corner
    for feather, given in ((0, mask), (4, mask), (4, media.PackedMask.of(mask)), (50, mask)):
        lazy, whole = (
            FilledVideo(source, given, feather),
            fill_gray(source, mask, masks.feather_alpha(mask, feather)),
        )
        assert lazy.shape == whole.shape and len(lazy) == 17
        np.testing.assert_array_equal(np.asarray(lazy), whole)
        for key in (0, 9, -1, slice(2, 11), np.s_[1:12:3, ::2, ::3], np.s_[9, 100:150], mask):
            np.testing.assert_array_equal(lazy[key], whole[key])
    np.testing.assert_array_equal(np.array(list(lazy)), whole)
    media.save_array(tmp_path / "lazy.npy", lazy)  # written 16 frames at a time
    media.save_array(tmp_path / "whole.npy", whole)
    assert (tmp_path / "lazy.npy").read_bytes() == (tmp_path / "whole.npy").read_bytes()


@pytest.mark.parametrize("fill", ["gray", "black", "edge"])
def test_padded_video_makes_the_frames_read_as_the_whole_canvas(source, fill):
    """PaddedVideo (an outpaint job's canvas, made as it is read) gives the whole clip padded at once."""
    from vacelab.tasks.spatial import PaddedVideo

    inner = source[:, 10:150, 20:260]  # 140x240 on a 192x320 canvas at (30, 50)
    lazy = PaddedVideo(inner, (192, 320), 30, 50, fill)
    pads = ((0, 0), (30, 22), (50, 30), (0, 0))
    value = {"gray": 127, "black": 0}.get(fill)
    whole = np.pad(inner, pads, mode="edge") if value is None else np.pad(inner, pads, constant_values=value)
    assert lazy.shape == whole.shape and len(lazy) == 17
    np.testing.assert_array_equal(np.asarray(lazy), whole)
    for key in (0, -1, slice(2, 11), np.s_[1:12:3, ::2, ::3], np.s_[9, 100:150]):
        np.testing.assert_array_equal(lazy[key], whole[key])
    np.testing.assert_array_equal(np.array(list(lazy)), whole)


def test_preview_is_made_frame_by_frame_as_the_whole_clip_made_it(clip):
    """PreviewFrames (preview.gif's frames, one at a time) gives what the whole-clip version gave."""
    from vacelab.render import PreviewFrames, mask_overlay, side_by_side

    job = prepare("inpaint", video=str(clip), bbox="40,30,120,90", **SMALL)
    view = np.s_[::2, ::2, ::2]  # 320 px wide at most 200 a side: every 2nd pixel, every 2nd frame
    whole = side_by_side(job.original[view], mask_overlay(job.video[view], job.mask[view]))
    lazy = PreviewFrames(job, max_side_width=200, every=2)
    assert lazy.shape == whole.shape and len(lazy) == 9
    np.testing.assert_array_equal(np.stack(list(lazy)), whole)
    np.testing.assert_array_equal(lazy[-1], whole[-1])


def test_inpaint_mask_image_video_and_source_size(clip, source, tmp_path):
    at_job = np.zeros(SIZE, np.uint8)
    at_job[50:100, 60:200] = 255
    media.write_png(tmp_path / "job.png", np.repeat(at_job[..., None], 3, -1))
    job = prepare("inpaint", video=str(clip), mask=str(tmp_path / "job.png"), **SMALL)
    assert np.array_equal(np.asarray(job.mask), np.broadcast_to(at_job > 0, job.mask.shape))

    # the true object mask at the source's own size (832x480), as a video: resized like the source
    truth = sample_mask()[:17]
    media.write_mp4(tmp_path / "truth.mp4", truth, 16)
    job = prepare("remove", video=str(clip), mask=str(tmp_path / "truth.mp4"), grow=0, **SMALL)
    expected = np.stack(
        [media.cover_crop(m.astype(np.uint8) * 255, SIZE, nearest=True) >= 128 for m in truth]
    )
    mask = np.asarray(job.mask)
    assert np.count_nonzero(mask != expected) <= 0.01 * expected.sum()
    assert np.array_equal(job.video[~mask], source[~mask])


@pytest.mark.parametrize("hw", [(100, 320), (96, 160)])
def test_mask_of_wrong_size_refused(clip, tmp_path, hw):
    media.write_png(tmp_path / "m.png", np.full((*hw, 3), 255, np.uint8))
    with pytest.raises(InputError, match="must be the source's 832x480 or the job's 320x192"):
        prepare("inpaint", video=str(clip), mask=str(tmp_path / "m.png"), **SMALL)


def test_fill_source_and_feather(clip, source):
    box = "40,30,120,90"
    kept = prepare("inpaint", video=str(clip), bbox=box, fill="source", **SMALL)
    assert np.array_equal(kept.video, source) and np.asarray(kept.mask).sum() == 17 * 60 * 80
    soft = prepare("inpaint", video=str(clip), bbox=box, fill_feather=4, **SMALL)
    mask = np.asarray(soft.mask)
    assert mask.dtype == bool and np.array_equal(mask, np.asarray(kept.mask))  # the mask stays binary
    assert np.array_equal(soft.video[~mask], source[~mask])
    assert (soft.video[:, 34:86, 44:116] == 127).all()  # 4 px inside: pure gray
    edge = soft.video[:, 30, 60:100].astype(int)  # on the edge: 1/5 gray, 4/5 source
    expected = np.round(source[:, 30, 60:100] * 0.8 + 127 * 0.2)
    assert np.abs(edge - expected).max() <= 1


def test_remove_grows_and_suggests_negative_prompt(clip):
    job = prepare("remove", video=str(clip), bbox="100,60,140,100", what="gun, weapon", **SMALL)
    box = np.zeros(SIZE, bool)
    box[60:100, 100:140] = True
    yy, xx = np.mgrid[: SIZE[0], : SIZE[1]]
    dist_x = np.maximum(np.maximum(100 - xx, xx - 139), 0)
    dist_y = np.maximum(np.maximum(60 - yy, yy - 99), 0)
    expected = dist_x**2 + dist_y**2 <= 64  # disk of 8 px around the box
    assert np.array_equal(job.mask[5], expected)
    assert job.negative_prompt == "gun, weapon"
    assert any("grown by 8 px" in n for n in job.notes)


def test_polygon_per_frame_range_and_source_coords(clip, tmp_path):
    poly = tmp_path / "poly.json"
    poly.write_text(json.dumps([{"frames": [4, 8], "points": [[10, 10], [60, 10], [60, 50], [10, 50]]}]))
    job = prepare("inpaint", video=str(clip), polygon=str(poly), **SMALL)
    assert not job.mask[:4].any() and not job.mask[9:].any()
    assert job.mask[4:9, 20, 30].all() and not job.mask[4:9, 100, 100].any()
    # source pixels: 832x480 covers 320x192 at 333x192 (x 333/832, y 0.4), then 6 px are cropped on the left
    job = prepare("inpaint", video=str(clip), bbox="115,75,315,225", coords="source", **SMALL)
    rows, cols = np.nonzero(job.mask[0])
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (30, 90, 40, 120)
    # a source box reaching into the 6 cropped pixels keeps what the crop keeps, and says so
    job = prepare("inpaint", video=str(clip), bbox="5,75,315,225", coords="source", **SMALL)
    rows, cols = np.nonzero(job.mask[0])
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (30, 90, 0, 120)
    assert any("--bbox 5,75,315,225: cut to 0,30,120,90" in note for note in job.notes)
    with pytest.raises(InputError, match=r"bbox 0,75,10,225: lies in the part of the 832x480 source"):
        prepare("inpaint", video=str(clip), bbox="0,75,10,225", coords="source", **SMALL)
    with pytest.raises(InputError, match=r"bbox 0,75,900,225: .*\(source pixels, 832x480\)"):
        prepare("inpaint", video=str(clip), bbox="0,75,900,225", coords="source", **SMALL)


def test_tracking_options_reach_track_mask(clip, monkeypatch):
    import vacelab.tracking as tracking

    calls = {}

    def fake_track(video, *, boxes=None, points=None, text=None, model=None):
        calls.update(video=video.shape, boxes=boxes, points=points, text=text, model=model)
        mask = np.zeros(video.shape[:3], bool)
        mask[:, 40:60, 40:60] = True
        mask[10] = False  # a lost frame
        return mask

    monkeypatch.setattr(tracking, "track_mask", fake_track)
    job = prepare(
        "remove", video=str(clip), track_box=["10,20,50,60@3"], track_points=["-5,6,30,40@2"],
        track_model="some/model", grow=0, **SMALL,
    )  # fmt: skip
    assert calls["video"] == (17, *SIZE, 3) and calls["model"] == "some/model" and calls["text"] is None
    assert calls["boxes"] == [((10.0, 20.0, 50.0, 60.0), 3)]
    (xy, labels, frame), = calls["points"]  # fmt: skip
    assert xy.tolist() == [[5, 6], [30, 40]] and labels.tolist() == [0, 1] and frame == 2
    assert any("empty on frames 10" in n for n in job.notes)
    with pytest.raises(InputError, match="frame outside the clip"):
        prepare("inpaint", video=str(clip), track_box=["10,20,50,60@17"], **SMALL)
    with pytest.raises(InputError, match="track_box"):
        prepare("inpaint", video=str(clip), track_box=["10,20,500,60"], **SMALL)
    with pytest.raises(InputError, match="phrase is empty"):
        prepare("inpaint", video=str(clip), segment="  ", **SMALL)
    # a --coords source box is cut to the crop like --bbox, and the job says so
    job = prepare("inpaint", video=str(clip), track_box=["5,75,315,225@0"], coords="source", **SMALL)
    assert calls["boxes"] == [((0.0, 30.0, 120.0, 90.0), 0)]
    assert any("--track-box 5,75,315,225: cut to 0,30,120,90" in n for n in job.notes)
    assert any("mask tracked through the clip from 1 box(es)" in n for n in job.notes)


# ------------------------------------------------------------------------------------------------ outpaint
def test_outpaint_ratio_keeps_exactly_the_centred_box(clip, images):
    job = prepare("outpaint", video=str(clip), ratio=0.8, ref=[str(images[0])], auto_refs=3, **SMALL)
    inner_h, inner_w = 154, 256  # 0.8 * 192 = 153.6 -> 154 (even), 0.8 * 320 = 256
    top, left = (192 - inner_h) // 2, (320 - inner_w) // 2
    keep = np.zeros(SIZE, bool)
    keep[top : top + inner_h, left : left + inner_w] = True
    assert np.array_equal(job.mask, np.broadcast_to(~keep, job.mask.shape))
    content, _ = media.read_video(clip, size=(inner_h, inner_w), fps=16, max_frames=17)
    assert np.array_equal(job.video[:, top : top + inner_h, left : left + inner_w], content)
    assert (job.video[job.mask] == 127).all()
    assert len(job.refs) == 4 and np.array_equal(job.refs[0], media.read_image(images[0]))
    assert all(r.shape[0] < inner_h or r.shape[1] < inner_w for r in job.refs[1:])  # loose crops


def test_outpaint_expand_and_bad_ratio(clip):
    job = prepare("outpaint", video=str(clip), expand="32,16,64,0", fill="black", **SMALL)
    assert job.mask[:, 16:, 32:256].sum() == 0 and job.mask[:, :16].all() and job.mask[:, :, 256:].all()
    assert (job.video[job.mask] == 0).all()
    for ratio in (0, 1, 1.5, -0.2):
        with pytest.raises(InputError, match="ratio"):
            prepare("outpaint", video=str(clip), ratio=ratio, **SMALL)


# ------------------------------------------------------------------------------------- first / last frames
def test_firstframe_lastframe_firstlast(clip, images, source):
    first = prepare("firstframe", image=str(images[0]), frames=17, size="320x192")
    assert first.mask[0].sum() == 0 and first.mask[1:].all()
    assert np.array_equal(first.video[0], media.cover_crop(media.read_image(images[0]), SIZE))
    assert (first.video[1:] == 127).all()

    last = prepare("lastframe", video=str(clip), size="320x192", frames=9)
    whole, _ = media.read_video(clip, size=SIZE, fps=16)
    assert np.array_equal(last.video[8], whole[-1]) and not last.mask[8].any() and last.mask[:8].all()

    both = prepare("firstlast", image=str(images[0]), image2=str(images[1]), frames=17, size="320x192")
    assert not both.mask[0].any() and not both.mask[16].any() and both.mask[1:16].all()
    assert np.array_equal(both.video[16], media.cover_crop(media.read_image(images[1]), SIZE))


def test_extend(clip, source):
    job = prepare("extend", video=str(clip), keep=9, **SMALL)
    assert np.array_equal(job.video[:9], source[:9]) and (job.video[9:] == 127).all()
    assert not job.mask[:9].any() and job.mask[9:].all()
    odd = prepare("extend", video=str(clip), keep=10, **SMALL)
    assert any("MIXED_GROUP" in n for n in odd.notes)


# ----------------------------------------------------------------------------------------------- keyframes
def key_options(images):
    return dict(key=[f"0={images[0]}", f"8={images[1]}", f"16={images[2]}"], frames=17, size="320x192")


def test_keyframes_naive(images):
    job = prepare("keyframes", strategy="naive", **key_options(images))
    assert np.flatnonzero(~job.mask.all(axis=(1, 2))).tolist() == [0, 8, 16]
    assert (job.video[[1, 2, 3, 4, 9]] == 127).all()
    assert np.array_equal(job.video[8], media.cover_crop(media.read_image(images[1]), SIZE))


def test_keyframes_aligned_fill_whole_groups(images):
    job = prepare("keyframes", strategy="aligned", **key_options(images))
    groups = vae_groups(17)
    kept = [0, *groups[2], *groups[4]]  # frame 0 alone; 8 in frames 5-8; 16 in frames 13-16
    assert np.flatnonzero(~job.mask.all(axis=(1, 2))).tolist() == kept
    assert not job.mask[kept].any()
    key8 = media.cover_crop(media.read_image(images[1]), SIZE)
    assert all(np.array_equal(job.video[f], key8) for f in groups[2])
    for group in groups:  # every VAE group uniformly KEEP or GENERATE
        frames = job.mask[list(group)]
        assert (frames == frames[0]).all()


def test_keyframes_aligned_audit_has_no_mixed_group(images):
    from vacelab.audit import audit_job

    aligned = audit_job(prepare("keyframes", strategy="aligned", **key_options(images)))
    naive = audit_job(prepare("keyframes", strategy="naive", **key_options(images)))
    assert "MIXED_GROUP" not in {f.code for f in aligned.findings}
    assert "MIXED_GROUP" in {f.code for f in naive.findings}
    # under the aligned mask encoding the aligned job is clean; under reference, keyframe 8 (group 2)
    # is read early by step 1, which the job's notes say
    job = prepare("keyframes", strategy="aligned", **key_options(images))
    codes = {f.code for f in audit_job(job, encoding="aligned").findings}
    assert not codes & {"MIXED_GROUP", "MASK_SAMPLE_MISMATCH"}
    anchored = prepare("keyframes", strategy="anchor", **key_options(images))
    assert not audit_job(anchored, encoding="aligned").findings  # the KEEP strip also anchors every step
    assert any(n.startswith("keyframes 8:") and "--mask-encoding aligned" in n for n in job.notes)


def test_keyframes_snap_and_anchor(images):
    job = prepare("keyframes", key=[f"5={images[0]}", f"6={images[1]}"], frames=17, size="320x192")
    assert any("keyframe 6 snapped to VAE group 3 (frames 9-12)" in n for n in job.notes)
    assert not job.mask[5:13].any()

    job = prepare("keyframes", strategy="anchor", anchor_px=16, **key_options(images))
    assert not job.mask[:, -16:].any() and job.mask[1:5, :-16].all()
    keys = [media.cover_crop(media.read_image(p), SIZE) for p in images[:3]]
    assert np.array_equal(job.video[3, -16:], keys[0][-16:])  # nearest keyframe of frame 3 is frame 0
    assert np.array_equal(job.video[11, -16:], keys[1][-16:])  # frame 11: keyframe 8


def test_keyframes_from_video_every(clip, source):
    job = prepare("keyframes", video=str(clip), every=8, strategy="naive", **SMALL)
    assert np.flatnonzero(~job.mask.all(axis=(1, 2))).tolist() == [0, 8, 16]
    assert np.array_equal(job.video[8], source[8]) and np.array_equal(job.original, source)


@pytest.mark.parametrize(
    "keys, message",
    [(["0=A", "17=B"], "outside the clip"), (["0=A", "0=B"], "duplicate keyframe"), (["x=A"], "FRAME=IMAGE")],
)
def test_keyframe_errors(images, keys, message):
    keys = [k.replace("A", str(images[0])).replace("B", str(images[1])) for k in keys]
    with pytest.raises(InputError, match=message):
        prepare("keyframes", key=keys, frames=17)


# --------------------------------------------------------------------------------------- frames and windows
def test_frame_count_rules(clip, tmp_path):
    short = tmp_path / "short.mp4"
    frames, _ = media.read_video(clip, size=SIZE, max_frames=30)
    media.write_mp4(short, frames, 16)
    job = prepare("inpaint", video=str(short), bbox="0,0,32,32", size="320x192")
    assert job.mask.shape[0] == 29 and any("using 29" in n for n in job.notes)
    with pytest.raises(InputError, match="holds 30 frames"):
        prepare("inpaint", video=str(short), bbox="0,0,32,32", size="320x192", frames=33)
    with pytest.raises(InputError, match="not 4n\\+1"):
        prepare("inpaint", video=str(short), bbox="0,0,32,32", size="320x192", frames=20)


def test_long_job_windows(clip):
    job = prepare(
        "inpaint", video=str(clip), bbox="0,0,32,32", size="160x96", frames="all", window=33, overlap=9
    )
    assert job.mask.shape[0] == 97
    assert job.windows == [(0, 33), (24, 57), (48, 81), (72, 97)]  # last: 25 frames, not 33
    with pytest.raises(InputError, match="overlap"):
        prepare(
            "inpaint", video=str(clip), bbox="0,0,32,32", size="160x96", frames="all", window=33, overlap=33
        )
    with pytest.raises(InputError, match="window 32"):
        prepare("inpaint", video=str(clip), bbox="0,0,32,32", size="160x96", frames="all", window=32)


def test_refs_in_order_with_notes(clip, images):
    job = prepare("inpaint", video=str(clip), bbox="0,0,32,32", ref=[str(p) for p in images], **SMALL)
    assert [r.shape[:2] for r in job.refs] == [(96, 160), (200, 120), (40, 40), (60, 400)]
    assert any("reference 2" in n and "tiny" in n for n in job.notes)
    assert any("reference 3" in n and "aspect" in n for n in job.notes)


# ------------------------------------------------------------------------------------------- job folder
def test_folder_round_trip_and_official_files(clip, images, tmp_path):
    out = tmp_path / "job"
    job = prepare(
        "remove", video=str(clip), bbox="40,30,120,90", what="gun", ref=[str(images[1]), str(images[0])],
        out=out, **SMALL,
    )  # fmt: skip
    back = load_job(out)
    assert np.array_equal(back.video, job.video) and np.array_equal(back.mask, job.mask)
    assert [r.shape for r in back.refs] == [r.shape for r in job.refs]
    assert all(np.array_equal(a, b) for a, b in zip(back.refs, job.refs, strict=True))
    manifest = json.loads((out / "job.json").read_text())
    assert manifest["params"]["what"] == "gun" and manifest["negative_prompt"] == "gun"
    assert manifest["geometry"]["frames"] == 17 and len(manifest["mask_area"]) == 17

    # what the official VACE scripts and ComfyUI read: 255 = generate, thresholded
    mask_video, fps = media.read_video(out / "src_mask.mp4")
    assert mask_video.shape == (17, *SIZE, 3) and fps == 16
    assert np.count_nonzero((mask_video[..., 0] >= 128) != back.mask) <= 0.001 * back.mask.size
    src_video, _ = media.read_video(out / "src_video.mp4")
    assert np.abs(src_video.astype(int) - job.video).mean() < 3
    pngs = sorted((out / "src_ref_images").glob("*.png"))
    assert [media.read_image(p).shape for p in pngs] == [(200, 120, 3), (96, 160, 3)]
    assert (out / "preview.gif").stat().st_size < 3_000_000


def test_job_rebuilds_from_its_recorded_params(clip, tmp_path):
    args = [
        "--video",
        str(clip),
        "--bbox",
        "40,30,120,90",
        "--what",
        "gun",
        "--size",
        "320x192",
        "--frames",
        "17",
    ]
    code = main(["prepare", "remove", *args, "--fill-feather", "2", "--out", str(tmp_path / "job")])
    assert code == 0
    manifest = json.loads((tmp_path / "job" / "job.json").read_text())
    assert manifest["params"]["frames"] == 17
    again = prepare(manifest["task"], **manifest["params"])
    first = load_job(tmp_path / "job")
    assert np.array_equal(again.video, first.video) and np.array_equal(again.mask, first.mask)
    assert again.negative_prompt == first.negative_prompt == "gun"


def test_portrait_source_gives_portrait_job(clip, tmp_path):
    frames, _ = media.read_video(clip, size=(96, 160), max_frames=5)
    media.write_mp4(tmp_path / "portrait.mp4", np.ascontiguousarray(frames.transpose(0, 2, 1, 3)), 16)
    job = prepare("inpaint", video=str(tmp_path / "portrait.mp4"), bbox="0,0,16,16", frames=5)
    assert job.video.shape == (5, 832, 480, 3)


def test_prepare_refuses_bad_out_before_work(clip, tmp_path):
    occupied = tmp_path / "full"
    occupied.mkdir()
    (occupied / "x").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        prepare("inpaint", video=str(clip), bbox="0,0,8,8", out=occupied, **SMALL)
    with pytest.raises(InputError, match="does not apply"):
        prepare("inpaint", video=str(clip), bbox="0,0,8,8", ratio=0.5, **SMALL)
    frames = tmp_path / "frames"  # an image-folder video: a job written inside it would change the input
    for i in range(3):
        media.write_png(frames / f"{i:03d}.png", np.full((32, 48, 3), 40 * i, np.uint8))
    with pytest.raises(InputError, match="lies inside the input folder"):
        prepare("inpaint", video=str(frames), bbox="0,0,8,8", out=frames / "job", size="48x32", frames=1)
    assert sorted(p.name for p in frames.iterdir()) == ["000.png", "001.png", "002.png"]


# ------------------------------------------------------------------------------------------------- CLI
def test_cli_success(clip, tmp_path, capsys):
    out = tmp_path / "job"
    code = main(["prepare", "inpaint", "--video", str(clip), "--bbox", "40,30,120,90", "--size", "320x192",
                 "--frames", "17", "--out", str(out)])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0 and (out / "job.json").is_file()
    assert f"job written to {out}" in printed and "17 frames 320x192" in printed


def cli_error(args, capsys) -> str:
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 if not isinstance(code, SystemExit) else code.code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


def test_cli_errors_one_line_exit_2_nothing_written(clip, images, tmp_path, capsys):
    bad_video = tmp_path / "bad.mp4"
    bad_video.write_text("not a video")
    poly = tmp_path / "poly.json"
    poly.write_text("[[1, 2], [3")
    existing = tmp_path / "existing.txt"
    existing.write_text("keep me")
    inputs_folder = tmp_path / "inputs"
    inputs_folder.mkdir()
    own = inputs_folder / "clip.mp4"
    own.write_bytes(Path(clip).read_bytes())
    before = {p: digest(p) for p in (bad_video, poly, existing, own, *images)}
    base = ["prepare", "--size", "320x192", "--frames", "17"]
    cases = [
        (["inpaint", "--video", str(bad_video), "--bbox", "0,0,8,8"], "not a readable video"),
        (["outpaint", "--video", str(clip), "--ratio", "1.2"], "--ratio"),
        (["keyframes", "--key", f"0={images[0]}", "--key", f"40={images[1]}"], "outside the clip"),
        (["keyframes", "--key", f"4={images[0]}", "--key", f"4={images[1]}"], "duplicate"),
        (["keyframes", "--key", f"-1={images[0]}", "--key", f"4={images[1]}"], "--key -1=...: keyframe"),
        (["inpaint", "--video", str(clip), "--bbox", "-5,0,8,8"], "--bbox"),
        (["inpaint", "--video", str(clip), "--polygon", str(poly)], "not valid JSON"),
        (["inpaint", "--video", str(clip), "--bbox", "0,0,8"], "--bbox"),
        (["firstframe", "--image", str(tmp_path / "missing.png")], "no such image"),
    ]
    for i, (args, message) in enumerate(cases):
        out = tmp_path / f"out{i}"
        line = cli_error([*base[:1], args[0], *base[1:], *args[1:], "--out", str(out)], capsys)
        assert message in line
        assert not out.exists()
    for out, message in [(existing, "existing file"), (inputs_folder, "not empty")]:
        line = cli_error([*base[:1], "inpaint", *base[1:], "--video", str(own), "--bbox", "0,0,8,8", "--out",
                          str(out)], capsys)  # fmt: skip
        assert message in line
    assert {p: digest(p) for p in before} == before
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_tracked_mask_goes_through_grow_into_the_job_folder(clip, tmp_path, capsys):
    from vacelab.tasks.masks import grow
    from vacelab.testing.sam import save_tiny_sam2
    from vacelab.tracking import track_mask

    model = save_tiny_sam2(tmp_path / "sam2")
    frames, _ = media.read_video(clip, size=(96, 160), fps=16, max_frames=5)  # the job's own frames
    tracked = track_mask(frames, boxes=[((40, 20, 100, 60), 2)], model=str(model), progress=False)
    out = tmp_path / "job"
    args = ["--video", str(clip), "--size", "160x96", "--frames", "5", "--track-box", "40,20,100,60@2"]
    code = main(["prepare", "remove", *args, "--track-model", str(model), "--out", str(out)])
    assert code == 0 and "findings" in capsys.readouterr().out
    job = load_job(out)
    assert np.array_equal(job.mask, grow(tracked, 8))  # remove's default grow, like any mask
    assert (job.video[job.mask] == 127).all()
    assert len(json.loads((out / "job.json").read_text())["mask_area"]) == 5


def test_a_reader_that_leaves_early_is_no_error(clip, tmp_path):
    """`vacelab prepare ... | head -1`: the job is written and nothing but the first line is printed."""
    script = f"{sys.executable} -m vacelab prepare inpaint --video {clip} --bbox 10,10,80,60 --size 160x96 "
    script += f"--frames 9 --out {tmp_path / 'job'} | head -1; exit ${{PIPESTATUS[0]}}"
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 141 and proc.stderr == "", proc.stderr  # 128 + SIGPIPE, no traceback
    assert proc.stdout.startswith("inpaint: 9 frames") and proc.stdout.count("\n") == 1
    assert (tmp_path / "job" / "job.json").is_file()


def test_reference_to_video_keeps_the_references_in_order(tmp_path, capsys):
    first = np.full((300, 200, 3), (200, 30, 30), np.uint8)  # portrait: the job takes its orientation
    second = np.full((100, 100, 3), (30, 200, 30), np.uint8)
    media.write_png(tmp_path / "a.png", first)
    media.write_png(tmp_path / "b.png", second)
    argv = ["prepare", "reference", "--ref", str(tmp_path / "a.png"), "--ref", str(tmp_path / "b.png")]
    assert main([*argv, "--frames", "17", "--out", str(tmp_path / "j")]) == 0
    job = load_job(tmp_path / "j")
    assert job.task == "reference" and job.mask.shape == (17, 832, 480) and job.mask.all()
    assert [r.shape for r in job.refs] == [first.shape, second.shape]
    assert np.array_equal(job.refs[0], first) and np.array_equal(job.refs[1], second)
    capsys.readouterr()
    assert main(["prepare", "reference", "--frames", "17", "--out", str(tmp_path / "k")]) == 2
    assert capsys.readouterr().err == "error: --ref: reference needs at least one reference image\n"
    assert not (tmp_path / "k").exists()


def test_every_example_in_prepare_help_is_accepted():
    """The examples ``vacelab prepare --help`` prints parse and name only options their task takes."""
    import shlex

    from vacelab.cli import build_parser
    from vacelab.cli.prepare import EXAMPLES
    from vacelab.tasks.options import make_options

    lines = [line.strip() for line in EXAMPLES.splitlines() if line.strip().startswith("vacelab prepare")]
    assert len(lines) >= 9
    skip = {"task", "out", "command", "handler"}
    for line in lines:
        args = build_parser().parse_args(shlex.split(line, comments=True)[1:])
        options = {k: v for k, v in vars(args).items() if k not in skip and v is not None}
        make_options(args.task, options)  # raises InputError for an option the task does not take
