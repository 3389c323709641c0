"""`vacelab export RUN --out PATH`: put a run back into its source video (docs/export.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..media import CODECS


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="put an inpaint/remove run back into its source video at full resolution, rate and sound",
        description="Composite the run's generated region into the original source video: the job's crop "
        "and resize undone, every other pixel of the source untouched, the source's frame rate and audio "
        "kept. OUT.mp4 (H.264, or --codec h265), OUT.mov (ProRes 422 HQ) or OUT (a new folder of PNG "
        "frames).",
    )
    p.add_argument("run", type=Path, help="results folder written by `vacelab run`")
    p.add_argument("--out", type=Path, required=True, help="OUT.mp4, OUT.mov or a new folder for PNG frames")
    p.add_argument("--codec", choices=CODECS, help="h264 (default for .mp4), h265, prores (default for .mov)")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ..export import export_run

    print(describe(export_run(args.run, args.out, codec=args.codec)), file=sys.stderr)
    print(args.out)
    return 0


def describe(export) -> str:
    """The line the CLI prints about a finished export."""
    sound = "with the source's audio" if export.audio else "no audio"
    size = f"{export.width}x{export.height}"
    return f"exported {export.path} ({export.frames} frames {size} at {export.fps:g} fps, {sound})"
