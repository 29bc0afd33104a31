"""Where tests get their real services: the local stack, or testcontainers.

`TEST_SERVICES=local` (the default, and CI's: no Docker engine runs there) starts the
project's own stack on 127.0.0.1; `TEST_SERVICES=containers` starts the same services
as containers where a Docker engine exists. Either way the tests receive one
`Settings` whose URLs point at running services.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from domain.settings import ServiceProvider, Settings, get_settings


@contextmanager
def local_stack(settings: Settings) -> Iterator[Settings]:
    from memestream.stack.stack import Stack

    Stack(settings).start(["kafka", "postgres", "redis", "minio", "nats"])
    yield settings


@contextmanager
def containers(settings: Settings) -> Iterator[Settings]:
    """Kafka, PostgreSQL, Redis, MinIO and ClickHouse in containers (needs Docker)."""
    from testcontainers.clickhouse import ClickHouseContainer
    from testcontainers.kafka import KafkaContainer
    from testcontainers.minio import MinioContainer
    from testcontainers.postgres import PostgresContainer
    from testcontainers.redis import RedisContainer

    with ExitStack() as stack:
        kafka = stack.enter_context(KafkaContainer("apache/kafka:4.1.0").with_kraft())
        postgres = stack.enter_context(
            PostgresContainer(
                "postgres:15",
                username="memestream",
                password="memestream",
                dbname="memestream",
                driver=None,
            )
        )
        redis = stack.enter_context(RedisContainer("redis:7"))
        minio = stack.enter_context(
            MinioContainer(access_key=settings.s3_access_key, secret_key=settings.s3_secret_key)
        )
        clickhouse = stack.enter_context(ClickHouseContainer("clickhouse/clickhouse-server:24.8"))
        minio_config = minio.get_config()
        yield settings.model_copy(
            update={
                "kafka_bootstrap_servers": kafka.get_bootstrap_server(),
                "database_url": postgres.get_connection_url(),
                "redis_url": (
                    f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}/0"
                ),
                "s3_endpoint_url": f"http://{minio_config['endpoint']}",
                "clickhouse_url": (
                    f"http://{clickhouse.username}:{clickhouse.password}@"
                    f"{clickhouse.get_container_host_ip()}:{clickhouse.get_exposed_port(8123)}"
                ),
            }
        )


@contextmanager
def services(settings: Settings | None = None) -> Iterator[Settings]:
    settings = settings or get_settings()
    provider = containers if settings.test_services is ServiceProvider.CONTAINERS else local_stack
    with provider(settings) as ready:
        yield ready


def environment(settings: Settings) -> dict[str, str]:
    """The settings as environment variables, for the processes tests start."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "S3_ENDPOINT_URL": settings.s3_endpoint_url,
        "CLICKHOUSE_URL": settings.clickhouse_url,
    }
