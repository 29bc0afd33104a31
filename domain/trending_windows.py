"""The trending windows, declared once: every reader and writer of trending iterates this list.

The trending worker keeps a score per window (streams/trending/), the Redis sets are named after
the window (sinks/redis/trending.py), the API validates `?window=` against it and asks the
fallback stores for its span (api/routes/trending.py: ClickHouse in minutes, PostgreSQL's
`trending_daily` view in whole days, sinks/postgres/trending.py). So a new window is one line
here; tests/test_trending_windows.py adds one in a fixture and finds it everywhere.

A window's state is a ring of event-time buckets; a bucket leaves the window once its end is
more than `length_s` behind the wall clock, so the effective window is between `length_s` and
`length_s + bucket_s` long. Decay inside the window has a half-life of a quarter of the window,
so a vote at the window's far edge still weighs 1/16 of a fresh one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import overload

HOUR_S = 3600
DAY_S = 24 * HOUR_S


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    length_s: int
    bucket_s: int
    half_life_s: float

    @property
    def minutes(self) -> int:
        """The span a per-minute store (ClickHouse) reads for this window."""
        return max(1, self.length_s // 60)

    @property
    def days(self) -> int:
        """Whole days before today a per-day store (`trending_daily`) reads: at least one, so
        a short window still sees yesterday's votes just after midnight."""
        return max(1, math.ceil(self.length_s / DAY_S))

    def bucket_of(self, t: float) -> int:
        """The start (epoch seconds) of the bucket that event time `t` falls in."""
        return int(t // self.bucket_s) * self.bucket_s

    def bucket_live(self, bucket: int, now: float) -> bool:
        return bucket + self.bucket_s > now - self.length_s

    def landmark(self, now: float) -> int:
        """Forward decay's landmark: fixed for a whole window length, then moved forward."""
        return int(now // self.length_s) * self.length_s


class UnknownWindow(KeyError):
    """A window name nobody declared (the API answers 422)."""


class Windows(Sequence[Window]):
    """The declared windows, in order; read at use, so a test can add one with monkeypatch.

    Append only: the trending worker stores a meme's bucket rings by position.
    """

    def __init__(self, windows: Iterable[Window]) -> None:
        self.windows: tuple[Window, ...] = tuple(windows)

    @overload
    def __getitem__(self, index: int) -> Window: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Window, ...]: ...
    def __getitem__(self, index: int | slice) -> Window | tuple[Window, ...]:
        return self.windows[index]

    def __len__(self) -> int:
        return len(self.windows)

    def names(self) -> tuple[str, ...]:
        return tuple(w.name for w in self.windows)

    def get(self, name: str) -> Window:
        for window in self.windows:
            if window.name == name:
                return window
        raise UnknownWindow(name)


ONE_HOUR = Window("1h", HOUR_S, 60, HOUR_S / 4)
ONE_DAY = Window("24h", DAY_S, 15 * 60, 6 * HOUR_S)
ONE_WEEK = Window("7d", 7 * DAY_S, 2 * HOUR_S, 42 * HOUR_S)

WINDOWS = Windows((ONE_HOUR, ONE_DAY, ONE_WEEK))
#: The API's default window.
DEFAULT_WINDOW = ONE_DAY

#: The rising signal compares the last RECENT_S of the 1h window with the rest of it.
RISING_WINDOW = ONE_HOUR
RECENT_S = 5 * 60
