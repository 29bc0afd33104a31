"""The live display while a replay runs: rate, p95, errors, in-flight, consumer lag, KEDA.

One rich `Live` table refreshed each second from the replay's tick; on a non-terminal
stdout rich prints nothing until the end, so CI logs stay clean.
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from loadgen.replay import Samples


class Counts(Protocol):
    """What the display reads: a process's `Stats` or all workers' `Progress`."""

    @property
    def sent(self) -> int: ...

    @property
    def errors(self) -> int: ...

    @property
    def rejected(self) -> int: ...

    @property
    def in_flight(self) -> int: ...

    def recent_rate(self, now: float, window_s: int = 5) -> float: ...

    def recent_p95(self, now: float, window_s: int = 5) -> float: ...


class LiveProgress:
    def __init__(self, scheduled_total: int, duration_s: float, console: Console | None = None):
        self.console = console or Console()
        self.scheduled_total = scheduled_total
        self.duration_s = duration_s
        self.live = Live(console=self.console, refresh_per_second=2, transient=False)

    def __enter__(self) -> LiveProgress:
        self.live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.live.__exit__(exc_type, exc, tb)

    def tick(self, elapsed: float, stats: Counts, samples: Samples) -> None:
        self.live.update(self.render(elapsed, stats, samples))

    def render(self, elapsed: float, stats: Counts, samples: Samples) -> Group:
        head = Table.grid(padding=(0, 2))
        for _ in range(7):
            head.add_column(justify="right")
        head.add_row("elapsed", "sent", "rate/s", "p95 (5 s)", "in flight", "4xx", "errors")
        head.add_row(
            f"{elapsed:,.0f}/{self.duration_s:,.0f} s",
            f"{stats.sent:,}/{self.scheduled_total:,}",
            f"{stats.recent_rate(elapsed):,.1f}",
            f"{stats.recent_p95(elapsed) * 1000:,.0f} ms",
            f"{stats.in_flight:,}",
            f"{stats.rejected:,}",
            f"[red]{stats.errors:,}[/red]" if stats.errors else "0",
        )
        parts: list[Table] = [head]
        lag = samples.latest_lag()
        keda = samples.latest_keda()
        if lag or keda:
            side = Table("consumer group / topic", "lag", box=None, padding=(0, 2))
            for name, total in sorted(lag.items()):
                side.add_row(name, f"{total:,}")
            for name, replicas in sorted(keda.items()):
                side.add_row(f"KEDA {name}", "-" if replicas is None else f"{replicas} replicas")
            parts.append(side)
        return Group(*parts)
