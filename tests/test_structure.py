"""The shape of the source: no import cycle, no oversized module, a library that neither prints nor words
its errors as command-line flags, and a public API that type checkers see as it is."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import vacelab

SRC = Path(vacelab.__file__).parent
MODULES = sorted(SRC.rglob("*.py"))
MAX_LINES = 500
# Modules still wording errors as "--flag ..." (each to be converted in its own lane's change):
# job.py / batch.py output-folder guards (to folders.py, issue 22), tasks/ (issues 20 and 22).
FLAG_ERRORS_PENDING: set[str] = set()


def module_name(path: Path, root: Path = SRC) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, names: set[str], root: Path = SRC) -> set[str]:
    """The vacelab modules ``path`` imports, at module level or inside functions (a ``TYPE_CHECKING``
    block excepted: it never runs). ``from . import x`` counts as importing ``x`` when it is a module."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for statement in node.body
        for inner in ast.walk(statement)
    }
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            subs = {f"{source}.{alias.name}" for alias in node.names} & names
            found.update(subs if len(subs) == len(node.names) else subs | {source})
    return (found & names) - {name}


def test_no_import_cycle():
    names = {module_name(p) for p in MODULES}
    graph = {module_name(p): imports_of(p, names) for p in MODULES}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_the_cycle_check_sees_imports_inside_functions(tmp_path):
    names = {"vacelab.a", "vacelab.b"}
    folder = tmp_path / "vacelab"
    folder.mkdir()
    (folder / "a.py").write_text("def f():\n    from .b import g\n")
    assert imports_of(folder / "a.py", names, root=folder) == {"vacelab.b"}


def test_no_module_over_500_lines():
    long = {str(p.relative_to(SRC)): n for p in MODULES if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def _outside_cli() -> list[Path]:
    return [p for p in MODULES if p.relative_to(SRC).parts[0] != "cli"]


def test_the_library_never_prints():
    """Only ``cli/`` prints; a module's ``if __name__ == "__main__":`` block is a script entry point."""
    found = []
    for path in _outside_cli():
        tree = ast.parse(path.read_text())
        entry = {
            id(inner)
            for node in tree.body
            if isinstance(node, ast.If) and "__name__" in ast.unparse(node.test)
            for inner in ast.walk(node)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "print"
                and id(node) not in entry
            ):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not found, found


FLAG_MESSAGE = re.compile(r"InputError\(\s*f?[\"']--")


def test_library_errors_name_fields_not_flags():
    """``InputError("must be at least 1", field="steps")``, never ``InputError("--steps ...")`` outside
    ``cli/``: each interface renders the field its own way."""
    offenders = {
        str(path.relative_to(SRC)) for path in _outside_cli() if FLAG_MESSAGE.search(path.read_text())
    }
    assert offenders <= FLAG_ERRORS_PENDING, sorted(offenders - FLAG_ERRORS_PENDING)
    assert FLAG_MESSAGE.search('raise InputError(\n    f"--steps {n}: must be at least 1")')  # it can fail


def test_the_public_api_is_visible_to_type_checkers():
    """Every lazily exported name is imported under ``TYPE_CHECKING`` from the module ``_API`` names."""
    tree = ast.parse((SRC / "__init__.py").read_text())
    typed = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for statement in node.body:
                for alias in statement.names:
                    typed[alias.name] = "vacelab." + statement.module
    assert typed == vacelab._API
    for name in vacelab.__all__:
        assert getattr(vacelab, name) is not None
