"""The editor's drawing resources (api/routes/rendering.py): the renderer's own font files,
only those, their metrics, and the filter constants filters.py reads."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.problems import install
from api.routes import rendering
from domain.rendering.filters import PARAMS
from domain.rendering.fonts import family_path


def client() -> TestClient:
    app = FastAPI()
    install(app)
    app.include_router(rendering.router)
    return TestClient(app)


def test_the_editor_gets_the_renderers_font_file_and_metrics() -> None:
    with client() as c:
        metrics = c.get("/api/fonts/impact")
        assert metrics.status_code == 200
        body = metrics.json()
        font = c.get(body["url"])
    assert font.status_code == 200
    assert font.headers["content-type"] == "font/ttf"
    with open(family_path("impact"), "rb") as f:
        assert font.content == f.read()
    assert body["advances"][str(ord("A"))] > 0


def test_no_other_file_is_served() -> None:
    with client() as c:
        for name in ("DejaVuSans.ttf", "..%2F..%2Fetc%2Fpasswd", "passwd"):
            assert c.get(f"/fonts/{name}").status_code == 404
        assert c.get("/api/fonts/wingdings").status_code == 404


def test_the_filter_constants_are_the_ones_the_renderer_reads() -> None:
    with client() as c:
        assert c.get("/api/render/filters").json() == PARAMS
