"""Record a scenario into a trace file: `memestream loadgen record`."""

from __future__ import annotations

from pathlib import Path

from loadgen.scenarios import generate, get_scenario, header_for
from loadgen.trace import TraceHeader, TraceRecord, write_trace


def build(
    scenario_name: str, seed: int, scale: float = 1.0
) -> tuple[TraceHeader, list[TraceRecord]]:
    scenario = get_scenario(scenario_name).scaled(scale)
    records = list(generate(scenario, seed))
    return header_for(scenario, seed, scale, len(records)), records


def record(scenario_name: str, seed: int, out: Path, scale: float = 1.0) -> TraceHeader:
    header, records = build(scenario_name, seed, scale)
    write_trace(out, header, records)
    return header
