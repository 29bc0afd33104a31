"""`GET /api/_bare`: the cheapest endpoint of the app, the baseline of `benchmarks/api.py`.

Same app, middleware and server as every route, no I/O: the benchmark compares real endpoints'
throughput with this one measured in the same run. Hidden from the OpenAPI document.
"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)


@router.get("/api/_bare")
async def bare() -> dict[str, bool]:
    return {"ok": True}
