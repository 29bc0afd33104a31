"""Production refuses default store credentials (domain/credentials.py); development warns."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from domain import credentials
from domain.credentials import DefaultCredentials, default_credentials, enforce
from domain.settings import PROJECT_ROOT, Settings

REAL = {
    "database_url": "postgresql://memestream:s3cr3t-db@db:5432/memestream",
    "redis_url": "redis://:s3cr3t-redis@redis:6379/0",
    "s3_secret_key": "s3cr3t-s3",
    "clickhouse_url": "http://memestream:s3cr3t-ch@clickhouse:8123/memestream",
}


def test_the_shipped_defaults_are_all_named() -> None:
    found = default_credentials(Settings(clickhouse_url="http://memestream:memestream@ch:8123/x"))
    assert found == ["DATABASE_URL", "S3_SECRET_KEY", "REDIS_URL", "CLICKHOUSE_URL"]


def test_placeholders_and_missing_passwords_count_as_defaults() -> None:
    settings = Settings(
        **REAL
        | {"database_url": "postgresql://memestream:CHANGE-ME@db/x", "redis_url": "redis://r:6379"}
    )
    assert default_credentials(settings) == ["DATABASE_URL", "REDIS_URL"]
    sasl = Settings(**REAL, kafka_sasl_username="api", kafka_sasl_password="CHANGE-ME")
    assert default_credentials(sasl) == ["KAFKA_SASL_PASSWORD"]


def test_production_refuses_and_names_the_settings() -> None:
    with pytest.raises(DefaultCredentials, match="DATABASE_URL, S3_SECRET_KEY, REDIS_URL"):
        enforce(Settings(memestream_env="production"), "the API")
    enforce(Settings(memestream_env="production", **REAL), "the API")  # real ones: starts


def test_development_warns_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(credentials, "_warned", False)
    with caplog.at_level(logging.WARNING, logger="domain.credentials"):
        enforce(Settings(), "the API")
        enforce(Settings(), "the API")
    warnings = [r for r in caplog.records if "default store credentials" in r.message]
    assert len(warnings) == 1 and "DATABASE_URL" in warnings[0].message


@pytest.mark.parametrize(
    "argv",
    [
        ["-m", "uvicorn", "api.app:app", "--port", "1"],
        ["-m", "streams", "worker", "--role", "trending"],
    ],
    ids=["api", "worker"],
)
def test_the_processes_refuse_to_start(argv: list[str]) -> None:
    """The real entry points, before they touch any store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "S3_", "REDIS_"))}
    env["MEMESTREAM_ENV"] = "production"
    done = subprocess.run(
        [sys.executable, *argv], cwd=PROJECT_ROOT, env=env, capture_output=True, timeout=120
    )
    assert done.returncode != 0
    assert b"refuses to start" in done.stderr and b"DATABASE_URL" in done.stderr
