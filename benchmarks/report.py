"""Regenerate BENCHMARKS.md: every DESIGN.md target, the measured figure, method, cores.

    .venv/bin/python -m benchmarks.report [--only NAME ...] [--no-run] [--timeout S]

Runs each benchmark script that exists (`python -m benchmarks.<name>`), takes the last
`RESULT {json}` line of its output (the convention in benchmarks/README.md), stores it in
`artifacts/bench/<name>.json`, and writes the table. `--no-run` rebuilds the table from the
stored results; scripts that fail or time out are listed with their exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks._result import parse
from domain.settings import PROJECT_ROOT

BENCH_DIR = PROJECT_ROOT / "benchmarks"
ARTIFACTS = PROJECT_ROOT / "artifacts" / "bench"
DESIGN = PROJECT_ROOT.parent / "shared" / "DESIGN.md"
OUTPUT = PROJECT_ROOT / "BENCHMARKS.md"
KNOWN_SCRIPTS = (
    "render",
    "animation",
    "api",
    "cache",
    "trending",
    "feed",
    "ai",
    "clickhouse",
    "generation",
)


@dataclass(frozen=True, slots=True)
class Target:
    key: str
    what: str
    plan: str
    ours: str


# The DESIGN.md rows in order, by the key scripts report; the text is re-read from DESIGN.md.
FALLBACK_TARGETS: tuple[Target, ...] = (
    Target("api_p95", "API p95", "< 500 ms", "< 50 ms on cached reads"),
    Target("generation_p95", "image generation p95 (request accepted to rendered)", "< 3 s",
           "< 1 s"),
    Target("feed_delivery", "live-feed delivery", "< 100 ms",
           "p99 < 100 ms at 10,000 connections on one process"),
    Target("cache_hit_ratio", "cache hit ratio", "> 80 %", "> 95 % on a skewed (Zipf) read replay"),
    Target("generation_throughput", "generation throughput", "1,000 memes/min",
           "3,000 memes/min end to end on one 2-core machine"),
    Target("connections", "concurrent WebSocket connections", "10,000",
           "20,000 SSE + WebSocket on one process"),
    Target("api_requests", "API requests", "50,000/min",
           "150,000/min of mixed reads on one 2-core machine"),
    Target("image_processing", "image processing", "100 MB/s",
           "100 MB/s of input through decode, effects and encode"),
    Target("load_generator", "load generator", "-",
           "never the limit: >= 3x the heaviest scenario's peak, lateness p99 <= 10 ms"),
)  # fmt: skip

_KEY_WORDS: tuple[tuple[str, str], ...] = (
    ("api p95", "api_p95"),
    ("image generation", "generation_p95"),
    ("live-feed", "feed_delivery"),
    ("cache hit", "cache_hit_ratio"),
    ("generation throughput", "generation_throughput"),
    ("websocket", "connections"),
    ("api requests", "api_requests"),
    ("image processing", "image_processing"),
    ("load generator", "load_generator"),
)


def design_targets(path: Path = DESIGN) -> list[Target]:
    """The rows of DESIGN.md's "Targets" table (the built-in copy when it is not there)."""
    try:
        text = path.read_text()
    except OSError:
        return list(FALLBACK_TARGETS)
    section = text.split("## Targets", 1)[-1].split("\n## ", 1)[0]
    targets: list[Target] = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in {"what", ""} or set(cells[0]) <= {"-", ":"}:
            continue
        key = next((k for words, k in _KEY_WORDS if words in cells[0].lower()), None)
        key = key or re.sub(r"[^a-z0-9]+", "_", cells[0].lower()).strip("_")
        targets.append(Target(key, cells[0], cells[1], cells[2]))
    return targets or list(FALLBACK_TARGETS)


def scripts(only: list[str] | None) -> list[str]:
    found = [n for n in KNOWN_SCRIPTS if (BENCH_DIR / f"{n}.py").is_file()]
    extra = sorted(
        p.stem
        for p in BENCH_DIR.glob("*.py")
        if not p.stem.startswith("_") and p.stem not in {"report", *KNOWN_SCRIPTS}
    )
    names = found + extra
    return [n for n in names if n in only] if only else names


def run_script(name: str, timeout_s: float) -> dict[str, Any]:
    """Run one script; its RESULT payload plus how the run went."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", f"benchmarks.{name}"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        output, status = proc.stdout + proc.stderr, f"exit {proc.returncode}"
        ok = proc.returncode == 0
    except subprocess.TimeoutExpired as exc:
        output = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        status, ok = f"timed out after {timeout_s:.0f} s", False
    (ARTIFACTS / f"{name}.log").write_text(output)
    payload = parse(output) or {"script": name, "results": []}
    payload["run"] = {
        "ok": ok and bool(payload.get("results")),
        "status": status if ok or payload.get("results") else f"{status}, no RESULT line",
        "seconds": round(time.monotonic() - started, 1),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (ARTIFACTS / f"{name}.json").write_text(json.dumps(payload, indent=2))
    return payload


def stored(name: str) -> dict[str, Any] | None:
    try:
        return json.loads((ARTIFACTS / f"{name}.json").read_text())
    except (OSError, ValueError):
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(targets: list[Target], payloads: list[dict[str, Any]]) -> str:
    by_key: dict[str, list[tuple[str, dict[str, Any], int]]] = {}
    for payload in payloads:
        for result in payload.get("results", []):
            cores = int(result.get("cores") or payload.get("cores") or os.cpu_count() or 1)
            by_key.setdefault(str(result.get("target")), []).append(
                (str(payload.get("script")), result, cores)
            )
    lines = [
        "# Benchmarks",
        "",
        "Generated by `.venv/bin/python -m benchmarks.report` (or `make bench`); do not edit by "
        "hand. Targets are DESIGN.md's; each figure comes from the script named in the method "
        "column (see [benchmarks/README.md](benchmarks/README.md)). Figures are from a machine "
        "shared with other work, so treat them as lower bounds.",
        "",
        f"Machine: {os.cpu_count()} cores, {_cpu_model()}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}. Generated "
        f"{datetime.now(UTC).isoformat(timespec='minutes')}.",
        "",
        "| target | plan | ours | measured | method | cores |",
        "|---|---|---|---|---|---|",
    ]
    for t in targets:
        found = by_key.pop(t.key, [])
        if not found:
            lines.append(
                f"| {_cell(t.what)} | {_cell(t.plan)} | {_cell(t.ours)} | not measured yet | "
                "no script reports this target | - |"
            )
        for script, result, cores in found:
            figure = result.get("figure") or f"{result.get('value')} {result.get('unit', '')}"
            lines.append(
                f"| {_cell(t.what)} | {_cell(t.plan)} | {_cell(t.ours)} | **{_cell(figure)}** | "
                f"{_cell(result.get('method', ''))} (`benchmarks/{script}.py`) | {cores} |"
            )
    if by_key:
        lines += ["", "## Other figures", "", "| figure key | measured | method | cores |",
                  "|---|---|---|---|"]  # fmt: skip
        for key, found in sorted(by_key.items()):
            for script, result, cores in found:
                lines.append(
                    f"| {_cell(key)} | {_cell(result.get('figure') or result.get('value'))} | "
                    f"{_cell(result.get('method', ''))} (`benchmarks/{script}.py`) | {cores} |"
                )
    lines += ["", "## Script runs", "", "| script | status | seconds | when |", "|---|---|---|---|"]
    for payload in payloads:
        run = payload.get("run", {})
        lines.append(
            f"| `{payload.get('script')}` | {_cell(run.get('status', '?'))} | "
            f"{run.get('seconds', '-')} | {run.get('at', '-')} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", action="append", help="run only this script (repeatable)")
    parser.add_argument("--no-run", action="store_true", help="use the stored results")
    parser.add_argument("--timeout", type=float, default=900.0, help="per script, seconds")
    parser.add_argument("-o", "--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    payloads: list[dict[str, Any]] = []
    for name in scripts(None):
        if not args.no_run and (not args.only or name in args.only):
            print(f"running benchmarks/{name}.py ...", flush=True)
            payload = run_script(name, args.timeout)
            print(f"  {payload['run']['status']} in {payload['run']['seconds']} s", flush=True)
        else:
            payload = stored(name) or {}
        if payload:
            payloads.append(payload)
    args.output.write_text(render(design_targets(), payloads))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
