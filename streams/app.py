"""One Faust app per worker role; the role's name makes its consumer group id."""

from __future__ import annotations

import faust

from domain import credentials
from domain.settings import Settings
from producers.roles import Role, web_port
from streams import faust_compat, observability
from streams.kafka_auth import faust_credentials


def faust_broker_url(bootstrap_servers: str) -> str:
    return ";".join(f"kafka://{server.strip()}" for server in bootstrap_servers.split(","))


def create_app(role: Role, settings: Settings) -> faust.App:
    """The role's app with its agents registered; `create_worker(app, ...)` runs it."""
    credentials.enforce(settings, f"the {role.name} worker")
    group_id = role.group_id_for(settings.consumer_group_prefix)
    data_dir = settings.resolved(settings.worker_data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)  # Faust makes only the last level
    app = faust.App(
        group_id,
        broker=faust_broker_url(settings.kafka_bootstrap_servers),
        broker_credentials=faust_credentials(settings),
        key_serializer="raw",
        value_serializer="raw",
        store="memory://",
        datadir=str(data_dir / f"{group_id}-data"),
        producer_acks=-1,
        consumer_auto_offset_reset=settings.kafka_auto_offset_reset,
        broker_session_timeout=settings.kafka_session_timeout_s,
        web_bind=settings.api_host,
        web_port=web_port(settings.worker_web_port, role.name),
        web_host=settings.api_host,
        stream_wait_empty=False,
    )
    match role.name:
        case "render":
            from streams.render import register
        case "trending":
            from streams.trending import register
        case "analytics":
            from streams.analytics import register
        case _:
            raise NotImplementedError(f"the {role.name!r} role has no agents yet")
    register(app, settings)
    faust_compat.install(app, fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms)
    observability.install(app, settings, role.name)
    return app


def create_worker(app: faust.App, loglevel: str) -> faust.Worker:
    """The Faust worker that runs `app`, without Faust's terminal progress spinner.

    At WARNING and above Faust keeps the spinner and, to spin on every log message, sets the
    root logger to DEBUG: every library's debug call then builds a record (in the trending
    worker's changelog recovery, a quarter of its CPU). A service has no terminal to spin on.
    """
    worker = faust.Worker(app, loglevel=loglevel)
    worker.spinner = None
    return worker
