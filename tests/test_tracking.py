"""track_mask with tiny random SAM 2 / SAM 3 video models saved and loaded back offline.

Random weights make the masks' content arbitrary, so the tests check plumbing facts: sizes, every frame
produced in both directions, the prompt reaching frames before and after it, objects merging into their
union, the manual path agreeing with transformers' own prompt handling, and one-line errors.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from vacelab.errors import InputError
from vacelab.testing.sam import IMAGE_SIZE, save_tiny_sam2, save_tiny_sam3
from vacelab.tracking import Prompt, track_mask

FRAMES, HEIGHT, WIDTH = 7, 96, 160
BOX_A, BOX_B = (20, 20, 80, 70), (90, 10, 150, 60)


@pytest.fixture(scope="module")
def sam2_dir(tmp_path_factory):
    return str(save_tiny_sam2(tmp_path_factory.mktemp("tiny-sam2") / "model"))


@pytest.fixture(scope="module")
def sam3_dir(tmp_path_factory):
    return str(save_tiny_sam3(tmp_path_factory.mktemp("tiny-sam3") / "model"))


@pytest.fixture(scope="module")
def clip():
    return np.random.default_rng(0).integers(0, 256, (FRAMES, HEIGHT, WIDTH, 3), dtype=np.uint8)


def track(clip, model, **kw):
    return track_mask(clip, model=model, progress=False, **kw)


# ---------------------------------------------------------------------------------------------- SAM 2
def test_box_on_middle_frame_gives_a_mask_for_every_frame_both_ways(clip, sam2_dir):
    calls = []
    mask = track_mask(clip, boxes=[(BOX_A, 3)], model=sam2_dir, progress=lambda d, t: calls.append((d, t)))
    assert mask.shape == (FRAMES, HEIGHT, WIDTH) and mask.dtype == bool
    assert calls == [(i, FRAMES) for i in range(1, FRAMES + 1)]
    assert np.array_equal(mask, track(clip, sam2_dir, boxes=[(BOX_A, 3)]))  # deterministic
    other = track(clip, sam2_dir, boxes=[(BOX_B, 3)])
    # the prompt on frame 3 reaches the first and the last frame: propagation went backward and forward
    assert not np.array_equal(mask[0], other[0]) and not np.array_equal(mask[-1], other[-1])


def test_default_progress_is_a_bar_over_frames_on_a_terminal_only(clip, sam2_dir, capsys, monkeypatch):
    track_mask(clip[:2], boxes=[(BOX_A, 0)], model=sam2_dir)
    assert capsys.readouterr().err == ""  # stderr is no terminal here (a log, a pipe): no bar drawn into it
    track_mask(clip[:2], boxes=[(BOX_A, 0)], model=sam2_dir, progress=True)
    err = capsys.readouterr().err
    assert "tracking" in err and "2/2" in err
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    track_mask(clip[:2], boxes=[(BOX_A, 0)], model=sam2_dir)
    assert "2/2" in capsys.readouterr().err


def test_propagation_order_covers_the_clip_from_the_earliest_prompt(clip, sam2_dir):
    import torch
    from transformers import Sam2VideoModel

    from vacelab.tracking._sam2 import ManualFeeder, propagate

    net = Sam2VideoModel.from_pretrained(sam2_dir).eval()
    feeder = ManualFeeder.from_pretrained(sam2_dir, net.config.image_size)
    prompts = [Prompt(6, ((30.0, 40.0),), (1,)), Prompt(3, ((20.0, 20.0), (80.0, 70.0)), (2, 3))]
    with torch.inference_mode():
        session = feeder.open_session(clip, torch.device("cpu"), torch.float32)
        order = [(frame, tuple(logits.shape)) for frame, logits in propagate(net, session, feeder, prompts)]
    low = IMAGE_SIZE // 4
    assert order == [(f, (2, 1, low, low)) for f in [3, 4, 5, 6, 3, 2, 1, 0]]
    # each object is conditioned on its own frame
    assert list(session.output_dict_per_obj[0]["cond_frame_outputs"]) == [6]
    assert list(session.output_dict_per_obj[1]["cond_frame_outputs"]) == [3]


def test_several_objects_merge_into_their_union(clip, sam2_dir):
    a = track(clip, sam2_dir, boxes=[(BOX_A, 3)])
    b = track(clip, sam2_dir, points=[([(120, 30), (100, 50)], [1, 0], 3)])
    both = track(clip, sam2_dir, boxes=[(BOX_A, 3)], points=[([(120, 30), (100, 50)], [1, 0], 3)])
    assert np.array_equal(both, a | b)
    assert not np.array_equal(both, a) and not np.array_equal(both, b)


def test_bf16_runs_and_keeps_the_shape(clip, sam2_dir):
    mask = track(clip[:3], sam2_dir, boxes=[(BOX_A, 1)], dtype="bf16", device="cpu")
    assert mask.shape == (3, HEIGHT, WIDTH) and mask.dtype == bool


@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs a CUDA GPU")
def test_cuda_runs_fp32_like_the_cpu_and_bf16(clip, sam2_dir):
    cpu = track(clip, sam2_dir, boxes=[(BOX_A, 3)], device="cpu", dtype="fp32")
    gpu = track(clip, sam2_dir, boxes=[(BOX_A, 3)], device="cuda", dtype="fp32")
    assert (gpu == cpu).mean() > 0.9  # same plumbing; random weights amplify TF32/kernel differences
    bf16 = track(clip, sam2_dir, boxes=[(BOX_A, 3)], device="cuda")  # auto: bf16 on CUDA
    assert bf16.shape == cpu.shape and bf16.dtype == bool


def test_manual_prompts_equal_transformers_processor_prompts():
    """The manual feeder adds exactly what Sam2VideoProcessor adds (its prompt code needs no torchvision)."""
    import torch
    from transformers import Sam2VideoInferenceSession, Sam2VideoProcessor

    from vacelab.tracking._sam2 import ManualFeeder, ProcessorFeeder

    processor = Sam2VideoProcessor.__new__(Sam2VideoProcessor)  # image/video processors need torchvision
    processor.target_size, processor.point_pad_value = IMAGE_SIZE, -10
    box = Prompt(2, ((20.0, 20.0), (80.0, 70.0)), (2, 3))
    clicks = Prompt(5, ((120.0, 30.0), (100.0, 50.0)), (1, 0))

    def session():
        return Sam2VideoInferenceSession(video_height=HEIGHT, video_width=WIDTH, dtype=torch.float32)

    manual, library, via_box = session(), session(), session()
    for obj_id, prompt in enumerate([box, clicks], start=1):
        ManualFeeder(IMAGE_SIZE, [0.5] * 3, [0.5] * 3).add_prompt(manual, prompt, obj_id)
        ProcessorFeeder(processor).add_prompt(library, prompt, obj_id)
    processor.add_inputs_to_inference_session(
        via_box, frame_idx=2, obj_ids=1, input_boxes=[[[20, 20, 80, 70]]]
    )
    for obj_idx, frame in [(0, 2), (1, 5)]:
        ours, theirs = (
            manual.point_inputs_per_obj[obj_idx][frame],
            library.point_inputs_per_obj[obj_idx][frame],
        )
        assert torch.equal(ours["point_coords"], theirs["point_coords"])  # both float32
        # label dtype differs between the processor's own routes (int64 for clicks, int32 for boxes)
        assert ours["point_labels"].tolist() == theirs["point_labels"].tolist()
    boxed = via_box.point_inputs_per_obj[0][2]  # the processor's own box -> points (labels 2, 3)
    assert torch.equal(manual.point_inputs_per_obj[0][2]["point_coords"], boxed["point_coords"])
    assert torch.equal(manual.point_inputs_per_obj[0][2]["point_labels"], boxed["point_labels"])  # int32
    assert manual.obj_with_new_inputs == library.obj_with_new_inputs == [2]


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        ("preprocessor_config.json", {"image_mean": [0.5] * 3, "image_std": [0.25] * 3}),
        ("processor_config.json", {"video_processor": {"image_mean": [0.5] * 3, "image_std": [0.25] * 3}}),
    ],
)
def test_manual_pixels_use_the_preprocessor_config(tmp_path, filename, content):
    import torch

    from vacelab.tracking._sam2 import ManualFeeder

    white = np.full((HEIGHT, WIDTH, 3), 255, dtype=np.uint8)
    (tmp_path / filename).write_text(json.dumps(content))
    pixels = ManualFeeder.from_pretrained(str(tmp_path), 64).pixel_values(white, "cpu")
    assert pixels.shape == (3, 64, 64) and torch.allclose(pixels, torch.full_like(pixels, 2.0))
    default = ManualFeeder.from_pretrained(str(tmp_path / "none"), 64).pixel_values(white, "cpu")
    expected = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])  # ImageNet
    assert torch.allclose(default[:, 0, 0], expected, atol=1e-5)


def test_processor_path_agrees_with_manual_path(clip, sam2_dir, tmp_path):
    pytest.importorskip("torchvision", reason="transformers' SAM 2 processors need torchvision")
    import shutil

    from transformers import Sam2ImageProcessor, Sam2VideoProcessor, Sam2VideoVideoProcessor

    from vacelab.tracking._sam2 import ProcessorFeeder, frame_feeder

    manual = track(clip, sam2_dir, boxes=[(BOX_A, 3)])
    folder = shutil.copytree(sam2_dir, tmp_path / "with-processor")
    size = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    Sam2VideoProcessor(Sam2ImageProcessor(size=size), Sam2VideoVideoProcessor(size=size)).save_pretrained(
        folder
    )
    assert isinstance(frame_feeder(str(folder), IMAGE_SIZE), ProcessorFeeder)
    library = track(clip, str(folder), boxes=[(BOX_A, 3)])
    assert library.shape == manual.shape and (library == manual).mean() > 0.95


# ---------------------------------------------------------------------------------------------- SAM 3
def test_phrase_tracks_with_sam3(clip, sam3_dir):
    calls = []
    small = clip[:4, :48, :80]
    mask = track_mask(small, text="red car", model=sam3_dir, progress=lambda d, t: calls.append((d, t)))
    assert mask.shape == (4, 48, 80) and mask.dtype == bool
    assert calls == [(i, 4) for i in range(1, 5)]
    assert np.array_equal(mask, track(small, sam3_dir, text="red car"))
    assert not np.array_equal(mask, track(small, sam3_dir, text="gun"))  # the phrase reaches the model


# --------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(boxes=[((10, 10, 200, 50), 0)]), r"x1 <= 160 .*160x96 frame"),
        (dict(boxes=[((50, 10, 40, 50), 0)]), "x0 < x1"),
        (dict(boxes=[((10, 10, 40, 50), 7)]), r"frame 7 is outside the clip \(frames 0..6\)"),
        (dict(boxes=[((10, 10, 40, 50), -1)]), "frame -1 is outside the clip"),
        (dict(boxes=[((10, 10, 40), 0)]), "expected 4 finite numbers"),
        (dict(points=[([(10, 10)], [1], 12)]), "frame 12 is outside the clip"),
        (dict(points=[([(10, 100)], [1], 0)]), "point 10,100 lies outside the 160x96 frame"),
        (dict(points=[([(10, 10)], [0], 0)]), "at least one positive"),
        (dict(points=[([(10, 10), (20, 20)], [1], 0)]), "one label per point"),
        (dict(text="  "), "the phrase is empty"),
        (dict(text="car", boxes=[((10, 10, 40, 50), 0)]), "cannot be combined"),
        (dict(), "nothing to track"),
        (dict(boxes=[((10, 10, 40, 50), 0)], dtype="fp64"), "dtype 'fp64'"),
    ],
)
def test_bad_prompts_raise_one_line(clip, kwargs, message):
    with pytest.raises(InputError, match=message) as info:
        track_mask(clip, model="/nonexistent", progress=False, **kwargs)
    assert "\n" not in str(info.value)


def test_bad_video_is_an_input_error():
    with pytest.raises(InputError, match=r"uint8 video \[F, H, W, 3\]"):
        track_mask(np.zeros((4, 8, 8), np.uint8), boxes=[((0, 0, 4, 4), 0)], progress=False)


def test_missing_weights_say_where_they_were_looked_for(clip, tmp_path):
    box = [((10, 10, 40, 50), 0)]
    with pytest.raises(InputError, match=r"vacelab-tests/no-sam2: no weights: not in the Hugging Face cache"):
        track_mask(clip, boxes=box, model="vacelab-tests/no-sam2", progress=False)  # offline, not cached
    advice = r"hf download vacelab-tests/no-sam2` or use track_model FOLDER"
    with pytest.raises(InputError, match=advice) as info:
        track_mask(clip, boxes=box, model="vacelab-tests/no-sam2", progress=False)
    assert "\n" not in str(info.value) and info.value.field == "track_model"
    assert info.value.render("--track-model").endswith("or use --track-model FOLDER")
    # a folder is no hub id: no download advice for it
    with pytest.raises(
        InputError, match=r"no model in this folder \(expected one saved with save_pretrained"
    ) as info:
        track_mask(clip, boxes=box, model=str(tmp_path), progress=False)
    with pytest.raises(InputError, match=r"/nowhere/sam2: folder not found$") as info:
        track_mask(clip, boxes=box, model=str(tmp_path / "nowhere" / "sam2"), progress=False)
    assert "hf download" not in str(info.value)


def test_wrong_kind_of_model_is_an_input_error(clip, sam2_dir, sam3_dir):
    with pytest.raises(InputError, match="is a 'sam3_video' model, expected one of sam2_video"):
        track(clip, sam3_dir, boxes=[(BOX_A, 0)])
    with pytest.raises(InputError, match="is a 'sam2_video' model, expected one of sam3_video"):
        track(clip, sam2_dir, text="car")


def test_sam3_folder_without_tokenizer_is_an_input_error(clip, sam3_dir, tmp_path):
    import shutil

    folder = shutil.copytree(sam3_dir, tmp_path / "no-tokenizer", ignore=shutil.ignore_patterns("token*"))
    with pytest.raises(InputError, match="has no tokenizer files"):
        track(clip, str(folder), text="car")


def test_importing_tracking_does_not_import_torch():
    code = "import sys, vacelab.tracking; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
