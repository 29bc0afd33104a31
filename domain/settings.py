"""Every setting Memestream reads, in one typed place.

Values come from the environment (or a `.env` file); names are the plan's
(`IMAGE_QUALITY`, `CACHE_SIZE_MB`, ...) plus one URL per store. Defaults point at
the local stack that `memestream up` starts on 127.0.0.1.
"""

from __future__ import annotations

import os
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ImageQuality(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    LOSSLESS = "lossless"


class ModelSize(StrEnum):
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"


class StorageBackend(StrEnum):
    S3 = "s3"
    FILESYSTEM = "filesystem"


class ServiceProvider(StrEnum):
    """Where tests get their services: the local stack or testcontainers."""

    LOCAL = "local"
    CONTAINERS = "containers"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # The plan's tuning knobs.
    image_quality: ImageQuality = ImageQuality.HIGH
    cache_size_mb: int = Field(256, ge=8, le=65536)
    worker_threads: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=256)
    ai_model_size: ModelSize = ModelSize.SMALL
    redis_pool_size: int = Field(64, ge=1, le=10000)

    # Store URLs.
    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    kafka_delivery_timeout_ms: int = Field(5000, ge=100)
    # Consumer groups are `<prefix>-<role>`; tests use their own prefix so they never
    # share partitions with a running `memestream up`.
    consumer_group_prefix: str = "memestream"
    kafka_auto_offset_reset: str = Field("earliest", pattern="^(earliest|latest)$")
    database_url: str = "postgresql://memestream:memestream@127.0.0.1:15432/memestream"
    database_pool_size: int = Field(10, ge=1, le=500)
    redis_url: str = "redis://127.0.0.1:16379/0"
    clickhouse_url: str = "chdb://.stack/data/chdb"
    nats_url: str = "nats://127.0.0.1:14222"
    schema_registry_url: str | None = None

    storage_backend: StorageBackend = StorageBackend.S3
    s3_endpoint_url: str = "http://127.0.0.1:19000"
    s3_access_key: str = "memestream"
    s3_secret_key: str = "memestream-secret"
    s3_bucket: str = "memes"
    s3_region: str = "us-east-1"
    storage_path: Path = Path(".stack/data/objects")

    # Processes.
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    worker_web_port: int = Field(6066, ge=1, le=65535)
    worker_id: str = "memestream"

    # Limits.
    max_body_bytes: int = Field(1_048_576, ge=1024)
    max_text_length: int = Field(500, ge=1)
    max_text_boxes: int = Field(10, ge=1)
    generation_timeout_s: float = Field(10.0, gt=0)

    # Local stack and tests.
    stack_dir: Path = Path(".stack")
    cache_dir: Path = Path.home() / ".cache" / "memestream"
    test_services: ServiceProvider = ServiceProvider.LOCAL

    # Kafka client security: PLAINTEXT on the local stack and compose; on Strimzi every
    # service is a SCRAM-SHA-512 KafkaUser with its own ACLs (deploy/strimzi/users.yaml).
    kafka_security_protocol: str = Field(
        "PLAINTEXT", pattern="^(PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL)$"
    )
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None

    # Observability (domain/logs.py, domain/tracing.py, domain/metrics.py). The OTEL_* names
    # are the OpenTelemetry standard ones, so the SDK and these settings agree.
    log_level: str = Field("INFO", pattern="(?i)^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")
    log_format: str = Field("json", pattern="^(json|text)$")
    otel_traces_exporter: str = Field("none", pattern="^(none|console|otlp)$")
    otel_exporter_otlp_endpoint: str | None = None
    otel_service_name: str = "memestream"
    # Read by prometheus-client itself at import; set it for multi-process servers.
    prometheus_multiproc_dir: Path | None = None

    def resolved(self, path: Path) -> Path:
        """Relative paths are taken from the project root, not the working directory."""
        return path if path.is_absolute() else PROJECT_ROOT / path

    @property
    def stack_path(self) -> Path:
        return self.resolved(self.stack_dir)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
