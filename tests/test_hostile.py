"""Hostile inputs and faults (issue 22): each ends in one ``error:`` line (exit 2) or in correct
behaviour, and nothing a user put beside vacelab's outputs is ever deleted.

Fake runners and the tiny random pipeline only: no case here needs model weights.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import mounted_tmpfs

from vacelab import media
from vacelab.batch import run_batch
from vacelab.cli import main
from vacelab.errors import InputError, WriteFault
from vacelab.folders import MARKER, check_writable, output_lock, remove_own_folder, write_folder
from vacelab.job import Job, save_job
from vacelab.manifest import load_manifest

FRAMES, SIZE = 9, 32


def one_error(capsys) -> str:
    """The single ``error:`` line a refused command printed."""
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.fixture
def job_dir(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (FRAMES, SIZE, SIZE, 3), dtype=np.uint8)
    mask = np.zeros((FRAMES, SIZE, SIZE), bool)
    mask[:, 8:24, 8:24] = True
    return save_job(Job(task="inpaint", video=video, mask=mask, fps=16.0), tmp_path / "job", preview=False)


def fake_runner(job, out, settings, *, pipeline, progress):
    """Stands in for run_job: a results folder written the way run_job writes one."""
    run = {"settings": settings.as_dict()}
    write_folder(out, lambda folder: (folder / "run.json").write_text(json.dumps(run)))


def batch(tmp_path: Path, body: str) -> tuple[Path, Path]:
    path = tmp_path / "batch.toml"
    path.write_text(body, encoding="utf-8")
    return path, tmp_path / "out"


# ------------------------------------------------------------------------------------- nothing deleted
def test_batch_never_deletes_a_folder_it_did_not_write(tmp_path, job_dir):
    path, out = batch(tmp_path, f'[[jobs]]\nname = "a"\njob = "{job_dir}"\nseed = 1\n')
    (out / "a").mkdir(parents=True)
    (out / "a" / "mine.txt").write_text("a user's file")
    [outcome] = run_batch(load_manifest(path), out, runner=fake_runner, loader=lambda s: None)
    assert outcome.status == "failed"
    assert outcome.error.endswith("holds files vacelab did not write; move it away (nothing is deleted)")
    assert (out / "a" / "mine.txt").read_text() == "a user's file"


def test_batch_redoes_its_own_folder_but_keeps_a_file_added_to_it(tmp_path, job_dir):
    path, out = batch(tmp_path, f'[[jobs]]\nname = "a"\njob = "{job_dir}"\nseed = 1\n')
    run_batch(load_manifest(path), out, runner=fake_runner, loader=lambda s: None)
    path.write_text(path.read_text().replace("seed = 1", "seed = 2"))  # changed settings: redo
    [outcome] = run_batch(load_manifest(path), out, runner=fake_runner, loader=lambda s: None)
    assert outcome.status == "done"
    assert json.loads((out / "a" / "run.json").read_text())["settings"]["seed"] == 2
    (out / "a" / "notes.txt").write_text("mine")
    path.write_text(path.read_text().replace("seed = 2", "seed = 3"))
    [outcome] = run_batch(load_manifest(path), out, runner=fake_runner, loader=lambda s: None)
    assert outcome.status == "failed" and "'notes.txt', which vacelab did not write" in outcome.error
    assert (out / "a" / "notes.txt").read_text() == "mine"


def test_batch_refuses_inputs_inside_its_folder(tmp_path, job_dir, capsys):
    out = tmp_path / "out"
    (out / "p").mkdir(parents=True)
    clip = out / "p" / "clip.mp4"
    media.write_mp4(clip, np.zeros((FRAMES, SIZE, SIZE, 3), np.uint8), 16.0)
    path, _ = batch(tmp_path, f'[[jobs]]\nname = "p"\nprepare = {{task = "inpaint", video = "{clip}"}}\n')
    assert main(["batch", str(path), "--out", str(out)]) == 2
    assert "holds video = " in one_error(capsys) and clip.is_file()
    zeros = np.zeros((FRAMES, SIZE, SIZE, 3), np.uint8)
    inside = Job(task="inpaint", video=zeros, mask=np.ones((FRAMES, SIZE, SIZE), bool), fps=16.0)
    moved = save_job(inside, out / "b", preview=False)
    path, _ = batch(
        tmp_path, f'[[jobs]]\nname = "a"\njob = "{moved}"\n[[jobs]]\nname = "b"\njob = "{job_dir}"\n'
    )
    assert main(["batch", str(path), "--out", str(out)]) == 2
    assert "holds job = " in one_error(capsys) and (moved / "job.json").is_file()


def test_remove_own_folder_deletes_only_what_the_marker_lists(tmp_path):
    folder = write_folder(tmp_path / "r", lambda f: (f / "a.txt").write_text("x"))
    assert json.loads((folder / MARKER).read_text())["files"] == ["a.txt"]
    (folder / "a.txt").unlink()  # a file vacelab wrote, gone: still provably ours
    remove_own_folder(folder)
    assert not folder.exists()
    (tmp_path / "empty").mkdir()
    remove_own_folder(tmp_path / "empty")
    assert not (tmp_path / "empty").exists()
    (tmp_path / "link").symlink_to(tmp_path)
    with pytest.raises(InputError, match="is not a folder vacelab wrote"):
        remove_own_folder(tmp_path / "link")


# ----------------------------------------------------------------------------------- leftovers, races
def test_a_stale_part_folder_is_removed_by_the_next_writer(tmp_path):
    stale = Path(tempfile.mkdtemp(prefix=".r.", suffix=".part", dir=tmp_path))
    fresh = Path(tempfile.mkdtemp(prefix=".r.", suffix=".part", dir=tmp_path))
    other = Path(tempfile.mkdtemp(prefix=".r.x.", suffix=".part", dir=tmp_path))  # another name's
    day_old = time.time() - 25 * 3600
    for folder in (stale, other):
        os.utime(folder, (day_old, day_old))
    write_folder(tmp_path / "r", lambda f: None)
    assert not stale.exists() and fresh.exists() and other.exists()


def test_a_second_writer_of_one_folder_is_refused_at_once(tmp_path):
    out = tmp_path / "out"
    busy = pytest.raises(InputError, match="another vacelab command is writing")
    with output_lock(out), busy, output_lock(out):
        pass
    with output_lock(out):  # released: free again, and no lock file is left behind
        pass
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_out_is_refused_before_any_work(tmp_path, job_dir, capsys):
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    assert main(["run", str(job_dir), "--out", str(tmp_path / "dangling"), "--model", "x"]) == 2
    assert "symbolic link to nothing" in one_error(capsys)
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    assert main(["run", str(job_dir), "--out", str(tmp_path / "loop" / "x"), "--model", "x"]) == 2
    one_error(capsys)
    with pytest.raises(InputError, match=r"needs about \d+ MB"):
        check_writable(tmp_path / "big", expected_bytes=1 << 60)


def test_a_read_only_out_is_refused_before_any_work(tmp_path, job_dir, capsys):
    with mounted_tmpfs(tmp_path / "ro", read_only=True) as ro:
        assert main(["run", str(job_dir), "--out", str(ro / "r"), "--model", "x"]) == 2
        assert "Read-only file system" in one_error(capsys)
        assert main(["audit", str(job_dir), "--png", str(ro / "a.png")]) == 2
        assert one_error(capsys).startswith(f"error: {ro / 'a.png'}: cannot be written (Read-only")


def test_a_full_disk_leaves_nothing_under_the_final_name(tmp_path, job_dir, capsys):
    with mounted_tmpfs(tmp_path / "full", size="64k") as full:
        with pytest.raises(WriteFault, match="No space left on device"):
            write_folder(full / "r", lambda f: (f / "big.bin").write_bytes(bytes(1 << 20)))
        with pytest.raises(WriteFault, match=r"r2: cannot be written \(No space left"):
            write_folder(full / "r2", lambda f: media.write_text(f / "big.txt", "x" * (1 << 20)))
        assert list(full.iterdir()) == []
        clip = tmp_path / "clip.mp4"
        media.write_mp4(clip, np.random.default_rng(1).integers(0, 256, (FRAMES, 64, 64, 3), np.uint8), 16.0)
        argv = ["prepare", "inpaint", "--video", str(clip), "--size", "64x64", "--bbox", "8,8,40,40"]
        assert main([*argv, "--out", str(full / "job")]) == 2
        assert "job: cannot be written (" in one_error(capsys)  # No space left, or a short write
        assert list(full.iterdir()) == []


# ------------------------------------------------------------------------------------------ image reader
def rgba_png(path: Path, rgba: np.ndarray) -> Path:
    from PIL import Image

    Image.fromarray(rgba, "RGBA").save(path)
    return path


def test_a_transparent_pixel_of_a_mask_is_not_painted(tmp_path):
    strokes = np.zeros((SIZE, SIZE, 4), np.uint8)  # transparent black layer
    strokes[8:16, :, :] = 255  # white opaque strokes
    read = media.read_mask(rgba_png(tmp_path / "s.png", strokes), size=(SIZE, SIZE), frames=2)
    assert read.shape == (2, SIZE, SIZE) and read[:, 8:16].all() and read.mean() == 0.25
    shape = np.zeros((SIZE, SIZE, 4), np.uint8)  # the shape in alpha only, its colour black
    shape[:, :8, 3] = 255
    read = media.read_mask(rgba_png(tmp_path / "a.png", shape), size=(SIZE, SIZE), frames=1)
    assert read[:, :, :8].all() and read.mean() == 0.25
    opaque = np.zeros((SIZE, SIZE, 4), np.uint8)  # no transparency: the colours decide, as without alpha
    opaque[..., 3] = 255
    opaque[:4, :, :3] = 255
    assert media.read_mask(rgba_png(tmp_path / "o.png", opaque), size=(SIZE, SIZE), frames=1).mean() == 1 / 8


def test_a_zero_one_mask_png_means_keep_and_generate(tmp_path):
    from PIL import Image

    values = np.zeros((SIZE, SIZE), np.uint8)
    values[:, SIZE // 2 :] = 1
    Image.fromarray(values, "L").save(tmp_path / "m.png")
    read = media.read_mask(tmp_path / "m.png", size=(SIZE, SIZE), frames=1)
    assert read[:, :, SIZE // 2 :].all() and read.mean() == 0.5


def test_a_reference_with_transparency_is_flattened_on_white(tmp_path):
    ref = np.zeros((SIZE, SIZE, 4), np.uint8)
    ref[:8, :8] = (255, 0, 0, 255)
    image = media.read_image(rgba_png(tmp_path / "r.png", ref))
    assert (image[:8, :8] == (255, 0, 0)).all() and (image[8:] == 255).all()


def test_oversized_and_special_images_are_refused_in_one_line(tmp_path):
    from PIL import Image

    Image.new("1", (9000, 9000)).save(tmp_path / "big.png")  # 81 MP: over vacelab's 64 MP
    with pytest.raises(InputError, match="image is 9000x9000, more than the 67 MP vacelab reads"):
        media.read_image(tmp_path / "big.png")
    Image.new("1", (20000, 20000)).save(tmp_path / "bomb.png")  # 400 MP: Pillow's own bomb check
    with pytest.raises(InputError, match="too large to read"):
        media.read_mask_image(tmp_path / "bomb.png")
    os.mkfifo(tmp_path / "fifo.png")
    with pytest.raises(InputError, match="fifo.png: not a regular file"):
        media.read_image(tmp_path / "fifo.png")


# ------------------------------------------------------------------------------------------------ numbers
@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--guidance", "inf", "--guidance inf: must be a finite number >= 0"),
        ("--shift", "inf", "--shift inf: must be a finite number > 0"),
        ("--shift", "nan", "--shift nan: must be a finite number > 0"),
        ("--seed", str(2**64), f"--seed {2**64}: must be in 0..{2**64 - 1}"),
        ("--conditioning-scale", "inf", "--conditioning-scale inf: must be a finite number"),
    ],
)
def test_run_refuses_numbers_that_would_write_garbage(job_dir, tmp_path, capsys, flag, value, message):
    assert main(["run", str(job_dir), "--out", str(tmp_path / "r"), "--model", "nowhere", flag, value]) == 2
    assert one_error(capsys).startswith(f"error: {message}")
    assert not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hostile") / "clip.mp4"
    rng = np.random.default_rng(2)
    return media.write_mp4(path, rng.integers(0, 256, (FRAMES, 64, 64, 3), np.uint8), 16.0) or path


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--fps", "inf"], "--fps inf: must be a finite number > 0"),
        (["--fps", "-16"], "--fps -16.0: must be a finite number > 0"),
        (["--fps", "0"], "--fps 0.0: must be a finite number > 0"),
        (["--start", "-5"], "--start -5.0: must be a finite number of seconds >= 0"),
        (["--bbox", "nan,8,40,40"], "--bbox 'nan,8,40,40': expected finite numbers"),
        (["--grow", "100000"], "--grow 100000: must be at most the frame's larger side (64 px)"),
        (["--size", "8192x8192"], "--size 8192x8192: at most 2048 px a side"),
    ],
)
def test_prepare_refuses_numbers_it_cannot_build_a_job_from(clip, tmp_path, capsys, options, message):
    argv = ["prepare", "inpaint", "--video", str(clip), "--size", "64x64", "--frames", "9"]
    if "--bbox" not in options:
        argv += ["--bbox", "8,8,40,40"]
    assert main([*argv, *options, "--out", str(tmp_path / "j")]) == 2
    err = one_error(capsys)
    assert err.startswith(f"error: {message}"), err
    assert not (tmp_path / "j").exists()


# ------------------------------------------------------------------------------------ hand-edited job folders
def edit_manifest(job: Path, change) -> None:
    manifest = json.loads((job / "job.json").read_text())
    (job / "job.json").write_text(json.dumps(change(manifest)))


MANIFEST_EDITS = {
    "not an object": (lambda m: [m], "not a vacelab job (format 'list')"),
    "no task": (lambda m: {k: v for k, v in m.items() if k != "task"}, "damaged: task None is not one of"),
    "no geometry": (lambda m: {k: v for k, v in m.items() if k != "geometry"}, "damaged: geometry missing"),
    "fps null": (lambda m: {**m, "geometry": {**m["geometry"], "fps": None}}, "geometry.fps None is not"),
    "fps text": (lambda m: {**m, "geometry": {**m["geometry"], "fps": "fast"}}, "geometry.fps 'fast' is not"),
    "fps zero": (
        lambda m: {**m, "geometry": {**m["geometry"], "fps": 0}},
        "geometry.fps 0 is not a number > 0",
    ),
    "windows text": (lambda m: {**m, "windows": "abc"}, "windows 'abc' are not [start, stop] pairs"),
    "other size": (lambda m: {**m, "geometry": {**m["geometry"], "width": 64}}, "job.json says [9, 32, 64]"),
}


@pytest.mark.parametrize("case", sorted(MANIFEST_EDITS))
def test_a_hand_edited_job_json_is_refused_in_one_line(job_dir, tmp_path, capsys, case):
    change, message = MANIFEST_EDITS[case]
    edit_manifest(job_dir, change)
    for argv in (
        ["audit", str(job_dir)],
        ["run", str(job_dir), "--out", str(tmp_path / "r"), "--model", "x"],
    ):
        assert main(argv) == 2
        assert message in one_error(capsys)


ARRAY_EDITS = {
    "float": (lambda v: v.astype(np.float32), "arrays/video.npy is float32 [9, 32, 32, 3], not uint8"),
    "uint16": (lambda v: v.astype(np.uint16), "arrays/video.npy is uint16"),
    "2-D": (lambda v: v[0, :, :, 0], "arrays/video.npy is uint8 [32, 32], not uint8"),
    "4 channels": (lambda v: np.concatenate([v, v[..., :1]], -1), "is uint8 [9, 32, 32, 4], not uint8"),
    "fewer frames": (lambda v: v[:5], "arrays/mask.npy is [9, 32, 32], the video [5, 32, 32]"),
}


@pytest.mark.parametrize("case", sorted(ARRAY_EDITS))
def test_damaged_job_arrays_are_refused_in_one_line(job_dir, capsys, case):
    change, message = ARRAY_EDITS[case]
    video = np.load(job_dir / "arrays" / "video.npy")
    np.save(job_dir / "arrays" / "video.npy", change(video))
    assert main(["audit", str(job_dir)]) == 2
    assert message in one_error(capsys)


# ------------------------------------------------------------------------------------ special files, loops
def test_a_fifo_never_blocks_the_ui_or_a_reader(tmp_path):
    from vacelab.ui.policy import Policy

    allowed = tmp_path / "allowed"
    allowed.mkdir()
    os.mkfifo(allowed / "pipe.mp4")  # opening it for reading would wait for a writer for ever
    policy = Policy.create([allowed], root=tmp_path / "app")
    with pytest.raises(InputError, match="pipe.mp4: not a regular file or folder"):
        policy.open_path(str(allowed / "pipe.mp4"))
    with pytest.raises(InputError, match="pipe.mp4: not a regular file or folder"):
        media.read_video(allowed / "pipe.mp4")
    (allowed / "loop.mp4").symlink_to(allowed / "loop.mp4")
    with pytest.raises(InputError, match="loop.mp4: cannot be resolved"):
        policy.open_path(str(allowed / "loop.mp4"))


def test_a_symlink_loop_as_input_is_one_line(tmp_path, capsys):
    (tmp_path / "loop.mp4").symlink_to(tmp_path / "loop.mp4")
    argv = ["prepare", "inpaint", "--video", str(tmp_path / "loop.mp4"), "--bbox", "8,8,40,40"]
    assert main([*argv, "--out", str(tmp_path / "j")]) == 2
    assert "loop.mp4" in one_error(capsys)


# ----------------------------------------------------------------------------------------- plan grids
def test_a_huge_experiment_grid_is_refused_before_any_work(tmp_path, capsys):
    plan = tmp_path / "huge.toml"
    seeds, steps = list(range(100)), list(range(1, 81))  # 8,000 runs
    plan.write_text(
        f'[[jobs]]\nname = "a"\ntask = "inpaint"\nvideo = "sample:"\nbbox = "8,8,40,40"\n'
        f"[jobs.grid]\nseed = {seeds}\nsteps = {steps}\n"
    )
    assert main(["experiment", str(plan), "--out", str(tmp_path / "x"), "--no-run"]) == 2
    assert "the plan's grids make 8000 runs, more than the 1000 a plan may hold" in one_error(capsys)
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------------------------------ damaged media
def truncated_mkv(path: Path, frames: int = 40) -> Path:
    """An H.264 Matroska file of ``frames`` frames at 16 fps, cut to half its bytes (a broken download)."""
    import av

    rng = np.random.default_rng(3)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=16)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for array in rng.integers(0, 256, (frames, 64, 64, 3), np.uint8):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def test_a_truncated_clip_is_said_not_swallowed(tmp_path, capsys):
    clip = truncated_mkv(tmp_path / "cut.mkv")
    argv = ["prepare", "inpaint", "--video", str(clip), "--size", "64x64", "--bbox", "8,8,40,40"]
    assert main([*argv, "--out", str(tmp_path / "j")]) == 0
    notes = json.loads((tmp_path / "j" / "job.json").read_text())["notes"]
    assert any(n.startswith("warning: ") and "cut.mkv is truncated or damaged: the file says 2.50 s" in n
               for n in notes), notes  # fmt: skip
    assert main([*argv, "--frames", "33", "--out", str(tmp_path / "k")]) == 2
    assert "is truncated or damaged" in one_error(capsys)


def test_a_mask_longer_than_the_job_is_said(clip, tmp_path):
    long_mask = np.zeros((3 * FRAMES, 64, 64, 3), np.uint8)
    long_mask[:, 8:40, 8:40] = 255
    media.write_mp4(tmp_path / "mask.mp4", long_mask, 16.0)
    argv = ["prepare", "inpaint", "--video", str(clip), "--size", "64x64", "--frames", "9"]
    assert main([*argv, "--mask", str(tmp_path / "mask.mp4"), "--out", str(tmp_path / "j")]) == 0
    notes = json.loads((tmp_path / "j" / "job.json").read_text())["notes"]
    assert "the mask mask.mp4 has more frames than the job's 9: using the first 9" in notes
