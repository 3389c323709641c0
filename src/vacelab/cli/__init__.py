"""The ``vacelab`` command line: one module per command, each a thin layer over the Python API.

Each command module exposes ``register(subparsers)``, which adds its parser and sets ``handler`` to a
function ``handler(args) -> int``. Heavy imports (torch, diffusers, gradio, ray) happen inside handlers
so that light commands such as ``audit`` start fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import InputError

COMMANDS = ("prepare", "audit", "run", "demo", "experiment", "batch", "ui")


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports usage errors as one ``error:`` line and exit code 2."""

    def error(self, message: str):  # noqa: D102 - argparse hook
        sys.stderr.write(f"error: {self.prog}: {message}\n")
        raise SystemExit(2)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="vacelab", description="A workbench for video editing with VACE on Wan2.1.")
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"vacelab {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vacelab`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args) or 0
    except InputError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130


def run() -> None:
    sys.exit(main())
