"""The platform's own processes (API, Faust workers) supervised like the stores.

`memestream up` runs them as background processes with pid files in the stack folder,
so `up --detach` can leave them running and `down` can find and stop them later.
"""

from __future__ import annotations

import sys
from pathlib import Path

from domain.settings import PROJECT_ROOT, Settings
from memestream.stack.health import http_ok
from memestream.stack.layout import StackLayout
from memestream.stack.process import ManagedProcess

#: uvicorn's httptools protocol with header and body read timeouts for slow clients.
HTTP_PROTOCOL = "api.slow_clients:SlowClientTimeouts"


def proxy_args(settings: Settings) -> list[str]:
    """Which proxies' X-Forwarded-For uvicorn believes: FORWARDED_ALLOW_IPS, else none.

    Explicit either way: left alone, uvicorn trusts 127.0.0.1, so any local process (or a
    sidecar) could pick the client IP the rate limits key on.
    """
    if not settings.forwarded_allow_ips.strip():
        return ["--no-proxy-headers"]
    return ["--proxy-headers", "--forwarded-allow-ips", settings.forwarded_allow_ips]


def api_command(settings: Settings, extra: list[str] | None = None) -> list[str]:
    """The API server's command line, shared by `up`, `memestream api` and the container
    image (Dockerfile, docker-compose.yml, deploy/strimzi), which add `extra` uvicorn options."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "api.app:app",
        "--host",
        settings.api_host,
        "--port",
        str(settings.api_port),
        # Feed frames are small JSON; per-message deflate costs more CPU than it saves and
        # keeps browsers off the feed's direct-write fast path.
        "--ws-per-message-deflate",
        "false",
        "--http",
        HTTP_PROTOCOL,
        *proxy_args(settings),
        *(extra or []),
    ]


def worker_command(role: str) -> list[str]:
    """One Faust worker's command line, shared by `up` and `memestream worker`."""
    return [sys.executable, "-m", "streams", "worker", "--role", role]


class ApiProcess(ManagedProcess):
    start_timeout = 60.0
    stop_timeout = 20.0

    def __init__(self, settings: Settings, layout: StackLayout, name: str = "api") -> None:
        """`name` tells replicas apart (the replicated stack runs two, on their own ports)."""
        super().__init__(name, layout)
        self.settings = settings

    @property
    def url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    @property
    def port(self) -> int:
        return self.settings.api_port

    def cwd(self) -> Path:
        return PROJECT_ROOT

    def env(self) -> dict[str, str]:
        return {"PYTHONUNBUFFERED": "1"}

    def command(self) -> list[str]:
        return api_command(self.settings)

    def healthy(self) -> bool:
        # The API binds api_host (maybe not 127.0.0.1), so skip the loopback port probe.
        try:
            return self.check_health()
        except Exception:
            return False

    def check_health(self) -> bool:
        return http_ok(f"{self.url}/health")


class WorkerProcess(ManagedProcess):
    """A Faust worker of one role; healthy while its process lives (it has no port of ours)."""

    start_timeout = 10.0
    stop_timeout = 30.0  # Faust commits offsets and leaves the group on SIGTERM
    min_uptime = 3.0

    def __init__(
        self,
        settings: Settings,
        layout: StackLayout,
        role: str,
        name: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        """`name` and `extra_env` (its own WORKER_WEB_PORT) for a second worker of a role."""
        super().__init__(name or f"worker-{role}", layout)
        self.role = role
        self.settings = settings
        self.extra_env = dict(extra_env or {})

    @property
    def url(self) -> str:
        return f"role={self.role}"

    def cwd(self) -> Path:
        return PROJECT_ROOT

    def env(self) -> dict[str, str]:
        return {"PYTHONUNBUFFERED": "1", **self.extra_env}

    def command(self) -> list[str]:
        return worker_command(self.role)

    def check_health(self) -> bool:
        return self.process() is not None
