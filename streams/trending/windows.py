"""The trending windows as explicit objects: length, bucket size, half-life and Redis key.

A window's state is a ring of event-time buckets; a bucket leaves the window once its end is
more than `length_s` behind the wall clock, so the effective window is between `length_s` and
`length_s + bucket_s` long. Decay inside the window has a half-life of a quarter of the window,
so a vote at the window's far edge still weighs 1/16 of a fresh one.
"""

from __future__ import annotations

from dataclasses import dataclass

HOUR_S = 3600


@dataclass(frozen=True, slots=True)
class WindowSpec:
    name: str
    length_s: int
    bucket_s: int
    half_life_s: float

    @property
    def redis_key(self) -> str:
        return f"trending:{self.name}"

    def bucket_of(self, t: float) -> int:
        """The start (epoch seconds) of the bucket that event time `t` falls in."""
        return int(t // self.bucket_s) * self.bucket_s

    def bucket_live(self, bucket: int, now: float) -> bool:
        return bucket + self.bucket_s > now - self.length_s

    def landmark(self, now: float) -> int:
        """Forward decay's landmark: fixed for a whole window length, then moved forward."""
        return int(now // self.length_s) * self.length_s


ONE_HOUR = WindowSpec("1h", HOUR_S, 60, HOUR_S / 4)
ONE_DAY = WindowSpec("24h", 24 * HOUR_S, 15 * 60, 6 * HOUR_S)
ONE_WEEK = WindowSpec("7d", 7 * 24 * HOUR_S, 2 * HOUR_S, 42 * HOUR_S)

WINDOWS: tuple[WindowSpec, ...] = (ONE_HOUR, ONE_DAY, ONE_WEEK)
BY_NAME: dict[str, WindowSpec] = {w.name: w for w in WINDOWS}

RISING_KEY = "trending:rising"
#: The rising signal compares the last RECENT_S of the 1h window with the rest of it.
RISING_WINDOW = ONE_HOUR
RECENT_S = 5 * 60
