"""Liveness and readiness: `/health` answers while the process runs; `/ready` asks the stores.

The store probes also run on their own, every `PROBE_EVERY_S` while the app is up, and set
`memestream_store_up{store}` (alert MemestreamStoreDown): nothing calls `/ready` on a schedule
(the pods' readiness is `/health`, see deploy/generate.py), so the gauge cannot wait for it.
They start from this router's lifespan, which FastAPI runs inside the app's own (so the
services exist) once `include_router` merged it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from confluent_kafka.admin import AdminClient
from fastapi import APIRouter, FastAPI, Response

from api.dependencies import Services, ServicesDep
from api.models import Health
from domain.settings import Settings
from producers.kafka_security import librdkafka_security
from sinks import probes
from sinks.probes import Probe, store_up

PROBE_EVERY_S = 15.0  # Prometheus' scrape interval: each scrape sees a fresh answer


def probe_admin(settings: Settings) -> AdminClient:
    """The Kafka probe's client, logging through `memestream.kafka` (JSON, like the producer's)
    instead of librdkafka's raw stderr lines, which a broker outage repeats every second."""
    return AdminClient(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "logger": logging.getLogger("memestream.kafka"),
            **librdkafka_security(settings),
        }
    )


def store_probes(services: Services) -> dict[str, Probe]:
    """Every store this API process talks to, by the `store` label it is reported under."""
    settings = services.settings
    found: dict[str, Probe] = {
        "postgres": probes.postgres(services.pool),
        "kafka": probes.kafka(probe_admin(settings)),
        "storage": probes.storage(services.storage),
    }
    if services.data is not None:
        found["redis"] = probes.redis(services.data.redis)
    if settings.clickhouse_url.startswith(("http://", "https://")):
        found["clickhouse"] = probes.clickhouse(settings.clickhouse_url)
    if settings.feed_transport == "nats":
        found["nats"] = probes.nats(settings.nats_url)
    return found


async def probe_forever(found: dict[str, Probe], every_s: float = PROBE_EVERY_S) -> None:
    while True:
        await asyncio.gather(*(store_up(name, probe) for name, probe in found.items()))
        await asyncio.sleep(every_s)


@contextlib.asynccontextmanager
async def probing(app: FastAPI) -> AsyncIterator[None]:
    """Probes the stores in the background for as long as the app runs."""
    services: Services | None = getattr(app.state, "services", None)
    if services is None:  # an app without the platform's lifespan has no stores to probe
        yield
        return
    task = asyncio.create_task(probe_forever(store_probes(services)), name="store-probes")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


router = APIRouter(tags=["health"], lifespan=probing)


@router.get("/health", response_model=Health)
async def health() -> Health:
    return Health(status="ok", checks={"process": "ok"})


@router.get("/ready", response_model=Health, responses={503: {"model": Health}})
async def ready(services: ServicesDep, response: Response) -> Health:
    checks = {
        "postgres": await store_up("postgres", probes.postgres(services.pool)),
        "storage": await store_up("storage", probes.storage(services.storage)),
    }
    degraded = any(v != "ok" for v in checks.values())
    if degraded:
        response.status_code = 503
    return Health(status="degraded" if degraded else "ok", checks=checks)
