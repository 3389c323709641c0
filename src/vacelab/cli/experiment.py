"""`vacelab experiment PLAN.toml --out DIR`: jobs x run settings, measured, reported (docs/experiments.md)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "experiment",
        help="prepare, audit, run and measure the jobs x settings of a TOML plan; one HTML report",
        description="Prepare every job of PLAN (inputs relative to the plan; 'sample:' = the bundled clip), "
        "audit it, run every combination of its grid of run settings, measure each output (PSNR/SSIM of KEEP "
        "regions and keyframes, flicker, time, peak memory) and write DIR/report.html and "
        "DIR/experiment.json. Run the same command again to resume. Exit code 1 when a run failed.",
    )
    p.add_argument("plan", type=Path, metavar="PLAN.toml", help="the plan (see docs/experiments.md)")
    p.add_argument("--out", type=Path, required=True, help="new folder (or this plan's folder, to resume)")
    p.add_argument("--model", help="use this model for every run (replaces the plan's, model axes included)")
    p.add_argument("--steps", type=int, help="denoising steps for every run")
    p.add_argument("--size", help="job size for every job, 480p|720p|WxH")
    p.add_argument("--frames", type=int, help="frames per job (4n+1) for every job")
    p.add_argument("--no-run", action="store_true", help="prepare and audit only (no model needed)")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    import sys

    from ..experiment import load_plan, run_plan

    plan = load_plan(args.plan, model=args.model, steps=args.steps, size=args.size, frames=args.frames)
    record = run_plan(plan, args.out, generate=not args.no_run)
    runs = record["runs"]
    failed = [r for r in runs if r["status"] == "failed"]
    done = sum(r["status"] == "done" for r in runs)
    print(
        f"{done} run(s) done, {len(failed)} failed, {len(runs) - done - len(failed)} not run", file=sys.stderr
    )
    print(args.out / "report.html")
    return 1 if failed else 0
