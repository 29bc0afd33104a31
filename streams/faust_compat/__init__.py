"""Every patch of Faust, aiokafka and mode internals, applied by one `install(app)`.

The workers depend on three behaviours the libraries do not offer as settings, and each is a
patch of private code (the module of each says why it is needed and what it replaces):
- `batches`: Faust's consumer loop (`Consumer._drain_messages`) hands fetched messages of a
  batching agent's topics straight to it (trending: ~100x Faust's per-message path);
- `fetch_wait`: aiokafka's `_fetch_max_wait_ms` on the consumer Faust builds, so a fetch of
  quiet topics does not stall busy ones for Faust's fixed 1.5 s;
- `recovery`: mode's `FlowControlEvent.resume` keeps the messages fetched while recovery
  ends, which it would otherwise drop unprocessed and unacknowledged.

One reader, not a patch: `membership.is_member` reads aiokafka's group coordinator for the
workers' liveness probe (streams/liveness.py).

`install` first checks the installed versions against `TESTED`, the ranges these patches
were read and tested against, and raises `UntestedVersion` (naming package, version and range)
outside them: a worker that starts with a patch that silently stopped applying loses events.
`pyproject.toml` bounds the same packages with the same ranges. Nothing else in `streams/`
touches these libraries' private attributes; a new patch goes here, behind `install`.
"""

from __future__ import annotations

import faust

from domain.tested_versions import UntestedVersion, require
from streams.faust_compat import batches, fetch_wait, recovery

__all__ = ["TESTED", "UntestedVersion", "install"]

#: Distribution -> the versions the patches were tested on (pyproject.toml's bounds match).
TESTED = {
    "faust-streaming": ">=0.11,<0.16",
    "aiokafka": ">=0.11,<0.15",
    "mode-streaming": ">=0.6,<0.8",
}


def install(app: faust.App, *, fetch_max_wait_ms: int) -> dict[str, str]:
    """Applies the patches `app` needs, after its agents are registered (an agent that asked
    for batches is what turns the consumer loop on); returns the versions checked."""
    versions = require(TESTED, "streams.faust_compat")
    fetch_wait.install(app, fetch_max_wait_ms)
    recovery.install(app)
    if batches.routed(app):
        batches.install()
    return versions
