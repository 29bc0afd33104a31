"""Whether a worker is a member of its consumer group, read from aiokafka's coordinator.

Faust offers no public view of it. A worker whose group session expired (a long broker outage)
can stay up with its web port open and never rejoin: it consumes nothing while the port
answers, so a TCP liveness probe keeps it alive. The coordinator's generation and member id say
whether the broker counts this process as a member; `streams/liveness.py` turns a long absence
into a failing `/health/live`.
"""

from __future__ import annotations

import faust
from aiokafka.protocol.commit import OffsetCommitRequest
from aiokafka.protocol.group import JoinGroupRequest


def is_member(app: faust.App) -> bool:
    """True when the broker has this worker in its group now (joined, a generation assigned)."""
    thread = getattr(app.consumer, "_thread", None)
    consumer = getattr(thread, "_consumer", None)
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is None:  # not started yet, or stopped
        return False
    return (
        coordinator.member_id != JoinGroupRequest.UNKNOWN_MEMBER_ID
        and coordinator.generation != OffsetCommitRequest.DEFAULT_GENERATION_ID
        and coordinator.coordinator_id is not None
    )
