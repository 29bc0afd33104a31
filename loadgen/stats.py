"""What a replay measured: per-action outcomes, HDR latencies, and a per-second timeline.

Latency is measured from the record's *intended* send time, not from when the request
actually left, so a stalled server or a saturated client shows up as latency instead of
silently thinning the load (no coordinated omission).

Outcome classes: `ok` (1xx-3xx), `rejected` (4xx: the server refused, e.g. a 409 on a
pending image or a 429), `errors` (5xx, timeouts, refused connections), `skipped` (never
sent: no such endpoint yet, a meme the trace refers to was not created, client saturated).

The generator also measures itself: `lateness` is how long after its scheduled time each
request actually started (scheduler delay plus any wait for a free connection). A late
generator thins the load it claims to offer, so the report marks such a run invalid.

Worker processes send their `Stats` to the parent as `to_wire()` (plain data, HDR
histograms in their standard encoding) and the parent `merge`s them losslessly.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from loadgen.histograms import LatencyHistogram, Timeline

#: Latest (intended time, latency) pairs kept for the live display's recent p95.
RECENT_MAX = 4096


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int | None = None  # HTTP status; None for Kafka sends and transport errors
    error: str | None = None  # transport error or Kafka failure
    created: tuple[str, ...] = ()  # meme ids the request created
    skipped: str | None = None  # why it was never sent
    # Streams (feed): seconds from send to response headers; the hold time is not latency.
    time_to_headers: float | None = None
    # Seconds the request waited for a free connection of the client's pool (lateness).
    queued_s: float = 0.0

    @property
    def kind(self) -> str:
        if self.skipped is not None:
            return "skipped"
        if self.error is not None:
            return "error"
        if self.status is None or self.status < 400:
            return "ok"
        return "rejected" if self.status < 500 else "error"


@dataclass(slots=True)
class ActionStats:
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    sent: int = 0
    ok: int = 0
    rejected: int = 0
    errors: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    error_samples: Counter[str] = field(default_factory=Counter)
    #: Errors per whole second of intended send time: when this action was unavailable.
    error_seconds: Counter[int] = field(default_factory=Counter)

    def unavailable_s(self) -> int:
        """The longest run of consecutive seconds in which this action answered errors."""
        longest = run = 0
        previous = None
        for second in sorted(self.error_seconds):
            run = run + 1 if previous is not None and second == previous + 1 else 1
            longest = max(longest, run)
            previous = second
        return longest

    def as_dict(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "ok": self.ok,
            "rejected": self.rejected,
            "errors": self.errors,
            "skipped": dict(self.skipped),
            "statuses": dict(self.statuses),
            "error_samples": dict(self.error_samples.most_common(5)),
            "unavailable_s": self.unavailable_s(),
            "latency_s": self.latency.summary(),
            "hdr": self.latency.encode(),
        }

    def to_wire(self) -> dict[str, object]:
        return self.as_dict() | {
            "error_samples": dict(self.error_samples),
            "error_seconds": {str(k): v for k, v in self.error_seconds.items()},
        }

    def merge_wire(self, wire: dict[str, object]) -> None:
        self.latency.merge(LatencyHistogram.decode(str(wire["hdr"])))
        self.sent += int(wire["sent"])  # type: ignore[call-overload]
        self.ok += int(wire["ok"])  # type: ignore[call-overload]
        self.rejected += int(wire["rejected"])  # type: ignore[call-overload]
        self.errors += int(wire["errors"])  # type: ignore[call-overload]
        self.statuses.update(wire["statuses"])  # type: ignore[arg-type]
        self.skipped.update(wire["skipped"])  # type: ignore[arg-type]
        self.error_samples.update(wire["error_samples"])  # type: ignore[arg-type]
        seconds = wire.get("error_seconds") or {}
        self.error_seconds.update({int(k): int(v) for k, v in seconds.items()})  # type: ignore[attr-defined]


@dataclass(slots=True)
class Stats:
    actions: dict[str, ActionStats] = field(default_factory=dict)
    overall: LatencyHistogram = field(default_factory=LatencyHistogram)
    timeline: Timeline = field(default_factory=Timeline)
    created: list[str] = field(default_factory=list)
    #: Accepted votes (meme id, trace user, value), for the ledger (loadgen/ledger.py).
    votes: list[tuple[str, str, int]] = field(default_factory=list)
    #: Every vote sent (meme id, trace user, value), answered or not.
    sent_votes: list[tuple[str, str, int]] = field(default_factory=list)
    in_flight: int = 0
    #: Actual start minus scheduled time of every request sent (the generator's own delay).
    lateness: LatencyHistogram = field(default_factory=LatencyHistogram)
    #: Requests that had to wait for a free connection of the client's pool.
    queued: int = 0
    recent: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=RECENT_MAX))

    def _action(self, name: str) -> ActionStats:
        # Not `setdefault(name, ActionStats())`: an HDR histogram costs ~0.2 ms to allocate,
        # and that eager default was a third of the generator's CPU per request.
        stats = self.actions.get(name)
        if stats is None:
            stats = self.actions[name] = ActionStats()
        return stats

    def skip(self, action: str, reason: str) -> None:
        self._action(action).skipped[reason] += 1

    def late(self, at: float, seconds: float, queued_s: float = 0.0) -> None:
        """One request's lateness: scheduler delay `seconds` plus `queued_s` for a connection;
        `at` is its intended send time in seconds since the start of the replay."""
        late = max(0.0, seconds) + queued_s
        self.lateness.record(late)
        self.timeline.late(at, late)
        if queued_s > 0:
            self.queued += 1

    def record(self, action: str, at: float, latency: float, outcome: Outcome) -> None:
        """`at` is the intended send time in seconds since the start of the replay."""
        if outcome.skipped is not None:
            self.skip(action, outcome.skipped)
            return
        stats = self._action(action)
        stats.sent += 1
        kind = outcome.kind
        if kind == "ok":
            stats.ok += 1
        elif kind == "rejected":
            stats.rejected += 1
        else:
            stats.errors += 1
            stats.error_samples[(outcome.error or f"HTTP {outcome.status}")[:120]] += 1
            stats.error_seconds[int(at)] += 1
        stats.statuses[str(outcome.status) if outcome.status is not None else kind] += 1
        stats.latency.record(latency)
        self.overall.record(latency)
        self.timeline.record(at, latency, ok=kind != "error")
        self.recent.append((at, latency))
        self.created.extend(outcome.created)

    def to_wire(self) -> dict[str, object]:
        """Plain data for another process (see `merge_wire`)."""
        return {
            "actions": {name: a.to_wire() for name, a in self.actions.items()},
            "lateness": self.lateness.encode(),
            "queued": self.queued,
            "created": list(self.created),
            "votes": [list(v) for v in self.votes],
            "sent_votes": [list(v) for v in self.sent_votes],
            "timeline": self.timeline.to_wire(),
        }

    def merge_wire(self, wire: dict[str, object]) -> None:
        for name, action in wire["actions"].items():  # type: ignore[attr-defined]
            self._action(name).merge_wire(action)
        for action in wire["actions"].values():  # type: ignore[attr-defined]
            self.overall.merge(LatencyHistogram.decode(action["hdr"]))
        self.lateness.merge(LatencyHistogram.decode(str(wire["lateness"])))
        self.queued += int(wire["queued"])  # type: ignore[call-overload]
        self.created.extend(wire["created"])  # type: ignore[arg-type]
        self.votes.extend((m, u, int(v)) for m, u, v in wire.get("votes", ()))  # type: ignore[attr-defined]
        self.sent_votes.extend((m, u, int(v)) for m, u, v in wire.get("sent_votes", ()))  # type: ignore[attr-defined]
        self.timeline.merge_wire(wire["timeline"])  # type: ignore[arg-type]

    @property
    def sent(self) -> int:
        return sum(a.sent for a in self.actions.values())

    @property
    def errors(self) -> int:
        return sum(a.errors for a in self.actions.values())

    @property
    def rejected(self) -> int:
        return sum(a.rejected for a in self.actions.values())

    @property
    def skipped(self) -> int:
        return sum(sum(a.skipped.values()) for a in self.actions.values())

    def recent_p95(self, now: float, window_s: int = 5) -> float:
        """p95 over the last `window_s` seconds (for the live display), from the latest
        `RECENT_MAX` requests: merging HDR histograms walks their ~30,000 counts in Python,
        tens of ms a second that the replay's schedule cannot spare."""
        since = now - window_s
        values = sorted(latency for at, latency in self.recent if at >= since)
        return values[min(len(values) - 1, int(len(values) * 0.95))] if values else 0.0

    def recent_rate(self, now: float, window_s: int = 5) -> float:
        seconds = range(int(now) - window_s, int(now))
        return sum(self.timeline.requests.get(s, 0) for s in seconds) / window_s
