"""What `vacelab run` adds around diffusers: the bare WanVACEPipeline call against run_job.

Model: the tiny random WanVACEPipeline of the tests (``tests/tiny_pipeline.py``), saved and loaded back
with ``load_pipeline`` once (loading is not timed). Job: inpaint, 17 frames at 320x192, a box mask, one
reference image; ``--steps`` denoising steps (default 4).

Baseline, in the same run: the bare diffusers call with the same inputs (PIL frames and mask at the job's
size, same seed, ``output_type="np"``). vacelab: ``run_job`` with the defaults (audit, composite,
out_video.mp4 / .gif, compare.mp4, lossless frames, run.json). The wrapper's own overhead is read from
``run.json`` (``timings.wrapper_overhead``: read job, audit, inputs, composite, write) and must stay under
10% of the run's total. Prints medians of ``--repeats`` runs.

    python benchmarks/bench_run.py [--repeats 3] [--steps 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from vacelab import Job, RunSettings, save_job  # noqa: E402
from vacelab.generation.passes import pipeline_inputs  # noqa: E402
from vacelab.generation.pipeline import load_pipeline  # noqa: E402
from vacelab.generation.run import run_job  # noqa: E402
from vacelab.testing.tiny import save_tiny_pipeline  # noqa: E402

FRAMES, HEIGHT, WIDTH = 17, 192, 320


def make_job() -> Job:
    rng = np.random.default_rng(0)
    source = rng.integers(0, 256, (FRAMES, HEIGHT, WIDTH, 3), dtype=np.uint8)
    mask = np.zeros((FRAMES, HEIGHT, WIDTH), bool)
    mask[:, 48:144, 80:240] = True
    video = source.copy()
    video[mask] = 127
    ref = rng.integers(0, 256, (120, 90, 3), dtype=np.uint8)
    return Job(task="inpaint", video=video, mask=mask, fps=16.0, refs=[ref], original=source)


def bare_call(pipe, job: Job, steps: int) -> float:
    import torch

    start = time.perf_counter()
    pipe(
        prompt="an empty street",
        num_inference_steps=steps,
        generator=torch.Generator("cpu").manual_seed(2025),
        output_type="np",
        **pipeline_inputs(job),
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = save_tiny_pipeline(tmp / "model")
        pipe = load_pipeline(RunSettings(model=str(model))).pipe
        job_dir = save_job(make_job(), tmp / "job")
        job = make_job()
        settings = RunSettings(prompt="an empty street", steps=args.steps)
        bare_call(pipe, job, 1)  # warm-up
        bare, ours, overhead, fraction = [], [], [], []
        for i in range(args.repeats):
            bare.append(bare_call(pipe, job, args.steps))
            start = time.perf_counter()
            result = run_job(job_dir, tmp / f"out{i}", settings, pipeline=pipe)
            ours.append(time.perf_counter() - start)
            overhead.append(result.run["timings"]["wrapper_overhead"])
            fraction.append(result.run["timings"]["wrapper_overhead_fraction"])
        b, o = statistics.median(bare), statistics.median(ours)
        print(
            f"tiny WanVACEPipeline, {FRAMES} frames {WIDTH}x{HEIGHT}, 1 reference, {args.steps} steps, "
            f"median of {args.repeats} (torch threads: {__import__('torch').get_num_threads()})"
        )
        print(f"bare diffusers call   : {b:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in bare)})")
        print(f"vacelab run_job       : {o:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in ours)})")
        print(f"run_job / bare        : {o / b:.2f}x")
        print(
            f"wrapper overhead      : {statistics.median(overhead):.3f} s "
            f"(runs: {', '.join(f'{t:.3f}' for t in overhead)})"
        )
        print(f"overhead / total      : {100 * statistics.median(fraction):.1f}% (target < 10%)")
        print(
            "stages of the last run: "
            + ", ".join(
                f"{k} {v:.3f}"
                for k, v in result.run["timings"].items()
                if k in ("read_job", "audit", "inputs", "generate", "composite", "write")
            )
        )


if __name__ == "__main__":
    main()
