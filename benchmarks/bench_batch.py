"""What `vacelab batch` adds around run_job, what a resume costs, and what Ray mode costs on one machine.

Model: the tiny random WanVACEPipeline of the tests, saved once. Jobs: ``--jobs`` inpaint jobs of 17
frames at 320x192, ``--steps`` denoising steps (default 4).

Baseline, in the same run: a plain loop calling ``run_job`` with one pipeline loaded once (what a user's
own script would do). vacelab: ``run_batch`` in local mode (loads the model itself, hashes each job
folder, writes its records, progress and ``batch.json``). Then the same batch again, everything
finished (the cost of a resume that skips all), and the hash of one 81-frame 480p job folder. With
``--ray``: the batch on a local Ray cluster (``ray.init(num_cpus=2)``, start-up included, once).
Prints medians of ``--repeats`` runs.

    python benchmarks/bench_batch.py [--repeats 3] [--jobs 4] [--steps 4] [--ray]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from vacelab import Job, RunSettings, save_job  # noqa: E402
from vacelab.batch import job_fingerprint, run_batch  # noqa: E402
from vacelab.generation.pipeline import load_pipeline  # noqa: E402
from vacelab.generation.run import run_job  # noqa: E402
from vacelab.manifest import load_manifest  # noqa: E402
from vacelab.testing.tiny import save_tiny_pipeline  # noqa: E402

FRAMES, HEIGHT, WIDTH = 17, 192, 320


def make_job(folder: Path, seed: int, frames=FRAMES, height=HEIGHT, width=WIDTH) -> Path:
    rng = np.random.default_rng(seed)
    video = rng.integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
    mask = np.zeros((frames, height, width), bool)
    mask[:, height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = True
    video[mask] = 127
    return save_job(Job(task="inpaint", video=video, mask=mask, fps=16.0), folder, preview=False)


def timed(fn, *args, **kwargs) -> float:
    start = time.perf_counter()
    outcomes = fn(*args, **kwargs)
    seconds = time.perf_counter() - start
    failed = [o for o in outcomes if o.status == "failed"] if isinstance(outcomes, list) else []
    if failed:
        raise SystemExit(f"{failed[0].name} failed: {failed[0].error}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--ray", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        model = save_tiny_pipeline(root / "model")
        for i in range(args.jobs):
            make_job(root / "jobs" / f"j{i}", seed=i)
        entries = "".join(f'[[jobs]]\nname = "j{i}"\njob = "jobs/j{i}"\n' for i in range(args.jobs))
        manifest_path = root / "batch.toml"
        manifest_path.write_text(
            f'[defaults]\nmodel = "{model}"\nsteps = {args.steps}\nprompt = "a red car"\n{entries}'
        )
        manifest = load_manifest(manifest_path)
        settings = RunSettings(model=str(model), steps=args.steps, prompt="a red car")
        pipe = load_pipeline(settings)
        quiet = open(os.devnull, "w")  # noqa: SIM115 - progress lines would drown the figures

        def loop(out: Path) -> None:
            for entry in manifest.jobs:
                run_job(entry.job, out / entry.name, settings, pipeline=pipe)

        figures = {"loop": [], "batch": [], "resume": []}
        for r in range(args.repeats):
            figures["loop"].append(timed(loop, root / f"loop{r}"))
            figures["batch"].append(timed(run_batch, manifest, root / f"batch{r}", stream=quiet))
            figures["resume"].append(timed(run_batch, manifest, root / f"batch{r}", stream=quiet))
        base = statistics.median(figures["loop"])
        print(f"{args.jobs} jobs, 17 frames 320x192, {args.steps} steps, median of {args.repeats}:")
        print(f"  run_job loop, model preloaded (baseline)  {base:7.2f} s")
        batch = statistics.median(figures["batch"])
        print(f"  vacelab batch, local (loads the model)    {batch:7.2f} s  ({batch / base:.2f}x baseline)")
        resume = statistics.median(figures["resume"])
        print(f"  vacelab batch again, all finished (skip)  {resume:7.3f} s  ({resume / base:.3f}x baseline)")

        make_job(root / "big", seed=0, frames=81, height=480, width=832)
        hashes = [timed(job_fingerprint, root / "big") for _ in range(max(args.repeats, 3))]
        size = sum(f.stat().st_size for f in (root / "big" / "arrays").iterdir()) / 1e6
        print(f"  job content hash, 81 frames 832x480 ({size:.0f} MB)  {statistics.median(hashes):.3f} s")
        if args.ray:
            import ray

            start = time.perf_counter()
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            started = time.perf_counter() - start
            seconds = timed(run_batch, manifest, root / "ray", ray=True, stream=quiet)
            ray.shutdown()
            print(
                f"  vacelab batch --ray, 2 CPU workers         {seconds:7.2f} s  (+ {started:.1f} s ray.init)"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
