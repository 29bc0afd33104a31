"""api/http_metrics.py: the route template as label, the request id bound and echoed."""

from __future__ import annotations

from api.http_metrics import HttpMetricsMiddleware
from domain import metrics


def test_asgi_middleware_records_route_template_and_request_id() -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from domain.logs import current_request_id

    app = FastAPI()
    seen: dict[str, str | None] = {}

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        seen["rid"] = current_request_id()
        return {"id": thing_id}

    app.add_middleware(HttpMetricsMiddleware)
    labels = {"method": "GET", "route": "/things/{thing_id}", "status": "200"}
    before = metrics.HTTP_REQUESTS.labels(**labels)._value.get()
    with TestClient(app) as client:
        response = client.get("/things/abc", headers={"x-request-id": "req-123"})
        missing = client.get("/nowhere/at/all")
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-123"
    assert seen["rid"] == "req-123"
    assert missing.headers["x-request-id"]
    assert metrics.HTTP_REQUESTS.labels(**labels)._value.get() == before + 1
    unmatched = metrics.HTTP_REQUESTS.labels(method="GET", route="unmatched", status="404")
    assert unmatched._value.get() >= 1
