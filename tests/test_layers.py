"""The import structure of `secretstore` as docs/architecture.md draws it: each layer imports only the layers below
it, and no module takes part in an import cycle. Read from the source with `ast`, so it also covers modules no test
imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "secretstore"

# top-level part -> the parts it may import (besides itself)
BASE = {"aio", "process", "crypto", "codec"}
ALLOWED = {
    "aio": set(),
    "process": set(),
    "crypto": set(),
    "codec": {"crypto"},
    "interface": {"crypto", "codec"},
    "runtime": {"crypto", "codec", "interface"},
    "node": BASE | {"interface", "runtime"},
    "chain": BASE | {"interface"},  # a client of any chain: nothing of our runtime or node
    "keyserver": BASE | {"interface", "chain"},  # deployed on its own host: nothing of the node
    "client": BASE | {"interface", "chain"},
    "devnet": BASE | {"node", "keyserver"},  # starts both as processes
    "cli": BASE | {"interface", "runtime", "node", "chain", "keyserver", "client", "devnet"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def imports_of(name: str, top_level_only: bool) -> set[str]:
    """The secretstore modules `name` imports (a `from package import submodule` counts as the submodule).
    top_level_only: only what runs at import time (not inside functions, not under TYPE_CHECKING)."""
    tree = ast.parse(MODULES[name].read_text())
    package = name if is_package(name) else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if top_level_only and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if top_level_only and isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name.split(".")[0] == "secretstore")
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.split(".")[0] == "secretstore":
                    for alias in child.names:
                        sub = f"{target}.{alias.name}"
                        found.add(sub if sub in MODULES else target)
            visit(child)

    visit(tree)
    found.discard(name)
    return {m for m in found if m in MODULES}


def part(name: str) -> str:
    pieces = name.split(".")
    return pieces[1] if len(pieces) > 1 else ""


def test_every_part_has_a_place():
    assert {part(m) for m in MODULES} - {""} == set(ALLOWED)


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_imports_point_down(layer):
    wrong = sorted(f"{m} imports {i}" for m in MODULES if part(m) == layer
                   for i in imports_of(m, top_level_only=False)
                   if part(i) not in ALLOWED[layer] | {layer, ""})
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    graph = {m: imports_of(m, top_level_only=True) for m in MODULES}
    # a package's __init__ runs before any of its submodules: an edge into a package from inside it is no cycle
    for m, targets in graph.items():
        graph[m] = {t for t in targets if not (is_package(t) and m.startswith(t + "."))}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def strongconnect(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    assert not cycles, cycles


def test_source_files_stay_readable():
    """No source file past 500 lines: one concern per file (see docs/architecture.md)."""
    long = {str(p.relative_to(SRC)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 500}
    assert not long, long
