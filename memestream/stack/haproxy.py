"""HAProxy (Debian's `haproxy`) in front of the API replicas of the replicated stack.

The config is generated into `<stack>/conf/haproxy/haproxy.cfg`. HAProxy listens on the
API's public port (127.0.0.1 only) and balances over the replicas, checking each one's
`/ready` every second: a replica that fails two checks in a row (or refuses a connection)
is out within about two seconds, its open sessions cut so clients reconnect to the other.
A request whose connection to a dead replica failed before anything was sent is retried on
the other (`retry-on conn-failure`: safe for a POST, which never reached a server); a
request in flight when a replica dies is answered 502, which the client sees and counts.
Long-lived feed connections (SSE, WebSocket) get a one-hour tunnel timeout.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from memestream.stack.health import http_ok
from memestream.stack.layout import StackLayout
from memestream.stack.process import ManagedProcess, ServiceError

HAPROXY = Path(shutil.which("haproxy") or "/usr/sbin/haproxy")
CHECK_INTERVAL_MS = 1000
FALL = 2  # failed checks before a replica is out
RISE = 2  # passed checks before it is back
ON_DOWN = "on-marked-down shutdown-sessions"  # its feed clients reconnect to the other one


def haproxy_config(port: int, replicas: Sequence[tuple[str, int]]) -> str:
    """The whole config: one frontend on 127.0.0.1:`port`, one backend of `replicas`."""
    servers = "\n".join(f"  server {name} 127.0.0.1:{p} check" for name, p in replicas)
    return f"""\
global
  maxconn 4096
  log stdout format raw local0 notice

defaults
  mode http
  log global
  option httplog
  option dontlognull
  option redispatch
  retries 2
  retry-on conn-failure
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout tunnel 1h
  timeout http-request 10s

frontend api
  bind 127.0.0.1:{port}
  default_backend api_replicas

backend api_replicas
  balance leastconn
  option httpchk GET /ready
  http-check expect status 200
  default-server inter {CHECK_INTERVAL_MS}ms fall {FALL} rise {RISE} {ON_DOWN}
{servers}
"""


class HaproxyServer(ManagedProcess):
    """`haproxy -db -W -f <config>`: in the foreground, master-worker, supervised like a store."""

    start_timeout = 30.0
    stop_timeout = 10.0

    def __init__(self, layout: StackLayout, port: int, replicas: Sequence[tuple[str, int]]) -> None:
        super().__init__("haproxy", layout)
        self._port = port
        self.replicas = list(replicas)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    @property
    def config_path(self) -> Path:
        return self.layout.conf(self.name) / "haproxy.cfg"

    def prepare(self) -> None:
        if not HAPROXY.exists():
            raise ServiceError(f"{HAPROXY} not found: apt-get install haproxy")
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(haproxy_config(self._port, self.replicas))

    def command(self) -> list[str]:
        return [str(HAPROXY), "-db", "-W", "-f", str(self.config_path)]

    def check_health(self) -> bool:
        """Up once it answers; whether a replica is behind it is `/ready`'s business."""
        return http_ok(f"{self.url}/health")
