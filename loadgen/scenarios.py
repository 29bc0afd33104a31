"""The plan's load scenarios, and how a scenario becomes a deterministic trace.

A scenario is a user-count profile (linear phases) times a per-user action rate times an
action mix. Arrivals are a non-homogeneous Poisson process drawn by thinning with a seeded
`random.Random`, so one (scenario, seed, scale) always gives the same trace.

`scale` shrinks time and users together (0.01 turns the 15-minute burst into 9 s with 10
users) so CI can run a scenario's shape in seconds; the per-user rate stays the same.

Reads pick earlier memes Zipf-like (a few are hot, most are cold), which is what a cache
hit-ratio replay needs; the memory-pressure scenario reads uniformly to saturate caches.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from domain.trending_windows import WINDOWS
from loadgen.trace import TraceHeader, TraceRecord

TEMPLATES: tuple[str, ...] = (
    "classic",
    "drake",
    "hot-take",
    "night-thoughts",
    "two-buttons",
    "vibe-check",
    "expanding-brain",
)
WORDS: tuple[str, ...] = (
    "when", "the", "build", "is", "green", "on", "friday", "kafka", "lag", "me", "explaining",
    "to", "my", "cat", "why", "prod", "fell", "over", "nobody", "meme", "stream", "p95",
    "deploys", "tests", "coffee", "monday", "again", "cache", "miss", "hit",
)  # fmt: skip

#: Actions that create a meme a later record may `ref`.
CREATES = frozenset({"generate"})
#: Actions that need an existing meme.
NEEDS_MEME = frozenset({"get_meme", "get_image", "view", "vote"})
ACTIONS: tuple[str, ...] = (
    "generate", "batch", "upload", "get_meme", "get_image", "view", "vote", "trending", "feed",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Phase:
    """Users change linearly from `users_from` to `users_to` over `duration_s`."""

    duration_s: float
    users_from: int
    users_to: int


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    phases: tuple[Phase, ...]
    rate_per_user: float  # actions per second per active user
    mix: dict[str, float]
    zipf: bool = True  # skewed reads; False reads uniformly (cache saturation)
    batch_size: int = 10
    upload_bytes: int = 10_500_000
    feed_hold_s: float = 5.0
    extra: dict[str, Any] = field(default_factory=dict)

    def scaled(self, scale: float) -> Scenario:
        """Time and users times `scale` (users at least 1 where the profile had any)."""
        if scale <= 0:
            raise ValueError("scale must be positive")

        def users(n: int) -> int:
            return 0 if n == 0 else max(1, round(n * scale))

        phases = tuple(
            Phase(p.duration_s * scale, users(p.users_from), users(p.users_to)) for p in self.phases
        )
        feed_hold = min(self.feed_hold_s, max(0.5, self.feed_hold_s * scale))
        return Scenario(
            self.name, self.description, phases, self.rate_per_user, self.mix, self.zipf,
            self.batch_size, self.upload_bytes, feed_hold, self.extra,
        )  # fmt: skip

    @property
    def duration_s(self) -> float:
        return sum(p.duration_s for p in self.phases)

    @property
    def peak_users(self) -> int:
        return max(max(p.users_from, p.users_to) for p in self.phases)

    def users_at(self, t: float) -> float:
        start = 0.0
        for p in self.phases:
            if t < start + p.duration_s:
                frac = (t - start) / p.duration_s if p.duration_s else 1.0
                return p.users_from + (p.users_to - p.users_from) * frac
            start += p.duration_s
        return float(self.phases[-1].users_to) if self.phases else 0.0


MIXED = {
    "generate": 0.20, "batch": 0.02, "get_meme": 0.30, "get_image": 0.15, "view": 0.10,
    "vote": 0.10, "trending": 0.10, "feed": 0.03,
}  # fmt: skip

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "burst",
            "0 to 1,000 users in 30 s, held 5 min, declining to 0 over 10 min",
            (Phase(30, 0, 1000), Phase(300, 1000, 1000), Phase(600, 1000, 0)),
            rate_per_user=0.2,
            mix=MIXED,
        ),
        Scenario(
            "sustained",
            "500 concurrent users, mixed reads and writes, 30 min",
            (Phase(1800, 500, 500),),
            rate_per_user=0.2,
            mix=MIXED,
        ),
        Scenario(
            "memory",
            "memory pressure: 10 MB+ uploads, batches of 50, uniform reads that saturate caches",
            (Phase(10, 0, 50), Phase(290, 50, 50)),
            rate_per_user=0.2,
            mix={"upload": 0.05, "batch": 0.15, "generate": 0.2, "get_image": 0.4, "get_meme": 0.2},
            zipf=False,
            batch_size=50,
        ),
        Scenario(
            "generation",
            "generation only at 3,000 requests/min (the throughput target), 60 s",
            (Phase(60, 50, 50),),
            rate_per_user=1.0,
            mix={"generate": 1.0},
        ),
    )
}


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None


def _texts(rng: random.Random) -> list[str]:
    return [" ".join(rng.choices(WORDS, k=rng.randint(2, 6))).upper() for _ in range(2)]


def _pick(rng: random.Random, created: list[int], zipf: bool) -> int:
    """Zipf-like (Pareto rank, oldest memes hottest) or uniform choice of a created seq."""
    if not zipf:
        return created[rng.randrange(len(created))]
    rank = int(rng.paretovariate(0.6)) - 1
    return created[rank % len(created)]


def _payload(
    action: str, rng: random.Random, scenario: Scenario, created: list[int]
) -> dict[str, Any]:
    match action:
        case "generate":
            return {"template_id": rng.choice(TEMPLATES), "texts": _texts(rng)}
        case "batch":
            return {
                "items": [
                    {"template_id": rng.choice(TEMPLATES), "texts": _texts(rng)}
                    for _ in range(scenario.batch_size)
                ]
            }
        case "upload":
            side = math.ceil(math.sqrt(scenario.upload_bytes / 3))
            return {"seed": rng.getrandbits(32), "width": side, "height": side, "format": "png"}
        case "get_meme" | "view":
            return {"ref": _pick(rng, created, scenario.zipf)}
        case "get_image":
            size = rng.choice(("full", "medium", "thumb"))
            return {"ref": _pick(rng, created, scenario.zipf), "size": size}
        case "vote":
            return {"ref": _pick(rng, created, scenario.zipf), "value": rng.choice((1, 1, 1, -1))}
        case "trending":
            return {"window": rng.choice(WINDOWS.names())}
        case "feed":
            return {"hold_s": scenario.feed_hold_s}
        case _:
            raise ValueError(f"unknown action {action!r}")


def generate(scenario: Scenario, seed: int) -> Iterator[TraceRecord]:
    """Arrivals by thinning a Poisson process at the peak rate; deterministic in `seed`."""
    rng = random.Random(seed)
    peak_rate = scenario.peak_users * scenario.rate_per_user
    if peak_rate <= 0:
        return
    actions = list(scenario.mix)
    # What random.choices accumulates from weights on every call, once (same draws).
    cum_weights = list(itertools.accumulate(scenario.mix[a] for a in actions))
    peak_users = scenario.peak_users  # a max over the phases: once, not per arrival
    created: list[int] = []
    t = 0.0
    seq = 0
    end = scenario.duration_s
    while True:
        t += rng.expovariate(peak_rate)
        if t >= end:
            return
        users = scenario.users_at(t)
        if rng.random() * peak_users >= users:
            continue
        user = f"u{rng.randrange(max(1, math.ceil(users))):05d}"
        action = rng.choices(actions, cum_weights=cum_weights)[0]
        if action in NEEDS_MEME and not created:
            action = "generate"
        payload = _payload(action, rng, scenario, created)
        if action in CREATES:
            created.append(seq)
        yield TraceRecord(at=round(t, 6), user=user, action=action, payload=payload, seq=seq)
        seq += 1


def header_for(scenario: Scenario, seed: int, scale: float, records: int) -> TraceHeader:
    return TraceHeader(scenario.name, seed, scale, scenario.duration_s, records)
