"""`vacelab ui` (not built yet)."""


def register(subparsers) -> None:
    parser = subparsers.add_parser("ui", help="(not built yet)")
    parser.set_defaults(handler=lambda args: (_ for _ in ()).throw(NotImplementedError("ui")))
