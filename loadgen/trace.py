"""Deterministic trace records: when, who, what, with which payload; stored as JSONL.

A trace is the whole experiment, so two replays of one file send the same requests at
the same offsets. The first line is a header (`{"trace": {...}}`) naming the scenario,
seed and scale; every other line is one `TraceRecord`.

Payloads never hold server-side ids: a read of "the 17th meme generated in this trace"
is `{"ref": 17}`, resolved at replay time to whatever id the server gave that meme.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class TraceRecord:
    at: float  # seconds since the start of the trace
    user: str
    action: str
    payload: dict[str, Any] = field(default_factory=dict)
    seq: int = 0  # position in the trace; `ref`s point at the `seq` of a generate

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, line: bytes | str) -> TraceRecord:
        raw = orjson.loads(line)
        return cls(
            at=float(raw["at"]),
            user=str(raw["user"]),
            action=str(raw["action"]),
            payload=dict(raw.get("payload") or {}),
            seq=int(raw.get("seq", 0)),
        )


@dataclass(frozen=True, slots=True)
class TraceHeader:
    scenario: str
    seed: int
    scale: float
    duration_s: float
    records: int
    version: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        return orjson.dumps({"trace": asdict(self)})


def write_trace(path: Path, header: TraceHeader, records: Iterable[TraceRecord]) -> int:
    """Write header and records; returns how many records were written."""
    count = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        out.write(header.to_json() + b"\n")
        for record in records:
            out.write(record.to_json() + b"\n")
            count += 1
    return count


def read_header(path: Path) -> TraceHeader | None:
    with path.open("rb") as src:
        first = src.readline()
    raw = orjson.loads(first) if first.strip() else {}
    if not isinstance(raw, dict) or "trace" not in raw:
        return None
    return TraceHeader(**raw["trace"])


def read_trace(path: Path) -> Iterator[TraceRecord]:
    """Records in file order (which is arrival order for recorded traces)."""
    with path.open("rb") as src:
        for line in src:
            if not line.strip():
                continue
            if line.startswith(b'{"trace"'):
                continue
            yield TraceRecord.from_json(line)
