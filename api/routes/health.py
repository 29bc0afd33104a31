"""Liveness and readiness: `/health` answers while the process runs; `/ready` asks the stores."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response

from api.dependencies import ServicesDep
from api.models import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
async def health() -> Health:
    return Health(status="ok", checks={"process": "ok"})


@router.get("/ready", response_model=Health, responses={503: {"model": Health}})
async def ready(services: ServicesDep, response: Response) -> Health:
    checks: dict[str, str] = {}

    async def postgres() -> None:
        async with services.pool.connection(timeout=2.0) as conn:
            await conn.execute("SELECT 1")

    async def storage() -> None:
        await asyncio.wait_for(asyncio.to_thread(services.storage.ensure_bucket), 2.0)

    for name, probe in (("postgres", postgres), ("storage", storage)):
        try:
            await probe()
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"down: {type(exc).__name__}"
    degraded = any(v != "ok" for v in checks.values())
    if degraded:
        response.status_code = 503
    return Health(status="degraded" if degraded else "ok", checks=checks)
