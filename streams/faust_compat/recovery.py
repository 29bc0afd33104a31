"""Keeps the messages a worker fetches while its recovery ends.

faust-streaming ends recovery by resuming the stream partitions and seeking them to their
committed offsets, and only then calls `app.flow_control.resume()`. The consumer's flow is
already running by then (recovery turned it on to read the changelogs), so while the seek is
awaited the fetcher delivers the partitions' first messages into the streams' queues and moves
its read offsets past them. mode's `FlowControlEvent.resume()` then clears every queue, and
nothing seeks back: the cleared messages are never processed nor acknowledged, and the
partition's commits stop before them. A trending worker restarted after SIGKILL onto a backlog
lost events this way (`tests/test_trending_replay.py`).

Those messages belong to the new assignment, so the clear inside `resume()` is dropped here.
Faust's explicit clear when partitions are revoked stays: that one is followed by a seek to the
committed offsets. (A seek after the clear instead races the consumer loop: a chunk fetched
before the seek moves the read offsets past the re-fetched messages again.)
"""

from __future__ import annotations

import faust
from mode.utils.queues import FlowControlEvent


def install(app: faust.App) -> None:
    """Makes `app`'s flow control keep its queues when recovery resumes it."""
    flow: FlowControlEvent = app.flow_control

    def resume() -> None:
        flow.clear = _keep  # type: ignore[method-assign]
        try:
            FlowControlEvent.resume(flow)
        finally:
            del flow.clear  # the class's clear again, for revocations

    flow.resume = resume  # type: ignore[method-assign]


def _keep() -> None:
    """Clears nothing."""
