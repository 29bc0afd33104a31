"""The store URLs a test or benchmark hands to the processes it starts."""

from __future__ import annotations

from domain.settings import Settings

# Every store the code reaches by a URL setting; `environment()` exports exactly these, and
# tests/services.py's `containers()` points each of them at its container
# (tests/test_services.py checks both).
STORE_URL_SETTINGS: tuple[str, ...] = (
    "kafka_bootstrap_servers",
    "database_url",
    "redis_url",
    "s3_endpoint_url",
    "clickhouse_url",
    "nats_url",
    "schema_registry_url",
)


def environment(settings: Settings) -> dict[str, str]:
    """The settings' store URLs as environment variables, for the processes tests start."""
    return {name.upper(): str(getattr(settings, name)) for name in STORE_URL_SETTINGS}
