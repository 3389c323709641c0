"""Peak memory of the wrapper on long jobs: does a run hold O(window) frames, or the whole clip?

Each measurement runs in a fresh process: a long inpaint job of ``--frames`` frames at 832x480 (a moving
gradient, a box mask) is saved with ``save_job``, then ``run_job`` generates it with the tiny random
pipeline loaded for the checks but each pass replaced by a stub that returns the conditioning frames (so
the figures are the wrapper's own: windows, colour match, composite, stitching, resume files, the results
folder with its mp4s, GIF and lossless frames). Printed per length: peak RSS of the run above the process's
RSS once the pipeline is loaded, and the run's wall time.

    python benchmarks/bench_long_memory.py [--frames 321 1001] [--window 81]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEIGHT, WIDTH = 480, 832


def child(frames: int, window: int, folder: Path) -> dict:
    """One measurement (run in its own process): prepare-free job, stubbed passes, peak RSS and time."""
    import resource

    import numpy as np

    from vacelab import Job, RunSettings, save_job
    from vacelab.generation import windows
    from vacelab.generation.pipeline import load_pipeline
    from vacelab.generation.run import run_job
    from vacelab.testing.tiny import save_tiny_pipeline

    t = np.arange(frames, dtype=np.uint16)[:, None, None]
    x = np.arange(WIDTH, dtype=np.uint16)[None, None, :]
    y = np.arange(HEIGHT, dtype=np.uint16)[None, :, None]
    video = np.empty((frames, HEIGHT, WIDTH, 3), np.uint8)
    video[..., 0] = (x + 2 * t) % 256
    video[..., 1] = (y + t) % 256
    video[..., 2] = (t * 3) % 256
    mask = np.zeros((frames, HEIGHT, WIDTH), bool)
    mask[:, 160:320, 300:560] = True
    video[mask] = 127
    spans = [(a, b) for a, b in _windows(frames, window)]
    job = save_job(
        Job(task="inpaint", video=video, mask=mask, fps=16.0, windows=spans), folder / "job", preview=False
    )
    del video, mask
    pipe = load_pipeline(RunSettings(model=str(save_tiny_pipeline(folder / "model")))).pipe
    windows.generate = lambda ctx, clip, **_: np.array(clip.video)  # the stub pass: the wrapper alone
    base = _rss_mb()
    start = time.perf_counter()
    run_job(job, folder / "run", RunSettings(prompt="x", steps=1, color_match=True), pipeline=pipe)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"frames": frames, "base_mb": round(base), "peak_mb": round(peak), "seconds": round(seconds, 1)}


def _windows(frames: int, window: int):
    from vacelab.geometry import default_overlap, plan_windows

    return plan_windows(frames, window, default_overlap(window))


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[321, 1001])
    parser.add_argument("--window", type=int, default=81)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(child(args.child, args.window, Path(tmp))))
        return
    print(f"long inpaint job at {WIDTH}x{HEIGHT}, windows of {args.window}, stub passes (the wrapper alone)")
    print("frames  peak RSS above the loaded pipeline  run time")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for frames in args.frames:
        command = [sys.executable, __file__, "--child", str(frames), "--window", str(args.window)]
        line = subprocess.run(
            command, check=True, capture_output=True, text=True, env=env
        ).stdout.splitlines()[-1]
        figures = json.loads(line)
        above = figures["peak_mb"] - figures["base_mb"]
        print(f"{frames:6d}  {above:8d} MB (peak {figures['peak_mb']} MB)        {figures['seconds']:6.1f} s")


if __name__ == "__main__":
    main()
