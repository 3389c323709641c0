"""``prepare control``: gray, edges, scribble, depth, pose and layout control videos, whole or masked."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vacelab import prepare
from vacelab.cli import main
from vacelab.errors import InputError
from vacelab.job import Job, load_job
from vacelab.sample import sample_path

COMMON = {"video": str(sample_path()), "size": "416x240", "frames": 17}


def test_gray_is_the_luminance_on_three_equal_channels():
    job = prepare("control", kind="gray", **COMMON)
    assert job.mask.all() and job.task == "control"
    assert (job.video[..., 0] == job.video[..., 1]).all() and (job.video[..., 1] == job.video[..., 2]).all()
    luma = job.original.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert np.corrcoef(luma.ravel(), job.video[..., 0].ravel())[0, 1] > 0.95


@pytest.mark.parametrize("kind", ["edges", "scribble"])
def test_edges_and_scribbles_are_line_drawings(kind):
    video = prepare("control", kind=kind, **COMMON).video
    lines = (video[..., 0] == 255).mean()
    assert set(np.unique(video)) <= {0, 255}  # no mid-tones: lines on black
    assert 0.005 < lines < 0.5  # not blank, not filled


def test_scribble_is_simpler_and_thicker_than_edges():
    edges = prepare("control", kind="edges", **COMMON).video[..., 0] > 0
    scribble = prepare("control", kind="scribble", **COMMON).video[..., 0] > 0
    assert scribble.mean() > edges.mean()  # dilated lines
    import cv2

    pieces = [cv2.connectedComponents(f.astype(np.uint8))[0] for f in (edges[0], scribble[0])]
    assert pieces[1] < pieces[0]  # fewer, joined strokes


def test_masked_control_generates_exactly_the_region_and_keeps_the_source():
    job = prepare("control", kind="edges", bbox="100,50,300,200", **COMMON)
    expected = np.zeros(job.mask.shape, bool)
    expected[:, 50:200, 100:300] = True
    assert np.array_equal(job.mask, expected)
    assert np.array_equal(job.video[~job.mask], job.original[~job.mask])  # KEEP: the source
    whole = prepare("control", kind="edges", **COMMON).video
    assert np.array_equal(job.video[job.mask], whole[job.mask])  # GENERATE: the control


def test_an_unknown_or_missing_kind_is_one_line(tmp_path, capsys):
    argv = ["prepare", "control", "--video", str(sample_path()), "--frames", "17", "--size", "416x240"]
    assert main([*argv, "--kind", "depthh", "--out", str(tmp_path / "a")]) == 2
    kinds = "gray, edges, scribble, depth, pose, layout"
    assert capsys.readouterr().err == f"error: --kind depthh: choose from {kinds}\n"
    assert main([*argv, "--out", str(tmp_path / "b")]) == 2
    assert capsys.readouterr().err == f"error: --kind: required: {kinds}\n"
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_audit_says_what_a_control_or_reference_job_reads(tmp_path):
    from vacelab import audit_job, media

    control = audit_job(prepare("control", kind="gray", **COMMON))
    assert "control job: the GENERATE area holds a control video" in control.text()
    assert not control.findings  # no KEEP expected: nothing to warn about
    media.write_png(tmp_path / "r.png", np.full((64, 64, 3), 90, np.uint8))
    reference = audit_job(prepare("reference", ref=[str(tmp_path / "r.png")], frames=17, size="416x240"))
    assert "reference job: every frame is GENERATE" in reference.text() and not reference.findings


# ------------------------------------------------------------------------- model-drawn and layout kinds
@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny random Depth Anything, ViTPose and RT-DETR folders, loaded through ``--control-model DIR``."""
    from vacelab.testing.annotators import save_tiny_depth, save_tiny_person_detector, save_tiny_vitpose

    root = tmp_path_factory.mktemp("annotators")
    return {
        "depth": str(save_tiny_depth(root / "depth")),
        "pose": str(save_tiny_vitpose(root / "pose")),
        "person": str(save_tiny_person_detector(root / "person")),
    }


def prepare_cli(tmp_path, *args, frames: int = 17) -> Job:
    out = tmp_path / "job"
    argv = ["prepare", "control", "--video", COMMON["video"], "--size", "416x240", "--frames", str(frames)]
    assert main([*argv, *map(str, args), "--out", str(out)]) == 0
    return load_job(out)


def read_like_vace(path) -> np.ndarray:
    """Frames as VACE's own reader decodes them (``read_video_frames(use_type='cv2')``: OpenCV, RGB)."""
    import cv2

    capture, frames = cv2.VideoCapture(str(path)), []
    ok, frame = capture.read()
    while ok:
        frames.append(frame[..., ::-1])
        ok, frame = capture.read()
    capture.release()
    return np.stack(frames)


def test_depth_normalises_once_over_the_clip():
    from vacelab.annotators.drawing import depth_frames

    depth = np.stack([np.linspace(0, 1, 12).reshape(3, 4), np.linspace(2, 4, 12).reshape(3, 4)])
    frames = depth_frames(depth)
    assert frames.shape == (2, 3, 4, 3) and (frames == frames[..., :1]).all()  # three equal channels
    assert frames[0, ..., 0].max() == int(255 / 4) and frames[0, 0, 0, 0] == 0  # near = bright, clip min
    assert frames[1, ..., 0].min() == int(255 / 2) and frames[1, -1, -1, 0] == 255  # clip max
    assert not depth_frames(np.full((2, 3, 4), 7.0)).any()  # a flat clip: no depth to show


def test_depth_job_with_a_tiny_model(models, tmp_path):
    """A clip whose second half is one flat colour: its raw depth range is far narrower than the first
    half's, which a per-frame normalisation would stretch to 0..255."""
    from vacelab import media
    from vacelab.annotators import estimate_depth
    from vacelab.annotators.drawing import depth_frames

    source = prepare("control", kind="gray", **COMMON).original
    source[9:] = (90, 140, 200)
    media.write_mp4(tmp_path / "half-flat.mp4", source, 16)
    out = tmp_path / "job"
    argv = ["prepare", "control", "--kind", "depth", "--video", tmp_path / "half-flat.mp4", "--frames", 17]
    argv += ["--size", "416x240"]
    assert main([*map(str, argv), "--control-model", models["depth"], "--out", str(out)]) == 0
    job = load_job(out)
    assert job.video.shape == (17, 240, 416, 3) and job.mask.all()  # every frame, whole clip GENERATE
    again = prepare("control", **json.loads((out / "job.json").read_text())["params"])
    assert np.array_equal(again.video, job.video)
    raw = estimate_depth(again.original, model=models["depth"], progress=False)
    assert np.array_equal(job.video, depth_frames(raw))
    gray = job.video[..., 0]
    assert gray.min() == 0 and gray.max() == 255  # the clip's range
    share = np.ptp(raw, axis=(1, 2)) / np.ptp(raw)  # each frame's depth range in the clip's
    assert share[9:].max() < 0.8 * share[:9].max()  # the flat frames' raw range is narrower...
    assert np.allclose(np.ptp(gray, axis=(1, 2)), 255 * share, atol=2)  # ...and stays so: not stretched
    assert read_like_vace(out / "src_video.mp4").shape == (17, 240, 416, 3)
    assert (read_like_vace(out / "src_mask.mp4") >= 128).all()


def test_pose_skeleton_is_drawn_at_the_keypoints():
    from vacelab.annotators.drawing import COLORS, LIMBS, pose_frame

    keypoints = np.array(
        [[400, 100], [390, 90], [410, 90], [380, 95], [420, 95], [360, 140], [440, 140], [340, 200],
         [460, 200], [330, 260], [470, 260], [370, 260], [430, 260], [365, 340], [435, 340], [360, 420],
         [440, 420]], float,
    )  # fmt: skip
    scores = np.full(17, 0.9)
    scores[16] = 0.1  # the right ankle: not seen
    frame = pose_frame([(keypoints, scores)], (480, 832))
    assert frame.shape == (480, 832, 3) and (frame[:40] == 0).all()  # black above the head
    pixel = lambda xy: tuple(int(v) for v in frame[int(xy[1]), int(xy[0])])  # noqa: E731
    assert pixel(keypoints[0]) == COLORS[0]  # the nose: OpenPose point 0
    assert pixel(keypoints[6]) == COLORS[2] and pixel(keypoints[5]) == COLORS[5]  # shoulders: 2 (right), 5
    assert pixel(keypoints[[5, 6]].mean(0)) == COLORS[1]  # the neck, between the shoulders
    assert pixel(keypoints[15]) == COLORS[13]  # the left ankle
    assert pixel(keypoints[16]) == (0, 0, 0)  # the unseen right ankle and its shin are not drawn
    assert pixel(keypoints[[14, 16]].mean(0)) == (0, 0, 0)
    knee_to_ankle = LIMBS.index((12, 13))  # the left shin, dimmed to 60 % under the joints
    dimmed = np.array(COLORS[knee_to_ankle]) * 0.6
    assert np.abs(np.array(pixel(keypoints[[13, 15]].mean(0))) - dimmed).max() <= 2


def test_pose_job_inside_a_box_with_a_tiny_model(models, tmp_path):
    args = ["--kind", "pose", "--bbox", "120,32,264,224", "--control-model", models["pose"]]
    job = prepare_cli(tmp_path, *args)
    expected = np.zeros(job.mask.shape, bool)
    expected[:, 32:224, 120:264] = True
    assert np.array_equal(job.mask, expected)  # GENERATE: exactly the person's box
    source = prepare("control", kind="gray", **COMMON).original
    assert np.array_equal(job.video[~job.mask], source[~job.mask])  # KEEP: the source
    inside = job.video[:, 32:224, 120:264]
    drawn = inside.max(-1) > 0
    assert drawn.any(axis=(1, 2)).all()  # a skeleton on every frame
    colours = {tuple(int(v) for v in c) for c in inside[drawn & (inside.max(-1) == 255)]}
    from vacelab.annotators.drawing import COLORS

    assert colours <= set(COLORS)  # joints in OpenPose's colours only


def test_pose_keypoints_of_given_boxes_lie_in_them(models):
    from vacelab.annotators import estimate_poses

    frames = prepare("control", kind="gray", **COMMON).original[:3]
    boxes = [[(120, 30, 260, 230)], [], [(10, 10, 110, 200), (300, 20, 400, 230)]]
    poses = estimate_poses(frames, boxes=boxes, model=models["pose"], progress=False)
    assert [len(p) for p in poses] == [1, 0, 2]
    calls = []
    one_by_one = estimate_poses(
        frames, boxes=boxes, model=models["pose"], batch=1, progress=lambda *done: calls.append(done)
    )
    assert calls == [(1, 3), (2, 3), (3, 3)]  # progress(done, total) after each frame
    assert [len(p) for p in one_by_one] == [1, 0, 2]  # batches change nothing but float rounding
    pairs = [(a, b) for f, g in zip(poses, one_by_one, strict=True) for a, b in zip(f, g, strict=True)]
    assert all(np.allclose(a[0], b[0], atol=0.01) and np.allclose(a[1], b[1], atol=1e-5) for a, b in pairs)
    for frame_boxes, people in zip(boxes, poses, strict=True):
        for (x0, y0, x1, y1), (keypoints, scores) in zip(frame_boxes, people, strict=True):
            assert keypoints.shape == (17, 2) and scores.shape == (17,)
            # ViTPose reads the box widened to its 3:4 crop, padded by 1.25, on a 12x16 heatmap: every
            # keypoint lies in that crop, give or take one heatmap cell
            width, height = max(x1 - x0, 0.75 * (y1 - y0)), max(y1 - y0, (x1 - x0) / 0.75)
            half = np.array([width, height]) * 1.25 / 2 * (1 + 2 / np.array([12, 16]))
            centre = np.array([x0 + x1, y0 + y1]) / 2
            assert (np.abs(keypoints - centre) <= half).all()


def test_pose_job_with_a_person_detector(models, tmp_path):
    args = ["--kind", "pose", "--control-model", models["pose"], "--person-model", models["person"]]
    job = prepare_cli(tmp_path, *args, frames=5)
    assert job.mask.all() and job.video.shape == (5, 240, 416, 3)
    note = next(n for n in job.notes if n.startswith("control: pose"))
    assert f"found by {models['person']}" in note
    drawn = int(note.split("; ")[-1].split()[0])
    assert drawn > 0 and job.video.any()  # the seeded random detector finds persons: their skeletons


def test_layout_follows_the_keyed_boxes(tmp_path):
    from vacelab.tasks.masks import keyed_bbox_mask

    keys = ["20,20,100,80@0", "260,120,380,220@16"]
    job = prepare("control", kind="layout", bbox=keys, **COMMON)
    assert job.mask.all()  # the layout replaces the whole video
    boxes = keyed_bbox_mask([(0, (20, 20, 100, 80)), (16, (260, 120, 380, 220))], 17, (240, 416))
    for frame, box in zip(job.video, boxes, strict=True):
        assert (frame == frame[..., :1]).all() and set(np.unique(frame)) == {0, 255}  # black on white
        rows, cols = np.flatnonzero(box.any(1)), np.flatnonzero(box.any(0))
        top, bottom, left, right = rows[0], rows[-1], cols[0], cols[-1]
        black = frame[..., 0] == 0
        assert black[top, left:right].all() and black[bottom, left:right].all()  # the box's outline
        assert black[top:bottom, left].all() and black[top:bottom, right].all()
        near = np.zeros_like(black)  # OpenCV's pen of thickness 3 covers 2 px either side of the outline
        near[max(top - 2, 0) : bottom + 3, max(left - 2, 0) : right + 3] = True
        near[top + 3 : bottom - 2, left + 3 : right - 2] = False
        assert not (black & ~near).any()  # nothing else: white inside and out


def test_model_options_are_refused_where_they_do_not_apply(models, tmp_path, capsys):
    argv = ["prepare", "control", "--video", COMMON["video"], "--frames", "17", "--size", "416x240"]
    cases = [
        (["--kind", "edges", "--control-model", models["depth"]], "error: --control-model "),
        (["--kind", "depth", "--person-model", models["person"]], "error: --person-model "),
        (["--kind", "layout"], "error: --kind layout: draws the outline of an object"),
        (["--kind", "pose", "--bbox", "1,1,50,50", "--person-model", "x/y"], "error: --person-model x/y: "),
    ]
    for n, (args, start) in enumerate(cases):
        out = tmp_path / str(n)
        assert main([*argv, *args, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(start) and err.count("\n") == 1, err
        assert not out.exists()


def test_a_batch_manifest_prepares_the_new_kinds(tmp_path):
    from vacelab.manifest import check_prepare

    (tmp_path / "models" / "depth").mkdir(parents=True)
    table = {"task": "control", "kind": "depth", "video": COMMON["video"], "control_model": "models/depth"}
    checked = check_prepare(table, "m.toml: [[jobs]] 'a'", tmp_path)
    assert checked["control_model"] == str(tmp_path / "models" / "depth")
    layout = check_prepare({"task": "control", "kind": "layout", "bbox": "1,1,9,9"}, "m", tmp_path)
    assert layout["kind"] == "layout"
    with pytest.raises(InputError, match=r"^m: prepare: kind = dept: choose from gray, .*, layout$"):
        check_prepare({"task": "control", "kind": "dept"}, "m", tmp_path)


def test_the_preview_shows_source_control_and_mask():
    from vacelab.render import PreviewFrames

    job = prepare("control", kind="edges", bbox="100,48,300,192", **COMMON)
    frames = PreviewFrames(job)  # 416 px wide sides: every other pixel
    preview = np.stack(list(frames))
    assert preview.shape == frames.shape == (17, 120, 3 * 208 + 2 * 4, 3)
    source, control, mask = (preview[:, :, i * 212 : i * 212 + 208] for i in range(3))
    assert np.array_equal(source, job.original[:, ::2, ::2])
    assert np.array_equal(control, job.video[:, ::2, ::2])  # the control as the model reads it, untinted
    assert np.array_equal(mask[..., 0] == 255, job.mask[:, ::2, ::2])


def test_a_model_of_another_kind_is_refused_in_one_line(models, tmp_path, capsys):
    argv = ["prepare", "control", "--video", COMMON["video"], "--frames", "5", "--size", "416x240"]
    out = tmp_path / "job"
    assert main([*argv, "--kind", "depth", "--control-model", models["pose"], "--out", str(out)]) == 2
    err = capsys.readouterr().err
    expected = f"{models['pose']!r} is a 'vitpose' model, expected one of depth_anything, dpt"
    assert err == f"error: depth model: {expected}\n"
    assert not out.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (
        main(
            [*argv, "--kind", "pose", "--bbox", "1,1,50,50", "--control-model", str(empty), "--out", str(out)]
        )
        == 2
    )
    no_model = "no model in this folder (expected one saved with save_pretrained)"
    assert capsys.readouterr().err == f"error: --control-model {empty}: {no_model}\n" and not out.exists()


def test_depth_maps_the_nearest_pixel_to_255_and_the_farthest_to_0_exactly():
    """float32 rounding must not put the clip's nearest pixel at 254 (255 / span, multiplied, could)."""
    from vacelab.annotators.drawing import depth_frames

    rng = np.random.default_rng(0)
    for _ in range(500):
        depth = rng.random((2, 3, 4), dtype=np.float32) * np.float32(rng.uniform(0.01, 100)) + rng.uniform(
            0, 50
        )
        gray = depth_frames(depth)[..., 0]
        assert gray.min() == 0 and gray.max() == 255


def test_keep_source_is_the_masked_choice_in_place():
    """keep_source (the control over the region's box, the source elsewhere, in place) gives np.where's
    choice, on an empty frame and a region of scattered pixels too."""
    from vacelab.tasks.control import keep_source

    rng = np.random.default_rng(4)
    drawn, frames = rng.integers(0, 256, (2, 3, 20, 30, 3), dtype=np.uint8)
    region = rng.random((3, 20, 30)) < 0.1
    region[1] = False
    expected = np.where(region[..., None], drawn, frames)
    assert keep_source(drawn, frames, region) is drawn and np.array_equal(drawn, expected)
