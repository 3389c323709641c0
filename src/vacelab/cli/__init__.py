"""The ``vacelab`` command line: one module per command, each a thin layer over the Python API.

Each command module exposes ``register(subparsers)``, which adds its parser and sets ``handler`` to a
function ``handler(args) -> int``. Heavy imports (torch, diffusers, gradio, ray) happen inside handlers
so that light commands such as ``audit`` start fast.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys

from ..errors import InputError, WorkerFailed, cli_flag

COMMANDS = ("prepare", "audit", "run", "export", "demo", "experiment", "batch", "ui")


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports usage errors as one ``error:`` line and exit code 2."""

    def error(self, message: str):  # noqa: D102 - argparse hook
        sys.stderr.write(f"error: {self.prog}: {message}\n")
        raise SystemExit(2)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="vacelab",
        description="A workbench for video editing with VACE on Wan2.1 and Wan2.2.",
        epilog="Start with `vacelab demo --out demo` (no weights needed), then `vacelab COMMAND --help`.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"vacelab {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def join_dash_values(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """``--key -1=a.png`` -> ``--key=-1=a.png`` for every option that takes one value.

    argparse reads a value that starts with ``-`` (``-1=a.png``, ``-5,0,9,9``, ``-blurry``) as an unknown
    option and stops with its generic message, so the option's own check never ran. A token that is
    itself one of the parser's options is left alone.
    """
    takes_value, options = set(), set()
    parsers = [parser]
    while parsers:
        current = parsers.pop()
        for action in current._actions:
            options.update(action.option_strings)
            if action.option_strings and action.nargs is None and action.const is None:
                takes_value.update(action.option_strings)  # store / append: exactly one value
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    out: list[str] = []
    for token in argv:
        previous = out[-1] if out else ""
        if previous in takes_value and token[:1] == "-" and token.split("=")[0] not in options:
            out[-1] = f"{previous}={token}"
        else:
            out.append(token)
    return out


class StderrHandler(logging.Handler):
    """Shows the library's log records on stderr, one message a line, as the CLI's own messages are.

    Writes to ``sys.stderr`` as it is at each record (so a redirected stderr gets them too)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def library_messages_on_stderr(level: int = logging.INFO):
    """While the block runs, the ``vacelab`` logger's records of ``level`` and above go to stderr."""
    logger, handler = logging.getLogger("vacelab"), StderrHandler()
    saved = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vacelab`` console script; returns the exit code."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:  # bare `vacelab`: what it can do, not an error
        parser.print_help()
        return 0
    args = parser.parse_args(join_dash_values(argv, parser))
    try:
        with library_messages_on_stderr():
            return args.handler(args) or 0
    except InputError as exc:
        sys.stderr.write(f"error: {exc.render(cli_flag(exc.field) if exc.field else None)}\n")
        return 2
    except WorkerFailed as exc:  # a rank of a parallel run: its traceback stayed in the rank
        sys.stderr.write(f"error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except BrokenPipeError:  # `vacelab prepare ... | head`: the reader left; stop quietly, as `cat` does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's flush at exit would raise again
        return 141  # 128 + SIGPIPE, what a shell reports for a command killed by it


def run() -> None:
    sys.exit(main())
