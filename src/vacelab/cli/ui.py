"""`vacelab ui`: the local web interface (Gradio), on 127.0.0.1 unless --host says otherwise (docs/ui.md)."""

from __future__ import annotations

import argparse
import sys

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ui",
        help="web interface: paint a mask, watch the audit, build, run, compare",
        description="Start the web interface. It listens on 127.0.0.1 only, serves no file outside its own "
        "temporary folder, opens typed paths only inside --allow folders, and gives every browser session "
        "its own working folder. Results last as long as the process unless --results keeps them.",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--port", type=int, default=7860, help="port (default %(default)s)")
    p.add_argument(
        "--model",
        action="append",
        default=[],
        help="hub id, local diffusers folder, 1.3b, 14b or 2.2-a14b: enables Run; repeat it to offer several "
        "models on the page, the first chosen at start (default: none)",
    )
    p.add_argument(
        "--track-model",
        help="SAM 2 weights for click-to-track: hub id or local folder (default facebook/sam2.1-hiera-tiny)",
    )
    p.add_argument(
        "--segment-model",
        help="SAM 3 weights for a phrase (Find and track): hub id or local folder (default facebook/sam3)",
    )
    p.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="DIR",
        help="folder whose videos may be opened by path (repeatable; default: none, uploads only)",
    )
    p.add_argument("--max-upload", default="500MB", help="largest upload accepted (default %(default)s)")
    p.add_argument(
        "--results",
        metavar="DIR",
        help="keep the queue's jobs and results in DIR (created; reopened by a later `vacelab ui --results "
        "DIR`, one process at a time; not overlapping an --allow folder) instead of the temporary folder "
        "removed on exit",
    )
    p.set_defaults(handler=handle)


def _terminate(signum, frame):
    raise SystemExit(0)


def handle(args: argparse.Namespace) -> int:
    import shutil
    import signal
    import tempfile
    from pathlib import Path

    from ..errors import InputError
    from ..generation.settings import MODEL_ALIASES
    from ..ui.policy import Policy

    if args.host not in LOCAL_HOSTS:
        print(
            f"warning: --host {args.host}: the interface is reachable from other machines and has no "
            "login; anyone who can reach it can open files in the --allow folders and run jobs",
            file=sys.stderr,
        )
    if not 0 < args.port < 65536:
        raise InputError(f"--port {args.port}: must be 1..65535")
    models_given = []
    for given in args.model:
        model = MODEL_ALIASES.get(given.lower(), given)
        looks_local = model.startswith((".", "/", "~")) or Path(model).expanduser().exists()
        if looks_local and not Path(model).expanduser().is_dir():
            raise InputError(f"--model {given}: no such model folder")
        models_given.append(model)
    root = Path(tempfile.mkdtemp(prefix="vacelab-ui-"))
    signal.signal(signal.SIGTERM, _terminate)  # `kill` cleans up like Ctrl+C does
    try:
        policy = Policy.create(args.allow, root=root, max_upload=args.max_upload, results=args.results)
        from ..ui.app import serve
        from ..ui.workbench import Models

        models = Models(models_given, track_model=args.track_model, segment_model=args.segment_model)
        app, url = serve(policy, models, host=args.host, port=args.port, block=False)
        print(f"vacelab ui on {url}  (Ctrl+C stops it)", flush=True)
        try:
            app.block_thread()
        finally:
            app.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)  # never --results: it lies outside root
    return 0
