"""`require` and the promise that pyproject.toml bounds every patched library with the range
its patches were tested on (streams/faust_compat, api/uvicorn_compat.py)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from api import uvicorn_compat
from domain.tested_versions import UntestedVersion, require
from streams import faust_compat

ROOT = Path(__file__).resolve().parents[1]


def declared() -> dict[str, SpecifierSet]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {
        (req := Requirement(line)).name.lower(): req.specifier for line in project["dependencies"]
    }


@pytest.mark.parametrize(
    "tested", [faust_compat.TESTED, uvicorn_compat.TESTED], ids=["faust", "uvicorn"]
)
def test_pyproject_bounds_each_patched_library_with_its_tested_range(
    tested: dict[str, str],
) -> None:
    bounds = declared()
    for package, spec in tested.items():
        assert bounds.get(package) == SpecifierSet(spec), package
        assert any(s.operator == "<" for s in SpecifierSet(spec)), f"{package}: no upper bound"


def test_versions_inside_the_ranges_are_returned() -> None:
    versions = {"a": "0.15.3", "b": "0.7.1rc1"}
    found = require({"a": ">=0.11,<0.16", "b": ">=0.6,<0.8"}, "x", versions.__getitem__)
    assert found == versions


@pytest.mark.parametrize("running", ["0.16.0", "0.10.9", "1.0"])
def test_a_version_outside_fails_naming_package_version_range_and_patcher(running: str) -> None:
    with pytest.raises(UntestedVersion) as raised:
        require(
            {"ok": ">=1", "faust-streaming": ">=0.11,<0.16"},
            "streams.x",
            {"ok": "2.0", "faust-streaming": running}.__getitem__,
        )
    error = raised.value
    assert (error.package, error.version, error.tested) == (
        "faust-streaming",
        running,
        ">=0.11,<0.16",
    )
    for part in ("faust-streaming", running, ">=0.11,<0.16", "streams.x"):
        assert part in str(error)
