"""`/vendor/<package>/<file>` (api/routes/vendor.py): the listed npm files and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import problems
from api.routes import vendor


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()
    problems.install(app)
    app.include_router(vendor.router)
    return TestClient(app)


@pytest.mark.parametrize(
    ("name", "media_type"),
    [("uPlot.iife.min.js", "text/javascript"), ("uPlot.min.css", "text/css")],
)
def test_the_listed_files_are_served_from_node_modules(
    client: TestClient, name: str, media_type: str
) -> None:
    installed = vendor.NODE_MODULES / "uplot" / vendor.FILES["uplot"][name]
    assert installed.is_file(), f"{installed} is missing: run scripts/bootstrap.sh (npm install)"
    response = client.get(f"/vendor/uplot/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    assert response.content == installed.read_bytes()
    assert response.headers["cache-control"] == "max-age=86400" and response.headers["etag"]


@pytest.mark.parametrize(
    "path",
    [
        "/vendor/uplot/package.json",  # installed, but not listed
        "/vendor/uplot/..%2F..%2Fpyproject.toml",
        "/vendor/axe-core/axe.min.js",  # a test tool, never served
        "/vendor/uplot/uPlot.esm.js",  # installed, but not listed
        "/vendor/nope/uPlot.min.css",
    ],
)
def test_nothing_else_is(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_a_package_not_installed_is_a_404(tmp_path: Path) -> None:
    with pytest.raises(problems.Problem) as raised:
        vendor.vendor_file("uplot", "uPlot.min.css", root=tmp_path)
    assert raised.value.status == 404
