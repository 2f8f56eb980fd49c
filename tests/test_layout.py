"""The package's shape: no import cycles, no module that is asking to be split.

Why a test: a cycle held together by a lazy import (the version once lived in the package root,
imported by telemetry modules the root imports) breaks the day someone tidies an import to the
top of a file. Every ``import`` counts here: lazy ones, and ``TYPE_CHECKING`` ones too (a module
that needs another's types to be read is coupled to it as surely as one that runs its code).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "aigw_asgi"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ImportFrom):
                base = package
                for _ in range(child.level - 1):
                    base = base.rpartition(".")[0]
                target = (f"{base}.{child.module}" if child.module else base) if child.level else child.module or ""
                for alias in child.names:
                    candidate = f"{target}.{alias.name}"
                    found.add(candidate if candidate in modules else target)
            elif isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in found if m in modules and m != name}


def _graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(p) for p in paths}
    return {_module_name(p): _imports(p, modules) for p in paths}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in graph:
        if node not in index:
            connect(node)
    return out


def test_no_module_imports_a_module_that_imports_it() -> None:
    graph = _graph()
    # A package __init__ re-exporting its submodules is not a cycle worth breaking: drop the
    # edges from a submodule to its own package.
    for name, deps in graph.items():
        graph[name] = {d for d in deps if not name.startswith(d + ".")}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_types_is_a_leaf() -> None:
    assert _graph()["aigw_asgi.types"] == set()


def test_the_package_root_exports_lazily() -> None:
    """``from aigw_asgi import Gateway`` works, and importing one corner of the package (the SQLite
    writer's child process, ``aigw --version``) does not load the gateway with it."""
    import subprocess
    import sys

    import aigw_asgi
    import aigw_asgi.telemetry

    assert sorted(aigw_asgi.__all__) == sorted([*aigw_asgi._EXPORTS, "__version__"])
    for name in aigw_asgi.__all__:
        assert getattr(aigw_asgi, name) is not None
    for name in aigw_asgi.telemetry.__all__:
        assert getattr(aigw_asgi.telemetry, name).__name__ == name
    probe = (
        "import sys, aigw_asgi.telemetry.stores.sqlite_process, aigw_asgi.redact; "
        "heavy = ('aigw_asgi.gateway', 'aigw_asgi.router', 'aiohttp', 'starlette'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


MAX_LINES = 450  # "a file past ~400 lines is asking to be split" (the standards), the "~" as slack


def test_no_module_is_asking_to_be_split() -> None:
    """Every module of the package stays near 400 lines; past that it holds more than one concern
    (the ninth performance pass split config, http1, otel, query and context when they had grown)."""
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
