"""`vacelab demo` (not built yet)."""


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="(not built yet)")
    parser.set_defaults(handler=lambda args: (_ for _ in ()).throw(NotImplementedError("demo")))
