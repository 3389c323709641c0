"""`vacelab batch MANIFEST.toml --out OUT [--ray [ADDRESS]] [--max-parallel N]`: many jobs, resumable."""

from __future__ import annotations

import argparse


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "batch",
        help="run the jobs of a TOML manifest, resumably, locally or on a Ray cluster",
        description=(
            "Run every job of MANIFEST into OUT/NAME/. Jobs already finished with the same settings and "
            "job content are skipped; unfinished ones are redone from scratch; a failing job is recorded "
            "and the batch goes on. Writes OUT/batch.json and prints a summary. Exit code 1 when a job "
            "failed."
        ),
    )
    parser.add_argument(
        "manifest", metavar="MANIFEST.toml", help="[defaults] run options and [[jobs]] entries"
    )
    parser.add_argument(
        "--out", required=True, metavar="OUT", help="output folder (created; reused to resume)"
    )
    parser.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run on a Ray cluster (ADDRESS, e.g. 'auto' or 'ray://host:10001'; a local one when omitted)",
    )
    parser.add_argument(
        "--max-parallel",
        type=_positive,
        metavar="N",
        help="with --ray: at most N jobs at once (default: one per GPU, or one per CPU without GPUs)",
    )
    parser.set_defaults(handler=handle)


def handle(args) -> int:
    from ..batch import run_batch, summary_table
    from ..errors import InputError
    from ..manifest import load_manifest

    if args.max_parallel is not None and args.ray is None:
        raise InputError("--max-parallel: only with --ray (local mode runs one job at a time)")
    manifest = load_manifest(args.manifest)
    outcomes = run_batch(
        manifest, args.out, ray=args.ray is not None, address=args.ray or None, max_parallel=args.max_parallel
    )
    print(summary_table(outcomes))
    print(f"results: {args.out}/  (batch.json)")
    return 1 if any(o.status == "failed" for o in outcomes) else 0
