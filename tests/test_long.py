"""Long jobs on the tiny offline pipeline: windows, kept heads, stitching, colour match, resume, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vacelab import media
from vacelab.audit import audit_arrays, audit_job
from vacelab.cli import main
from vacelab.generation import windows as engine
from vacelab.generation.run import run_job
from vacelab.generation.settings import RunSettings
from vacelab.geometry import default_overlap, is_valid_frame_count, kept_heads, plan_windows
from vacelab.job import Job, load_job, save_job
from vacelab.result import load_result
from vacelab.tasks import prepare

GENERATE, SAVE = engine.generate, engine.WindowStore.save  # the real ones, before any monkeypatch
SIZE = 64  # px, square: the tiny model runs an 81-frame window in about a second
FPS = 24


def moving_clip(frames: int, size: int = SIZE) -> np.ndarray:
    """A clip whose every frame differs: diagonal stripes moving one pixel a frame, a slow colour ramp."""
    t = np.arange(frames)[:, None, None]
    y, x = np.mgrid[0:size, 0:size]
    stripes = ((x + y + t) // 6 % 2) * 120 + 60
    ramp = (t * 160 // max(frames - 1, 1) + 40) + 0 * x
    return np.stack([stripes, ramp, 255 - stripes], -1).astype(np.uint8)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip300.mp4"
    media.write_mp4(path, moving_clip(300), FPS)
    return path


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


class Recorder:
    """Wraps ``generate`` and ``WindowStore.save``: each window's conditioning and finished frames."""

    def __init__(self, monkeypatch, fail_after: int | None = None) -> None:
        self.conditioning: list[Job] = []
        self.finished: list[np.ndarray] = []
        self.fail_after = fail_after

        def counting_generate(ctx, clip, **kw):
            if self.fail_after is not None and len(self.conditioning) == self.fail_after:
                raise KeyboardInterrupt  # as if the user stopped the run between windows
            self.conditioning.append(clip)
            return GENERATE(ctx, clip, **kw)

        def recording_save(store, window, frames, record):
            self.finished.append(frames.copy())
            SAVE(store, window, frames, record)

        monkeypatch.setattr(engine, "generate", counting_generate)
        monkeypatch.setattr(engine.WindowStore, "save", recording_save)


# ------------------------------------------------------------------------------------------- planning
def test_windows_of_a_clip_that_is_not_4n_plus_1():
    windows = plan_windows(300, 81, 17)
    # the last window is the shortest 4n+1 reaching frame 299: 45 frames, not a full 81
    assert windows == [(0, 81), (64, 145), (128, 209), (192, 273), (255, 300)]
    assert all(is_valid_frame_count(b - a) for a, b in windows)
    heads = kept_heads(windows)
    assert heads == [0, 17, 17, 17, 17]  # the last window shares 18 frames: its kept head is 4*4+1
    with pytest.raises(ValueError, match="not 4n"):
        plan_windows(50, 81, 17)  # one window must itself be 4n+1


@pytest.mark.parametrize("window, overlap", [(81, 17), (33, 9), (17, 5), (49, 1)])
def test_last_window_is_the_shortest_that_keeps_the_overlap(window, overlap):
    for frames in range(window + 1, 400):
        windows = plan_windows(frames, window, overlap)
        assert windows[0][0] == 0 and windows[-1][1] == frames
        assert all(b - a == window for a, b in windows[:-1])  # all but the last full length
        assert all(is_valid_frame_count(b - a) for a, b in windows)
        assert kept_heads(windows)[1:] == [overlap] * (len(windows) - 1)
        (_, previous_stop), (last_start, last_stop) = windows[-2:]
        assert 0 <= (previous_stop - last_start) - overlap < 4  # at most 3 extra shared frames
        assert last_stop - last_start <= window


def test_crossfade_ramps_and_keeps_kept_pixels_exact():
    previous = np.zeros((3, 2, 2, 3), np.uint8)
    new = np.full((3, 2, 2, 3), 200, np.uint8)
    exact = np.zeros((3, 2, 2), bool)
    exact[:, 0, 0] = True
    mixed = engine.crossfade(previous, new, exact)
    assert mixed[:, 1, 1, 0].tolist() == [50, 100, 150]  # new weighs 1/4, 2/4, 3/4
    assert (mixed[:, 0, 0] == 0).all()


def test_default_overlap_keeps_the_whole_head_as_read_by_the_model(clip):
    """81-frame windows overlap by 29 by default: with 17, step 4 would read generated frame 17."""
    assert default_overlap(81) == 29 and default_overlap(33) == 13 and default_overlap(17) == 9

    def head_mismatch(overlap):
        options = {"overlap": overlap} if overlap else {}
        job = prepare(
            "inpaint", video=str(clip), bbox="16,16,48,48", size=f"{SIZE}x{SIZE}", frames="all", **options
        )
        report = audit_job(job, window=1)
        head = kept_heads(job.windows)[1]
        mismatches = [f for f in report.findings if f.code == "MASK_SAMPLE_MISMATCH"]
        return [f for f in mismatches if min(f.frames, default=head) < head]

    assert head_mismatch(None) == []  # default: every step of the kept head reads a kept frame
    assert head_mismatch(17)  # the audit shows what the old default lost


# ------------------------------------------------------------------------------------ 300 frames end to end
def test_300_frames_prepare_audit_run(clip, tmp_path, tiny_model_dir, capsys, monkeypatch):
    job_dir, out = tmp_path / "job", tmp_path / "out"
    code, _, err = run_cli(
        capsys, "prepare", "inpaint", "--video", clip, "--bbox", "16,16,48,48", "--size", f"{SIZE}x{SIZE}",
        "--frames", "all", "--fps", FPS, "--overlap", 17, "--out", job_dir,
    )  # fmt: skip
    assert code == 0, err
    job = load_job(job_dir)
    assert job.video.shape == (300, SIZE, SIZE, 3) and job.fps == FPS
    assert job.windows == [(0, 81), (64, 145), (128, 209), (192, 273), (255, 300)]

    code, report, _ = run_cli(capsys, "audit", job_dir, "--json", "--window", 4)
    audit = json.loads(report)
    assert code == 0 and audit["geometry"]["frames"] == 45
    long_job = [f for f in audit["findings"] if f["code"] == "LONG_JOB"]
    assert long_job and long_job[0]["kept_head"] == 17 and "kept head" in audit["source"]["window"]
    # the kept head (frames 0-16 = latent steps 0-4) is KEEP in what is audited, though the user's
    # bbox asks to generate there; the steps after it read the user's mask
    assert job.mask[255:272].any(axis=(1, 2)).all()
    assert [s["group_keep_fraction"] for s in audit["latents"][:5]] == [1.0] * 5
    assert all(s["group_keep_fraction"] < 1.0 for s in audit["latents"][5:])

    recorder = Recorder(monkeypatch)
    code, printed, err = run_cli(
        capsys, "run", job_dir, "--model", tiny_model_dir, "--steps", 2, "--prompt", "a street",
        "--color-match", "--out", out,
    )  # fmt: skip
    assert code == 0, err
    assert "window 2/5: frames 64-144, kept head 64-80" in err and "window 5/5: frames 255-299" in err
    result = load_result(out)
    video = result.video
    assert video.shape == (300, SIZE, SIZE, 3)
    for name in ("out_video.mp4", "compare.mp4"):
        frames, fps = media.read_video(out / name)
        assert frames.shape[0] == 300 and fps == FPS  # no silent speed-up
    assert not engine.partial_folder(out).exists()

    # the user's KEEP pixels are the source's exactly, across every join
    keep = ~job.mask
    assert np.array_equal(video[keep], job.video[keep])

    # each later window is conditioned on the output so far: kept head KEEP, its pixels the previous output
    assert len(recorder.conditioning) == 5
    stitched = recorder.finished[0]
    for index, (start, stop) in enumerate(job.windows[1:], 1):
        head = kept_heads(job.windows)[index]
        cond = recorder.conditioning[index]
        assert not cond.mask[:head].any()
        assert np.array_equal(cond.mask[head:], job.mask[start + head : stop])
        generated = job.mask[start : start + head]
        assert np.array_equal(cond.video[:head][generated], stitched[start : start + head][generated])
        assert np.array_equal(cond.video[head:], job.video[start + head : stop])
        # `vacelab audit --window` audits exactly the mask this window was given
        audited = audit_job(job, window=index)
        assert [s.to_dict() for s in audited.latents] == [
            s.to_dict() for s in audit_arrays(cond.mask).latents
        ]
        # stitching: the shared frames cross-fade previous -> this window, then this window's frames
        shared = job.windows[index - 1][1] - start
        mixed = engine.crossfade(
            stitched[start : start + shared], recorder.finished[index][:shared], keep[start : start + shared]
        )
        stitched = np.concatenate([stitched[:start], mixed, recorder.finished[index][shared:]])
    assert np.array_equal(video, stitched)

    run = result.run
    assert run["output"] == {"frames": 300, "height": SIZE, "width": SIZE, "fps": FPS}
    assert [w["frames"] for w in run["windows"]] == [[a, b - 1] for a, b in job.windows]
    assert run["windows"][4]["kept_head"] == [255, 271] and run["windows"][4]["blended"] == [255, 272]
    assert [w["seed"] for w in run["windows"]] == [2025, 2026, 2027, 2028, 2029]
    assert all(w["timings"]["generate"] > 0 and "findings" in w["audit"] for w in run["windows"])
    assert all(w["color_match"]["applied"] for w in run["windows"])
    assert run["audit"]["windows"] == 5 and run["timings"]["generate"] > 0


# ------------------------------------------------------------------------------------------------ resume
def short_job(frames: int = 45) -> Job:
    video = moving_clip(frames)
    mask = np.zeros(video.shape[:3], bool)
    mask[:, 16:48, 8:40] = True
    source = video.copy()
    video[mask] = 127
    return Job("inpaint", video, mask, 16.0, original=source, windows=plan_windows(frames, 17, 5))


def test_resume_after_an_interruption(tmp_path, tiny_model_dir, monkeypatch, caplog):
    job = short_job()
    assert job.windows == [(0, 17), (12, 29), (24, 41), (36, 45)]  # the last one 9 frames, not 17
    settings = RunSettings(prompt="a wall", model=str(tiny_model_dir), steps=2, color_match=True)
    from vacelab.generation.pipeline import load_pipeline

    pipe = load_pipeline(settings)
    reference = run_job(job, tmp_path / "whole", settings, pipeline=pipe).video

    out = tmp_path / "out"
    first = Recorder(monkeypatch, fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        run_job(job, out, settings, pipeline=pipe)
    saved = sorted(p.name for p in (engine.partial_folder(out) / "windows").iterdir())
    assert saved == ["000.json", "000.npy", "001.json", "001.npy"] and not out.exists()

    second = Recorder(monkeypatch)
    with caplog.at_level("INFO", logger="vacelab"):
        result = run_job(job, out, settings, pipeline=pipe)
    assert len(first.conditioning) == 2 and len(second.conditioning) == 2  # windows 3 and 4 only
    assert "reused" in caplog.text
    assert [w["resumed"] for w in result.run["windows"]] == [True, True, False, False]
    assert np.array_equal(result.video, reference)  # bit-identical to an uninterrupted run
    assert not engine.partial_folder(out).exists()

    # other settings never reuse windows made with different ones
    other = tmp_path / "other"
    Recorder(monkeypatch, fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        run_job(job, other, settings, pipeline=pipe)
    third = Recorder(monkeypatch)
    changed = RunSettings(**{**settings.as_dict(), "seed": 7})
    result = run_job(job, other, changed, pipeline=pipe)
    assert len(third.conditioning) == 4 and not any(w["resumed"] for w in result.run["windows"])


# --------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "window, overlap, message",
    [
        ("81", "81", "overlap 81 must be smaller"),
        ("80", "17", "window 80 is not 4n+1"),
        ("81", "16", "overlap 16"),
    ],
)
def test_bad_window_settings_one_error_line(clip, tmp_path, capsys, window, overlap, message):
    code, out, err = run_cli(
        capsys, "prepare", "inpaint", "--video", clip, "--bbox", "0,0,16,16", "--size", f"{SIZE}x{SIZE}",
        "--frames", "all", "--window", window, "--overlap", overlap, "--out", tmp_path / "job",
    )  # fmt: skip
    assert code == 2 and out == ""
    assert err.startswith(f"error: {message}") and err.count("\n") == 1
    assert not (tmp_path / "job").exists()


def test_window_prompts_one_per_window_the_last_repeating(tmp_path, tiny_model_dir, monkeypatch):
    prompts = []

    def recording_generate(ctx, clip, **kw):
        prompts.append(kw["prompt"])
        return GENERATE(ctx, clip, **kw)

    monkeypatch.setattr(engine, "generate", recording_generate)
    job = save_job(short_job(), tmp_path / "job", preview=False)
    (tmp_path / "prompts.txt").write_text("a red wall\n\na blue wall\n")
    argv = ["run", str(job), "--model", str(tiny_model_dir), "--steps", "1", "--out", str(tmp_path / "r")]
    assert main([*argv, "--window-prompts", str(tmp_path / "prompts.txt")]) == 0
    assert prompts == ["a red wall", "a blue wall", "a blue wall", "a blue wall"]
    run = load_result(tmp_path / "r").run
    assert run["settings"]["window_prompts"] == ["a red wall", "a blue wall"]
    assert [w["prompt"] for w in run["windows"]] == prompts
    (tmp_path / "p.toml").write_text('prompts = ["one", "two", "three", "four"]\n')
    prompts.clear()
    assert main([*argv[:-1], str(tmp_path / "r2"), "--window-prompts", str(tmp_path / "p.toml")]) == 0
    assert prompts == ["one", "two", "three", "four"]


@pytest.mark.parametrize("method", ["mean", "reinhard", "histogram", "mkl"])
def test_each_colour_method_runs_a_long_job_and_keeps_kept_pixels(tmp_path, tiny_model_dir, method, capsys):
    job = save_job(short_job(), tmp_path / "job", preview=False)
    argv = ["run", str(job), "--model", str(tiny_model_dir), "--steps", "1", "--prompt", "a wall"]
    assert main([*argv, "--color-match", method, "--out", str(tmp_path / "r")]) == 0
    result, source = load_result(tmp_path / "r"), short_job()
    records = [w["color_match"] for w in result.run["windows"]]
    assert "lab_shift" in records[0]  # the first window: mean colour at the mask's border
    assert [r["method"] for r in records[1:]] == [method] * 3 and all(r["applied"] for r in records[1:])
    assert result.run["settings"]["color_match"] == method
    keep = ~source.mask
    assert np.array_equal(result.video[keep], source.original[keep])  # KEEP pixels exactly the source
    with pytest.raises(SystemExit, match="2"):  # argparse's one-line error
        main([*argv, "--color-match", "mkll", "--out", str(tmp_path / "x")])
    assert "choose from mean, reinhard, histogram, mkl" in capsys.readouterr().err
