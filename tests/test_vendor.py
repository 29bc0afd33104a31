"""The /vendor/ route serves the editor's npm modules (Yjs) through their packages' exports,
and nothing else from node_modules."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.routes.vendor import resolve
from domain.settings import get_settings

ROOT = get_settings().resolved(get_settings().web_vendor_dir)
pytestmark = pytest.mark.skipif(not (ROOT / "yjs").is_dir(), reason="npm packages not installed")


def test_resolves_exports_files_and_refuses_the_rest() -> None:
    assert resolve(ROOT, "yjs", "") == (ROOT / "yjs/dist/yjs.mjs").resolve()
    assert resolve(ROOT, "lib0", "observable") == (ROOT / "lib0/observable.js").resolve()
    assert resolve(ROOT, "lib0", "map.js") == (ROOT / "lib0/map.js").resolve()
    assert resolve(ROOT, "isomorphic.js", "") == (ROOT / "isomorphic.js/browser.mjs").resolve()
    assert resolve(ROOT, "lib0", "../yjs/package.json") is None
    assert resolve(ROOT, "lib0", "package.json") is None
    assert resolve(ROOT, "axe-core", "") is None
    assert resolve(Path("/nonexistent"), "yjs", "") is None


def test_the_route_serves_modules_as_javascript() -> None:
    from api.app import app

    with TestClient(app) as client:
        response = client.get("/vendor/y-protocols/awareness.js")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/javascript")
        assert b"export class Awareness" in response.content
        assert client.get("/vendor/lib0/../../package.json").status_code == 404
        assert client.get("/vendor/axe-core/axe.js").status_code == 404
