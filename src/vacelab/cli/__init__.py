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


def join_dash_values(argv: list[str]) -> list[str]:
    """``--key -1=a.png`` -> ``--key=-1=a.png``: argparse takes a value such as ``-1=a.png`` or ``-5,0,9,9``
    for an unknown option (plain negative numbers it reads right), so the option's own check never ran."""
    out: list[str] = []
    for token in argv:
        previous = out[-1] if out else ""
        dash_digit = len(token) > 1 and token[0] == "-" and token[1].isdigit()
        if dash_digit and previous.startswith("--") and "=" not in previous and len(previous) > 2:
            out[-1] = f"{previous}={token}"
        else:
            out.append(token)
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vacelab`` console script; returns the exit code."""
    args = build_parser().parse_args(join_dash_values(sys.argv[1:] if argv is None else list(argv)))
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
