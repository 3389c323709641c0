"""Seams of long jobs: frame-to-frame change across window joins against inside windows.

Job: inpaint of a box in a synthetic clip (diagonal stripes moving one pixel a frame, a slow colour ramp)
of ``--frames`` frames at ``--size``, split into windows of ``--window`` frames sharing ``--overlap``.
Figure: the mean absolute frame-to-frame change (0-255 scale) over the generated box, where both frames
generate it:

- ``join``: the change into the first frame that comes wholly from the next window (after the
  cross-fade for vacelab; at the cut for the baseline), averaged over joins;
- ``inside``: the change between any two frames away from the joins (outside every shared span);
- ``ratio`` = join / inside: 1.0 means a join looks like any other frame step.

vacelab: ``run_job`` on the long job (kept head from the output so far, cross-fade, ``--color-match``
if given). Baseline, in the same run: each window generated on its own from the job (no kept context)
and cut hard in the middle of the shared frames. Median over ``--repeats`` seeds.

    python benchmarks/bench_seams.py [--model DIR] [--frames 161] [--size 112x64] [--steps 2]

Without ``--model`` the tiny random pipeline of the tests is used (its output is not a picture: the
figures then show that the stitching itself adds no seam, not what real weights do).

It first prints the frames the model generates for ``--frames``, 161 and 300 frames: vacelab's windows
(the last one the shortest 4k+1 that keeps the overlap) against every window full length.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from vacelab import Job, RunSettings  # noqa: E402
from vacelab.generation.pipeline import load_pipeline  # noqa: E402
from vacelab.generation.run import run_job  # noqa: E402
from vacelab.geometry import plan_windows, target_size  # noqa: E402


def moving_clip(frames: int, height: int, width: int) -> np.ndarray:
    t = np.arange(frames)[:, None, None]
    y, x = np.mgrid[0:height, 0:width]
    stripes = ((x + y + t) // 6 % 2) * 120 + 60
    ramp = (t * 160 // max(frames - 1, 1) + 40) + 0 * x
    return np.stack([stripes, ramp, 255 - stripes], -1).astype(np.uint8)


def make_job(frames: int, height: int, width: int, window: int, overlap: int) -> Job:
    source = moving_clip(frames, height, width)
    mask = np.zeros(source.shape[:3], bool)
    mask[:, height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = True
    video = source.copy()
    video[mask] = 127
    windows = plan_windows(frames, window, overlap)
    return Job("inpaint", video, mask, 16.0, original=source, windows=windows)


def steps_change(video: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean |frame f+1 - frame f| over pixels generated in both frames, for each f."""
    both = mask[1:] & mask[:-1]
    diff = np.abs(video[1:].astype(np.int16) - video[:-1].astype(np.int16)).mean(axis=-1)
    return (diff * both).sum(axis=(1, 2)) / np.maximum(both.sum(axis=(1, 2)), 1)


def seam_figures(video: np.ndarray, mask: np.ndarray, windows, handovers: list[int]) -> tuple[float, float]:
    """(join, inside): the change into each handover frame, and away from every shared span."""
    change = steps_change(video, mask)
    join = float(np.mean([change[h - 1] for h in handovers]))
    near = np.zeros(len(change), bool)
    for (_, stop), (start, _) in zip(windows, windows[1:], strict=False):
        near[max(start - 1, 0) : stop + 1] = True
    return join, float(change[~near].mean())


def naive(job: Job, settings: RunSettings, pipe, tmp: Path) -> tuple[np.ndarray, list[int]]:
    """Each window on its own (no kept context), cut in the middle of the shared frames."""
    video = np.zeros_like(job.video)
    handovers = []
    for i, (start, stop) in enumerate(job.windows):
        part = Job(
            job.task, job.video[start:stop], job.mask[start:stop], job.fps, original=job.original[start:stop]
        )
        window_settings = RunSettings(**{**settings.as_dict(), "seed": settings.seed + i})
        frames = run_job(part, tmp / f"naive-{settings.seed}-{i}", window_settings, pipeline=pipe).video
        cut = 0 if i == 0 else (job.windows[i - 1][1] + start) // 2
        video[cut:stop] = frames[cut - start :]
        if i:
            handovers.append(cut)
    return video, handovers


def generated_frames(frames: int, window: int, overlap: int) -> tuple[int, int]:
    """(frames the model generates with vacelab's windows, with every window full length as before)."""
    windows = plan_windows(frames, window, overlap)
    return sum(stop - start for start, stop in windows), len(windows) * window


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder or hub id (default: the tiny random pipeline)")
    parser.add_argument("--frames", type=int, default=161)
    parser.add_argument("--size", default="112x64", help="WxH, multiples of 16")
    parser.add_argument("--window", type=int, default=81)
    parser.add_argument("--overlap", type=int, default=17)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="seeds (medians are printed)")
    parser.add_argument("--color-match", action="store_true")
    args = parser.parse_args()
    height, width = target_size(args.size)
    job = make_job(args.frames, height, width, args.window, args.overlap)
    for frames in sorted({args.frames, 161, 300}):
        ours, full = generated_frames(frames, args.window, args.overlap)
        print(
            f"generated frames for {frames} frames (window {args.window}, overlap {args.overlap}): {ours} "
            f"(last window only as long as needed) vs {full} with a full-length last window "
            f"({ours / full:.2f}x)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model
        if model is None:
            from vacelab.testing.tiny import save_tiny_pipeline

            model = str(save_tiny_pipeline(tmp / "model"))
        settings = RunSettings(
            prompt="a plain wall", model=model, steps=args.steps, color_match=args.color_match
        )
        pipe = load_pipeline(settings)
        print(
            f"{args.frames} frames {width}x{height}, windows {job.windows}, {args.steps} steps, "
            f"model {'tiny random' if args.model is None else args.model}"
        )
        ours, base = [], []
        for seed in range(2025, 2025 + args.repeats):
            seeded = RunSettings(**{**settings.as_dict(), "seed": seed})
            result = run_job(job, tmp / f"long-{seed}", seeded, pipeline=pipe)
            handovers = [prev_stop for (_, prev_stop) in job.windows[:-1]]
            ours.append(seam_figures(result.video, job.mask, job.windows, handovers))
            video, cuts = naive(job, seeded, pipe, tmp)
            base.append(seam_figures(video, job.mask, job.windows, cuts))
            print(
                f"seed {seed}: vacelab join {ours[-1][0]:.2f} inside {ours[-1][1]:.2f} | "
                f"independent windows join {base[-1][0]:.2f} inside {base[-1][1]:.2f}"
            )
    for name, runs in (("vacelab windows", ours), ("independent windows, hard cut", base)):
        join = statistics.median(r[0] for r in runs)
        inside = statistics.median(r[1] for r in runs)
        print(f"{name:31s}: join {join:6.2f}  inside {inside:6.2f}  ratio {join / inside:.2f}")


if __name__ == "__main__":
    main()
