"""Installed library versions against the ranges our patches of their internals were tested on.

Where the platform reaches into a library's private parts (Faust, aiokafka and mode in
`streams/faust_compat/`, uvicorn in `api/uvicorn_compat.py`), a new release may move them
without a word: a patch that silently stops applying loses events or throughput, never an
import error. So each of those modules declares the versions it was read and tested against,
`require` refuses to start outside them, and `pyproject.toml` bounds the same packages with
the same ranges (tests/test_tested_versions.py keeps the two equal).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import version as installed_version

from packaging.specifiers import SpecifierSet


class UntestedVersion(RuntimeError):
    """A library is installed at a version its patches were not tested against."""

    def __init__(self, package: str, version: str, tested: str, patched_by: str) -> None:
        self.package = package
        self.version = version
        self.tested = tested
        super().__init__(
            f"{package} {version} is installed, but {patched_by} patches its internals and was "
            f"tested only with {package}{tested}: install a version in that range, or read the "
            f"patches against {version} and widen the range (and pyproject.toml's bound)"
        )


def require(
    tested: Mapping[str, str],
    patched_by: str,
    version: Callable[[str], str] | None = None,
) -> dict[str, str]:
    """The installed version of each package; raises `UntestedVersion` for the first one
    outside its range (`tested` maps a distribution name to a PEP 440 specifier)."""
    lookup = version or installed_version
    found = {}
    for package, spec in tested.items():
        running = lookup(package)
        if not SpecifierSet(spec).contains(running, prereleases=True):
            raise UntestedVersion(package, running, spec, patched_by)
        found[package] = running
    return found
