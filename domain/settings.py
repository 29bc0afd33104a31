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

#: Largest image the rendering engine decodes (domain/rendering/decode.py's MAX_INPUT_BYTES):
#: MAX_UPLOAD_BYTES may lower the upload limit, never raise it past what renders.
MAX_IMAGE_BYTES = 25 * 1024 * 1024


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
    # How long a Redis command queues for a free pooled connection before it fails as "pool
    # busy" (sinks/redis/client.py): a busy pool is a queue with a deadline, not an outage.
    redis_pool_timeout_s: float = Field(2.0, gt=0, le=60)

    # Store URLs.
    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    kafka_delivery_timeout_ms: int = Field(5000, ge=100)
    # Replicas of every topic `memestream topics` creates; unset: the registry's (3), capped
    # at the brokers the cluster has (1 on the single-node stack). The replicated stack sets 3,
    # so a topic is never created under-replicated while one of its brokers is down.
    kafka_replication_factor: int | None = Field(None, ge=1, le=16)
    # Consumer groups are `<prefix>-<role>`; tests use their own prefix so they never
    # share partitions with a running `memestream up`.
    consumer_group_prefix: str = "memestream"
    kafka_auto_offset_reset: str = Field("earliest", pattern="^(earliest|latest)$")
    # How long a dead worker keeps its partitions before the group rebalances (Faust's
    # broker_session_timeout); chaos tests shorten it so a SIGKILLed worker is replaced fast.
    kafka_session_timeout_s: float = Field(60.0, ge=6, le=300)
    # The longest a worker's fetch may wait at the broker for data
    # (streams/faust_compat/fetch_wait.py).
    kafka_fetch_max_wait_ms: int = Field(100, ge=1, le=1500)
    # A worker's `/health/live` fails after this long out of its consumer group
    # (streams/liveness.py): longer than a rebalance or a start-up's first join.
    worker_liveness_grace_s: float = Field(120.0, ge=5, le=3600)
    database_url: str = "postgresql://memestream:memestream@127.0.0.1:15432/memestream"
    database_pool_size: int = Field(10, ge=1, le=500)
    # `memestream/stack/postgres_ha.py`: the pg_auto_failover monitor's port; the primary and
    # the standby listen on the next two (clients use their multi-host URL).
    postgres_ha_port: int = Field(15440, ge=1024, le=65533)
    # The replicated stack's (`--ha`, memestream/stack/ha.py) block of ports starts here (its
    # services at fixed offsets up to +59); a private run (memestream/testing/failover.py)
    # picks a free one.
    ha_base_port: int = Field(29000, ge=1024, le=65400)
    # `memestream backup` (memestream/stack/backup.py): pgBackRest's repository is
    # BACKUP_REPO_PATH in S3_BUCKET, reached at BACKUP_S3_ENDPOINT_URL (default: S3_ENDPOINT_URL's
    # host and port; pgBackRest always uses TLS there) trusting BACKUP_S3_CA_FILE if set; it
    # keeps BACKUP_RETENTION_FULL full backups (and the WAL they need).
    backup_stanza: str = Field("memestream", pattern=r"^[A-Za-z0-9_-]+$")
    backup_s3_endpoint_url: str | None = None
    backup_s3_ca_file: Path | None = None
    backup_repo_path: str = Field("/pgbackrest", pattern=r"^/[A-Za-z0-9_./-]*$")
    backup_retention_full: int = Field(2, ge=1, le=100)
    # How long the API keeps a key's owner (api/api_key_cache.py) before asking PostgreSQL
    # again: a revocation made elsewhere (another replica, the database) waits at most this.
    # 0 asks on every request.
    api_key_cache_ttl_s: float = Field(5.0, ge=0, le=300)
    api_key_cache_size: int = Field(10_000, ge=1, le=1_000_000)
    # The outbox relay (api/outbox.py): rows per claimed batch; how often it looks without a
    # NOTIFY (a missed notification, a listener reconnecting).
    outbox_batch_size: int = Field(500, ge=1, le=10_000)
    outbox_poll_s: float = Field(1.0, gt=0, le=60)
    redis_url: str = "redis://127.0.0.1:16379/0"
    # Sentinel mode (sinks/redis/client.py): "host:port,host:port,..." of the Sentinels, which
    # name the current master of REDIS_SENTINEL_MASTER; REDIS_URL then gives only the password
    # and database. Empty: REDIS_URL's server directly.
    redis_sentinels: str = ""
    redis_sentinel_master: str = Field("memestream", pattern=r"^[A-Za-z0-9._-]+$")
    clickhouse_url: str = "chdb://.stack/data/chdb"
    nats_url: str = "nats://127.0.0.1:14222"
    # The schema registry's Confluent-compatible API (Apicurio: `/apis/ccompat/v7`). Producers
    # write the Confluent wire format (`00` + 4-byte schema id) with ids from it; empty, or
    # AVRO_WIRE_FORMAT=single-object, writes Avro single-object encoding (`C3 01` + fingerprint)
    # and needs no registry. Consumers read both framings either way.
    schema_registry_url: str | None = "http://127.0.0.1:18081/apis/ccompat/v7"
    avro_wire_format: str = Field("confluent", pattern="^(confluent|single-object)$")
    # Every registry call's time limit (confluent-kafka's client has none by default).
    schema_registry_timeout_s: float = Field(2.0, gt=0, le=60)
    # Compatibility of every `<topic>-value` subject: the newest schema reads every older one.
    schema_compatibility: str = Field(
        "BACKWARD_TRANSITIVE", pattern="^(BACKWARD|BACKWARD_TRANSITIVE|FULL|FULL_TRANSITIVE)$"
    )

    storage_backend: StorageBackend = StorageBackend.S3
    s3_endpoint_url: str = "http://127.0.0.1:19000"
    s3_access_key: str = "memestream"
    s3_secret_key: str = "memestream-secret"
    s3_bucket: str = "memes"
    s3_region: str = "us-east-1"
    # The CA (or self-signed certificate) S3 clients trust for an HTTPS S3_ENDPOINT_URL (the
    # replicated stack's MinIO, memestream/stack/minio_tls.py); unset: the system's CAs.
    s3_ca_file: Path | None = None
    storage_path: Path = Path(".stack/data/objects")
    # Lifecycle (sinks/storage/lifecycle.py): rendered images older than S3_COLD_AFTER_DAYS move to
    # S3_COLD_TIER (a storage class or MinIO remote tier) when it is set.
    s3_cold_tier: str | None = None
    s3_cold_after_days: int = Field(90, ge=1)

    # Processes.
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    worker_web_port: int = Field(6066, ge=1, le=65535)
    worker_id: str = "memestream"
    # production: the API and the workers refuse to start while a store credential is the
    # shipped default (domain/credentials.py); development only warns, once.
    memestream_env: str = Field("development", pattern="^(development|production)$")

    # The API's edge (api/server.py). FORWARDED_ALLOW_IPS: the proxies (IPs or CIDRs, comma
    # separated, `*` for any) whose X-Forwarded-For / -Proto uvicorn believes; empty trusts no
    # proxy, so the client IP (rate limits, logs) is the socket's peer. Slow clients: the
    # request line and headers must arrive within HTTP_HEADER_TIMEOUT_S of the connection (or
    # of the request's first byte on a kept-alive one), a body within HTTP_BODY_TIMEOUT_S of
    # the headers plus one second per HTTP_BODY_MIN_RATE bytes received; else 408 and close.
    forwarded_allow_ips: str = ""
    http_header_timeout_s: float = Field(10.0, gt=0)
    http_body_timeout_s: float = Field(30.0, gt=0)
    http_body_min_rate: int = Field(16384, ge=1)

    # Live feed (api/feed): how `meme.feed` reaches API replicas (each reads Kafka itself, or
    # one bridge per partition publishes to a NATS JetStream stream every replica follows) and
    # what each replica keeps so a reconnecting client resumes without missing events.
    feed_transport: str = Field("kafka", pattern="^(kafka|nats)$")
    feed_topic: str = "meme.feed"
    feed_nats_stream: str = "MEMESTREAM_FEED"
    feed_nats_subject: str = "memestream.feed"
    feed_history_size: int = Field(5000, ge=1, le=1_000_000)
    # Frames a client may lag (x 1 KiB of unsent bytes once written directly) before it is
    # dropped as a slow consumer.
    feed_client_queue: int = Field(256, ge=1, le=100_000)
    feed_heartbeat_s: float = Field(15.0, gt=0)
    feed_retry_ms: int = Field(2000, ge=0)
    feed_presence_ttl_s: int = Field(30, ge=2)
    feed_draft_ttl_s: int = Field(7 * 24 * 3600, ge=60)
    # Where the npm packages the editor loads (Yjs, api/routes/vendor.py) are installed.
    web_vendor_dir: Path = Path("node_modules")

    # Limits. MAX_BODY_BYTES bounds JSON bodies; image uploads (template upload, image
    # suggestion) get MAX_UPLOAD_BYTES instead, so 10 MB+ images are accepted.
    max_body_bytes: int = Field(1_048_576, ge=1024)
    max_upload_bytes: int = Field(MAX_IMAGE_BYTES, ge=1024, le=MAX_IMAGE_BYTES)
    # Animation frame cap of uploads and renders alike: an upload accepted is an upload that
    # renders (the engine refuses more than 1000).
    max_frames: int = Field(120, ge=1, le=1000)
    max_text_length: int = Field(500, ge=1)
    # Text boxes per template (uploads and the catalogue): 20, what one generate request can
    # fill (at most 20 texts and 20 placements), is also the ceiling.
    max_template_boxes: int = Field(20, ge=1, le=20)
    # Nesting of a JSON body or a JSON form field (upload `boxes`): the deepest legal request
    # is 4 levels; 32 leaves room and stops recursion long before Python's limit.
    max_json_depth: int = Field(32, ge=4, le=256)
    generation_timeout_s: float = Field(10.0, gt=0)

    # Data layer and API (issue 4): Redis cache, rate limits (GCRA per user or IP, fail open
    # when Redis is down), sessions, idempotency, views, analytics reads.
    meme_cache_ttl_s: int = Field(300, ge=1)
    # Per-process copy in front of Redis: other processes' deletes show within this time.
    meme_local_cache_ttl_s: float = Field(2.0, ge=0)
    # A pending meme is cached this long (sinks/redis/cache.py): a poll sees its render this
    # late at worst; 0 sends every read of a pending meme to PostgreSQL.
    meme_pending_cache_ttl_s: float = Field(1.0, ge=0, le=30)
    rate_limit_enabled: bool = True
    rate_limit_reads_per_minute: int = Field(1200, ge=1)
    rate_limit_writes_per_minute: int = Field(120, ge=1)
    session_ttl_s: int = Field(7 * 24 * 3600, ge=60)
    idempotency_ttl_s: int = Field(24 * 3600, ge=60)
    recent_memes_max: int = Field(1000, ge=1)
    view_queue_size: int = Field(10_000, ge=1)
    max_wait_s: float = Field(30.0, gt=0)
    # Where the API reads analytics when CLICKHOUSE_URL is chdb:// (the analytics worker owns
    # the chDB folder); unset means the analytics worker's web port on 127.0.0.1.
    analytics_worker_url: str | None = None
    analytics_batch_size: int = Field(5000, ge=1)
    analytics_flush_interval_s: float = Field(1.0, gt=0)
    # Template uploads are spooled here and removed after use; a cleanup task empties leftovers.
    upload_tmp_dir: Path = Path(".stack/tmp/uploads")

    # Trending (streams/trending): sets `trending:{window}` hold the top N; events later than
    # the grace period behind their partition's newest event time are not counted.
    trending_top_n: int = Field(100, ge=1, le=100_000)
    trending_grace_s: float = Field(120.0, ge=0)
    trending_view_weight: float = Field(0.1, ge=0)
    trending_batch_max: int = Field(5000, ge=1)
    trending_batch_within_s: float = Field(0.05, gt=0)
    trending_tick_s: float = Field(5.0, gt=0)

    # AI (domain/ai): captions, template suggestion, moderation, sentiment. Models come from the
    # installed model wheels and `memestream ai prepare`'s cache (under cache_dir); never a hub.
    # AI_MODEL_SIZE picks the largest model tried per task (domain/ai/registry.py says what each
    # size means); AI_MODEL_DIRS adds local folders: {"caption:medium": "/models/smollm2-360m"}.
    ai_enabled: bool = True
    ai_model_dirs: dict[str, Path] = Field(default_factory=dict)
    ai_memory_budget_mb: int = Field(2048, ge=16)
    ai_max_batch: int = Field(16, ge=1, le=256)
    ai_max_wait_ms: float = Field(5.0, ge=0, le=1000)
    ai_timeout_s: float = Field(2.0, gt=0)
    ai_caption_timeout_s: float = Field(20.0, gt=0)
    ai_caption_tokens_per_box: int = Field(16, ge=4, le=128)
    ai_torch_threads: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=256)
    # Moderation: at or above `reject` the meme is `rejected` (with the reason), at or above
    # `flag` it is `flagged` for review, below it passes. Image scores are Open-NSFW's P(nsfw).
    moderation_image_reject: float = Field(0.8, ge=0, le=1)
    moderation_image_flag: float = Field(0.3, ge=0, le=1)
    moderation_text_reject: float = Field(0.9, ge=0, le=1)
    moderation_text_flag: float = Field(0.6, ge=0, le=1)
    # false: a meme made from a catalogue template reuses its template's image score (its only
    # user-made pixels are the texts, which are moderated); true: every rendered image is scored.
    moderation_image_every_meme: bool = False
    # Inference leaves the API (streams/inference.py): the API asks the `inference` workers over
    # NATS request-reply on `<INFERENCE_SUBJECT>.<task>` (one queue group shares the work) and
    # waits at most the deadline below, then answers with the heuristic. A worker drops a request
    # whose deadline passed before running it; it runs at most INFERENCE_CONCURRENCY at once.
    inference_subject: str = Field(
        "memestream.inference", pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
    )
    inference_deadline_s: float = Field(2.0, gt=0, le=120)
    inference_caption_deadline_s: float = Field(10.0, gt=0, le=120)
    inference_concurrency: int = Field(64, ge=1, le=10_000)
    # Cost-aware limits of the expensive routes, per user (or IP when anonymous): a budget of
    # units per minute; a caption costs RATE_LIMIT_CAPTION_UNITS_PER_BOX per box of its template
    # (at least 1), a text or image suggestion and a template upload a fixed number of units.
    rate_limit_ai_units_per_minute: int = Field(120, ge=1)
    rate_limit_caption_units_per_box: int = Field(1, ge=1)
    rate_limit_suggest_units: int = Field(2, ge=1)
    rate_limit_upload_units: int = Field(10, ge=1)

    # Local stack and tests.
    stack_dir: Path = Path(".stack")
    # Faust's own directory per worker app (table metadata, RocksDB when chosen); its default
    # is the working directory, which left one folder per test run in the checkout.
    worker_data_dir: Path = Path(".stack/data/workers")
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

    @property
    def uses_schema_registry(self) -> bool:
        """True when producers write the Confluent wire format (a registry URL is set)."""
        return bool(self.schema_registry_url) and self.avro_wire_format == "confluent"

    def resolved(self, path: Path) -> Path:
        """Relative paths are taken from the project root, not the working directory."""
        return path if path.is_absolute() else PROJECT_ROOT / path

    @property
    def stack_path(self) -> Path:
        return self.resolved(self.stack_dir)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
