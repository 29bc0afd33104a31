"""ARCHITECTURE.md's rules, checked on the source: the import direction between the packages,
and library internals reached only through their compat modules."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("domain", "producers", "sinks", "api", "streams", "loadgen", "memestream")
#: Which project packages each package may import (ARCHITECTURE.md, "Layers").
ALLOWED = {
    "domain": set(),
    "producers": {"domain"},
    "sinks": {"domain"},
    "api": {"domain", "producers", "sinks"},
    "streams": {"domain", "producers", "sinks"},
    "loadgen": {"domain", "producers", "sinks"},
    "memestream": {"domain", "producers", "sinks", "api", "streams", "loadgen"},
    "benchmarks": {*LAYERS},
}
#: Modules whose import means reaching a library's internals, and the one place allowed to.
INTERNALS = {
    "faust.transport": "streams/faust_compat/",
    "mode.utils.queues": "streams/faust_compat/",
    "aiokafka.consumer": "streams/faust_compat/",
    "uvicorn.protocols": "api/uvicorn_compat.py",
    "uvicorn.server": "api/uvicorn_compat.py",
}


@functools.cache
def imports(package: str) -> tuple[tuple[str, int, str], ...]:
    """(file, line, imported module) for every absolute import, lazy ones included."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [(str(path.relative_to(ROOT)), node.lineno, name) for name in names]
    return tuple(found)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_go_one_way(package: str) -> None:
    wrong = [
        f"{file}:{line} imports {name}"
        for file, line, name in imports(package)
        if (top := name.split(".")[0]) in {*LAYERS, "benchmarks", "tests"}
        and top != package
        and top not in ALLOWED[package]
    ]
    assert not wrong, f"{package} may import only {sorted(ALLOWED[package])}: {wrong}"


def test_the_scan_sees_imports() -> None:
    found = {name.split(".")[0] for _, _, name in imports("api")}
    assert {"domain", "producers", "sinks", "fastapi"} <= found


@pytest.mark.parametrize("package", LAYERS)
def test_library_internals_are_reached_only_through_their_compat_module(package: str) -> None:
    wrong = [
        f"{file}:{line} imports {name} (only {home} may)"
        for file, line, name in imports(package)
        for prefix, home in INTERNALS.items()
        if (name == prefix or name.startswith(prefix + ".")) and not file.startswith(home)
    ]
    assert not wrong
