"""`vacelab demo --out DIR [--model ID_OR_PATH]`: the report's tasks on the sample (docs/experiments.md)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="every task of the field report on the bundled sample, audited, in one HTML report",
        description="Build every task of the field report (inpaint, remove, outpaint, first/last frame, "
        "extend, keyframes naive/aligned/anchor) on the bundled sample clip, audit each and write "
        "DIR/report.html. With --model (weights present) each job is also generated and shown side by "
        "side. Needs no network and no weights.",
    )
    p.add_argument(
        "--out", type=Path, required=True, help="new (or empty) folder for the jobs and report.html"
    )
    p.add_argument(
        "--model", help="generate the outputs with this model: hub id (downloaded), folder, 1.3b/14b"
    )
    p.add_argument("--steps", type=int, help="denoising steps with --model (default 50)")
    p.add_argument("--size", help="job size, 480p|720p|WxH (default 416x240: fast; 480p for real outputs)")
    p.add_argument("--frames", type=int, help="frames per job, 4n+1 (default 81)")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    import sys
    import time

    from ..demo import ADD_MODEL, run_demo

    if args.steps is not None and args.model is None:
        from ..errors import InputError

        raise InputError("--steps: only with --model (nothing is generated without a model)")
    start = time.perf_counter()
    report = run_demo(args.out, model=args.model, steps=args.steps, size=args.size, frames=args.frames)
    if args.model is None:
        print(ADD_MODEL)
    print(f"wrote {report} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    print(report)
    return 0
