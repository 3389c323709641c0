"""Time the whole ``vacelab audit JOB --json`` process on an 81x480x832 job (target: under 1.0 s).

Baseline, measured in the same run: a Python process that only reads the job's arrays with numpy.
Prints the median of several runs of each, the ratio, and the in-process audit time.

    python benchmarks/bench_audit.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FRAMES, HEIGHT, WIDTH = 81, 480, 832


def make_job(folder: Path) -> Path:
    """The field report's keyframe job: KEEP every 4 frames from 0, two reference images."""
    from vacelab.job import Job, save_job

    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (FRAMES, HEIGHT, WIDTH, 3), dtype=np.uint8)
    mask = np.ones((FRAMES, HEIGHT, WIDTH), bool)
    mask[::4] = False
    video[mask] = 127
    refs = [rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8) for _ in range(2)]
    return save_job(Job("keyframes", video, mask, 16.0, refs=refs), folder / "job", preview=False)


def time_process(argv: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        job = make_job(Path(tmp))
        audit = [sys.executable, "-m", "vacelab", "audit", str(job), "--json"]
        baseline = [
            sys.executable,
            "-c",
            "import numpy as np, sys; np.load(sys.argv[1] + '/arrays/video.npy', mmap_mode='r'); "
            "np.load(sys.argv[1] + '/arrays/mask.npy')",
            str(job),
        ]
        subprocess.run(audit, check=True, stdout=subprocess.DEVNULL)  # warm the file cache
        base_times = time_process(baseline, args.runs)
        audit_times = time_process(audit, args.runs)
        png_times = time_process([*audit, "--png", str(Path(tmp) / "audit.png")], args.runs)

        from vacelab.audit import audit_job
        from vacelab.job import load_job

        loaded = load_job(job)
        inproc = []
        for _ in range(args.runs):
            start = time.perf_counter()
            audit_job(loaded)
            inproc.append(time.perf_counter() - start)

    base, full, png = (statistics.median(t) for t in (base_times, audit_times, png_times))
    print(
        f"job: {FRAMES} frames x {WIDTH}x{HEIGHT}, 2 references, keyframes every 4; "
        f"median of {args.runs} runs"
    )
    print(f"baseline process (read the job arrays with numpy): {base:.3f} s")
    print(f"vacelab audit JOB --json (whole process):          {full:.3f} s  ({full / base:.2f}x baseline)")
    print(f"vacelab audit JOB --json --png FILE:               {png:.3f} s  ({png / base:.2f}x baseline)")
    print(f"audit_job() in process (analysis only):            {statistics.median(inproc) * 1000:.0f} ms")
    print(f"target: whole process under 1.0 s -> {'met' if full < 1.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
