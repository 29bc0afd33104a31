"""Security headers (api/security_headers.py) on the real app: pages, API, static and the feed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from domain.settings import Settings

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def client(stack_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(stack_settings)) as client:
        yield client


@pytest.mark.parametrize("path", ["/", "/feed", "/templates", "/analytics"])
def test_pages_carry_a_csp_that_forbids_framing(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"


@pytest.mark.parametrize(
    "path",
    ["/health", "/static/js/editor.js", "/sw.js", "/api/meme/nope", "/vendor/uplot/uPlot.min.css"],
)
def test_every_response_is_nosniff_and_only_pages_get_the_csp(
    client: TestClient, path: str
) -> None:
    response = client.get(path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "content-security-policy" not in response.headers


def test_the_pages_load_nothing_inline() -> None:
    """What the CSP forbids, the pages do not do: no inline script, style or handler; the one
    inline script is the editor's import map, exactly the text whose hash the CSP allows."""
    from api.routes.vendor import IMPORT_MAP, IMPORT_MAP_HASH
    from api.routes.web import STATIC_DIR
    from api.security_headers import CSP

    assert f"'{IMPORT_MAP_HASH}'".encode() in CSP
    for page in STATIC_DIR.glob("*.html"):
        html = page.read_text()
        assert "<style" not in html and " style=" not in html and " onclick=" not in html
        for tag in html.split("<script")[1:]:
            head, body = tag.split(">", 1)
            if head == ' type="importmap"':
                assert body.split("</script>")[0] == IMPORT_MAP, f"stale import map in {page.name}"
                continue
            assert " src=" in head, f"inline script in {page.name}"
