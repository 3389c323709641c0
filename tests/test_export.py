"""`vacelab export`: a run put back into its 1280x720, 24 fps source with sound (tiny random pipeline)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vacelab import media
from vacelab.cli import main

FRAMES, FPS, AUDIO_RATE = 9, 24, 48000
BOX = (400, 200, 720, 440)  # source pixels


def one_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> Path:
    """A 1280x720, 24 fps, 2 s clip with a stereo AAC track (a tone), frames that change every frame."""
    import av

    path = tmp_path_factory.mktemp("footage") / "shot.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 1280, 720, "yuv420p"
        audio = container.add_stream("aac", rate=AUDIO_RATE)
        audio.layout = "stereo"
        step = AUDIO_RATE // FPS
        for i in range(2 * FPS):
            image = np.full((720, 1280, 3), 40 + 4 * i, np.uint8)
            image[::16] = rng.integers(0, 256, (45, 1280, 3), np.uint8)
            container.mux(video.encode(media_frame(image)))
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(i * step, (i + 1) * step) / AUDIO_RATE)).astype(
                np.float32
            )
            frame = av.AudioFrame.from_ndarray(
                np.stack([tone, tone]).reshape(1, -1), format="flt", layout="stereo"
            )
            frame.sample_rate, frame.pts = AUDIO_RATE, i * step
            container.mux(audio.encode(frame))
        container.mux(video.encode())
        container.mux(audio.encode())
    return path


def media_frame(image: np.ndarray):
    import av

    return av.VideoFrame.from_ndarray(image, format="rgb24")


@pytest.fixture(scope="module")
def run_dir(footage, tiny_model_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export")
    box = ",".join(map(str, BOX))
    assert main(["prepare", "inpaint", "--video", str(footage), "--fps", "source", "--start", "0.5",
                 "--size", "128x64", "--frames", str(FRAMES), "--coords", "source", "--bbox", box,
                 "--out", str(root / "job")]) == 0  # fmt: skip
    assert main(["run", str(root / "job"), "--out", str(root / "run"), "--model", str(tiny_model_dir),
                 "--steps", "2", "--prompt", "a red car"]) == 0  # fmt: skip
    return root / "run"


def test_prepare_keeps_the_source_rate_and_records_the_source(run_dir, footage):
    job = json.loads((run_dir.parent / "job" / "job.json").read_text())
    assert job["geometry"]["fps"] == FPS and job["params"]["fps"] == "source"
    assert job["source"] == {
        "path": str(footage.resolve()),
        "width": 1280,
        "height": 720,
        "fps": FPS,
        "start": 0.5,
    }


def test_export_to_png_frames_keeps_every_pixel_outside_the_box(run_dir, footage, tmp_path):
    assert main(["export", str(run_dir), "--out", str(tmp_path / "frames")]) == 0
    pngs = sorted((tmp_path / "frames").glob("frame_*.png"))
    original, _ = media.read_video(footage, fps=FPS, start=0.5, max_frames=FRAMES)
    assert len(pngs) == FRAMES
    exported = np.stack([media.read_image(p) for p in pngs])
    assert exported.shape == original.shape == (FRAMES, 720, 1280, 3)
    # the box in job pixels is scaled by 10 (1280 -> 128): the blend reaches one job pixel (10 px) beyond it
    x0, y0, x1, y1 = BOX
    outside = np.ones((720, 1280), bool)
    outside[y0 - 10 : y1 + 10, x0 - 10 : x1 + 10] = False
    assert np.array_equal(exported[:, outside], original[:, outside])
    inside = np.s_[:, y0 + 10 : y1 - 10, x0 + 10 : x1 - 10]
    assert np.abs(exported[inside].astype(int) - original[inside]).mean() > 5  # the generated region


def test_export_to_mp4_keeps_rate_and_sound(run_dir, tmp_path, capsys):
    import av

    out = tmp_path / "shot-edited.mp4"
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    assert "9 frames 1280x720 at 24 fps, with the source's audio" in capsys.readouterr().err
    with av.open(str(out)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert float(video.average_rate) == FPS and (video.width, video.height) == (1280, 720)
        seconds = float(video.duration * video.time_base)
        assert seconds == pytest.approx(FRAMES / FPS, abs=1 / FPS)
        assert float(audio.duration * audio.time_base) == pytest.approx(seconds, abs=1 / FPS)


def test_export_refusals_are_one_line(run_dir, tmp_path, capsys):
    assert main(["export", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.mp4")]) == 2
    assert "not a vacelab results folder" in one_error(capsys)
    (tmp_path / "taken.mp4").write_bytes(b"mine")
    assert main(["export", str(run_dir), "--out", str(tmp_path / "taken.mp4")]) == 2
    assert "exists (nothing is overwritten)" in one_error(capsys)
    assert (tmp_path / "taken.mp4").read_bytes() == b"mine"
    assert main(["export", str(run_dir), "--out", str(tmp_path / "x.mov"), "--codec", "h265"]) == 0
    capsys.readouterr()
    assert main(["export", str(run_dir), "--out", str(tmp_path / "x.avi")]) == 2
    assert "must be a .mp4 or .mov file" in one_error(capsys)


def test_a_job_without_a_source_video_is_refused_before_generating(tmp_path, tiny_model_dir, capsys):
    image = np.full((64, 128, 3), 200, np.uint8)
    media.write_png(tmp_path / "first.png", image)
    assert main(["prepare", "firstframe", "--image", str(tmp_path / "first.png"), "--size", "128x64",
                 "--frames", "9", "--out", str(tmp_path / "job")]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["run", str(tmp_path / "job"), "--model", str(tiny_model_dir), "--export",
                 str(tmp_path / "e.mp4")]) == 2  # fmt: skip
    assert "a firstframe job; export puts inpaint and remove runs back into their source" in one_error(capsys)
    assert not (tmp_path / "job-run").exists()
