"""The `RESULT {json}` line every benchmark script prints last (see benchmarks/README.md)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, TypedDict

PREFIX = "RESULT "


class Result(TypedDict, total=False):
    target: str
    value: float
    unit: str
    figure: str
    method: str
    cores: int


def emit(script: str, results: list[Result]) -> None:
    payload: dict[str, Any] = {
        "script": script,
        "cores": os.cpu_count() or 1,
        "results": list(results),
    }
    sys.stdout.flush()
    print(PREFIX + json.dumps(payload, separators=(",", ":")), flush=True)


def parse(output: str) -> dict[str, Any] | None:
    """The last RESULT line of a script's output, or None."""
    for line in reversed(output.splitlines()):
        if line.startswith(PREFIX):
            try:
                parsed = json.loads(line[len(PREFIX) :])
            except ValueError:
                return None
            return parsed if isinstance(parsed, dict) else None
    return None
