"""`/health/live` on a worker's web port: failing once the worker has been out of its consumer
group for longer than `WORKER_LIVENESS_GRACE_S`.

Why not the port: a worker whose Kafka session expired can keep its web server up and never
rejoin (seen once in the chaos runs: the render worker went silent after a long broker outage,
and only the runner's supervisor noticed). A rebalance, a start-up or a short broker outage is
a brief absence, so the probe fails only after the grace: Kubernetes then restarts the pod and
the new process joins afresh.
"""

from __future__ import annotations

import time
from typing import Any

import faust

from domain.settings import Settings
from streams.faust_compat.membership import is_member

LIVENESS_PATH = "/health/live"
SAMPLE_INTERVAL_S = 1.0


class Membership:
    """When the worker was last seen in its group (its start counts as seen: joining takes time)."""

    def __init__(self, app: faust.App, grace_s: float) -> None:
        self.app = app
        self.grace_s = grace_s
        self.last_member = time.monotonic()

    def sample(self) -> bool:
        member = is_member(self.app)
        if member:
            self.last_member = time.monotonic()
        return member

    def report(self) -> tuple[bool, dict[str, Any]]:
        """(alive, body): alive while a member, or out of the group for under the grace."""
        member = self.sample()
        absent_s = 0.0 if member else time.monotonic() - self.last_member
        alive = member or absent_s < self.grace_s
        return alive, {
            "alive": alive,
            "member": member,
            "absent_s": round(absent_s, 1),
            "grace_s": self.grace_s,
        }


def register(app: faust.App, settings: Settings) -> Membership:
    membership = Membership(app, settings.worker_liveness_grace_s)

    @app.timer(interval=SAMPLE_INTERVAL_S)
    async def sample_membership() -> None:
        membership.sample()

    @app.page(LIVENESS_PATH)
    async def live(web: Any, request: Any) -> Any:
        alive, body = membership.report()
        return web.json(body, status=200 if alive else 503)

    return membership
