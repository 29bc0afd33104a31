"""The replicated stack's own processes: two API replicas behind HAProxy, two render workers.

Each API replica listens on a port of its own (`HaPorts.api_replicas`); HAProxy
(haproxy.py) owns the API's public port (`HaPorts.api`, API_PORT) and health-checks the
replicas' `/ready`. The live feed reaches both replicas through NATS JetStream
(FEED_TRANSPORT=nats, set by ha.ha_overrides), so a client on either one sees every event.
The two render workers are one Faust consumer group: Kafka splits `meme.requests`'
partitions between them and gives a dead one's partitions to the other. The second one
gets its own WORKER_WEB_PORT, past the first worker of every role, so their `/metrics`
ports differ. The other roles run once each, as on the single-node stack.
"""

from __future__ import annotations

from collections.abc import Sequence

from domain.settings import Settings
from memestream.stack.apps import ApiProcess, WorkerProcess
from memestream.stack.haproxy import HaproxyServer
from memestream.stack.layout import StackLayout
from memestream.stack.process import ManagedProcess
from producers.roles import WORKER_ROLES

API_REPLICAS = 2
RENDER_ROLE = "render"
RENDER_WORKERS = 2


def api_replicas(settings: Settings, layout: StackLayout, ports: Sequence[int]) -> list[ApiProcess]:
    """One ApiProcess per port, named api-1, api-2, ...: the API with `--port` its own."""
    return [
        ApiProcess(settings.model_copy(update={"api_port": port}), layout, f"api-{i + 1}")
        for i, port in enumerate(ports)
    ]


def extra_worker_web_port(settings: Settings, copy: int) -> int:
    """WORKER_WEB_PORT for the `copy`-th extra worker of a role (1 for the second): a block
    of len(WORKER_ROLES) ports past the first workers' block."""
    return settings.worker_web_port + copy * len(WORKER_ROLES)


def ha_workers(
    settings: Settings, layout: StackLayout, roles: Sequence[str]
) -> list[WorkerProcess]:
    """One worker per role, plus the extra render workers when render is among `roles`."""
    workers = [WorkerProcess(settings, layout, role) for role in roles]
    if RENDER_ROLE in roles:
        workers += [
            WorkerProcess(
                settings,
                layout,
                RENDER_ROLE,
                name=f"worker-{RENDER_ROLE}-{copy + 1}",
                extra_env={"WORKER_WEB_PORT": str(extra_worker_web_port(settings, copy))},
            )
            for copy in range(1, RENDER_WORKERS)
        ]
    return workers


def ha_apps(
    settings: Settings,
    layout: StackLayout,
    replica_ports: Sequence[int],
    roles: Sequence[str] | None,
) -> list[ManagedProcess]:
    """In start order: the API replicas, HAProxy, then the workers (`roles`; None: none)."""
    replicas = api_replicas(settings, layout, replica_ports)
    proxy = HaproxyServer(layout, settings.api_port, [(r.name, r.port) for r in replicas])
    workers = ha_workers(settings, layout, roles) if roles is not None else []
    return [*replicas, proxy, *workers]
