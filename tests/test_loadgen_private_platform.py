"""The private platform's settings: its own folder and free ports for every listener."""

from __future__ import annotations

from pathlib import Path

import pytest

from domain.settings import Settings
from loadgen.private_platform import environment
from producers.roles import WORKER_ROLES

#: Setting -> ports its service listens on from the one named (Kafka's controller, MinIO's
#: console, the registry's management port, one web port per worker role).
WIDTHS = {
    "KAFKA_BOOTSTRAP_SERVERS": 2,
    "DATABASE_URL": 1,
    "REDIS_URL": 1,
    "S3_ENDPOINT_URL": 2,
    "NATS_URL": 1,
    "SCHEMA_REGISTRY_URL": 2,
    "API_PORT": 1,
    "WORKER_WEB_PORT": len(WORKER_ROLES),
}


def _first_port(value: str) -> int:
    if value.isdigit():
        return int(value)
    return int(value.split("://")[-1].split("@")[-1].split("/")[0].rsplit(":", 1)[1])


def test_every_listener_gets_its_own_free_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = environment(tmp_path, AI_ENABLED="false")
    taken: set[int] = set()
    for key, width in WIDTHS.items():
        first = _first_port(env[key])
        block = set(range(first, first + width))
        assert not block & taken, f"{key} overlaps another listener"
        assert all(20_000 <= p < 32_000 for p in block), "below the ephemeral range"
        taken |= block
    assert env["STACK_DIR"] == str(tmp_path / "stack") and env["AI_ENABLED"] == "false"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.api_port == _first_port(env["API_PORT"])
    assert settings.database_url == env["DATABASE_URL"]
    assert settings.stack_path == tmp_path / "stack"
    assert settings.worker_web_port == _first_port(env["WORKER_WEB_PORT"])
