"""`/vendor/<package>/<path>` (api/routes/vendor.py): uPlot's listed files, the editor's ES modules
(Yjs) through their packages' exports, and nothing else from node_modules."""

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
    installed = vendor.vendor_root() / "uplot" / vendor.FILES["uplot"][name]
    assert installed.is_file(), f"{installed} is missing: run scripts/bootstrap.sh (npm install)"
    response = client.get(f"/vendor/uplot/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    assert response.content == installed.read_bytes()
    assert response.headers["cache-control"] == "public, max-age=86400" and response.headers["etag"]


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
        vendor.vendor_file("uplot", "uPlot.min.css", tmp_path)
    assert raised.value.status == 404


def test_resolves_exports_files_and_refuses_the_rest() -> None:
    root = vendor.vendor_root()
    assert (root / "yjs").is_dir(), f"{root / 'yjs'} is missing: run scripts/bootstrap.sh"
    assert vendor.resolve(root, "yjs", "") == (root / "yjs/dist/yjs.mjs").resolve()
    assert vendor.resolve(root, "lib0", "observable") == (root / "lib0/observable.js").resolve()
    assert vendor.resolve(root, "lib0", "map.js") == (root / "lib0/map.js").resolve()
    assert (
        vendor.resolve(root, "isomorphic.js", "") == (root / "isomorphic.js/browser.mjs").resolve()
    )
    assert vendor.resolve(root, "lib0", "../yjs/package.json") is None
    assert vendor.resolve(root, "lib0", "package.json") is None
    assert vendor.resolve(root, "axe-core", "") is None
    assert vendor.resolve(Path("/nonexistent"), "yjs", "") is None


def test_the_route_serves_modules_as_javascript(client: TestClient) -> None:
    response = client.get("/vendor/y-protocols/awareness.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert b"export class Awareness" in response.content
    assert client.get("/vendor/lib0/../../package.json").status_code == 404
    assert client.get("/vendor/axe-core/axe.js").status_code == 404
