"""The replicated stack's app tier, without starting it: two API replicas behind HAProxy on
the public port, two render workers with distinct web ports, one worker of every other role."""

from __future__ import annotations

from pathlib import Path

from domain.settings import Settings
from memestream.stack.apps import ApiProcess, WorkerProcess
from memestream.stack.ha import HaPorts, HaStack
from memestream.stack.ha_apps import ha_apps
from memestream.stack.haproxy import HaproxyServer
from producers.roles import WORKER_ROLES, web_port


def test_two_replicas_behind_haproxy_and_two_render_workers(tmp_path: Path) -> None:
    stack = HaStack(Settings(stack_dir=tmp_path, cache_dir=tmp_path / "cache"), HaPorts(25000))
    apps = ha_apps(stack.settings, stack.layout, stack.ports.api_replicas, list(WORKER_ROLES))
    replicas = [a for a in apps if isinstance(a, ApiProcess)]
    (proxy,) = [a for a in apps if isinstance(a, HaproxyServer)]
    assert [r.name for r in replicas] == ["api-1", "api-2"]
    assert [r.port for r in replicas] == [25044, 25045]
    assert proxy.port == stack.settings.api_port == 25050
    assert proxy.replicas == [("api-1", 25044), ("api-2", 25045)]
    assert apps.index(proxy) > max(apps.index(r) for r in replicas)  # started after them
    assert all(f"--port {r.port}" in " ".join(r.command()) for r in replicas)
    assert stack.settings.feed_transport == "nats"  # the feed reaches both replicas

    workers = [a for a in apps if isinstance(a, WorkerProcess)]
    render = [w for w in workers if w.role == "render"]
    assert [w.name for w in render] == ["worker-render", "worker-render-2"]
    assert sorted(w.role for w in workers if w.role != "render") == sorted(
        r for r in WORKER_ROLES if r != "render"
    )
    first = web_port(stack.settings.worker_web_port, "render")
    second = web_port(int(render[1].env()["WORKER_WEB_PORT"]), "render")
    others = {web_port(stack.settings.worker_web_port, r) for r in WORKER_ROLES}
    assert second != first and second not in others
    assert 25052 <= second <= 25059  # inside the block HaPorts keeps for workers
    names = [a.name for a in apps]
    assert len(names) == len(set(names))


def test_no_workers_when_asked_for_none(tmp_path: Path) -> None:
    stack = HaStack(Settings(stack_dir=tmp_path, cache_dir=tmp_path / "cache"), HaPorts(25000))
    apps = ha_apps(stack.settings, stack.layout, stack.ports.api_replicas, None)
    assert [a.name for a in apps] == ["api-1", "api-2", "haproxy"]
