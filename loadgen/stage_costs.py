"""CPU cost per pipeline stage, from py-spy samples of the platform's processes during a run.

Why a sampling profiler: the stages of one meme run in five processes (API, render worker and
its render pool, analytics, trending, inference), so a timer in the code would see only its
own process and miss library time. py-spy samples every process's Python stacks from outside
(no code change, `--nonblocking` so it never pauses them) while the load runs; each sample is
charged to a stage by the innermost frame that names one (a PostgreSQL call made by the API is
PostgreSQL, not API). py-spy also samples threads blocked inside C calls, so sample counts
overstate CPU: each process's CPU seconds as the kernel counts them (psutil, its render pool
included) are split between stages in proportion to its samples. Divided by the memes rendered
in the same window, that is the CPU cost per meme of each stage. Time inside C extensions
counts for the Python frame that called them.

Run: `python -m loadgen.stage_costs --stack-dir /tmp/ms-load-burst-.../stack --duration 120`
(needs `py-spy` on PATH or `--py-spy`); prints and writes the table as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import psutil

from loadgen.memory import discover_pids

AI_OTHER = "ai (other models)"
#: Path fragment of an AI task's module -> its stage.
AI_TASKS = {"moderat": "moderation", "sentiment": "sentiment"}
#: Stage -> path fragments of the frames it owns; the first stage matching a frame, walking
#: from the innermost frame outwards, gets the sample.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("moderation", ("moderat",)),
    ("sentiment", ("sentiment",)),
    (AI_OTHER, ("domain/ai/", "onnxruntime", "tokenizers", "transformers", "torch/")),
    ("render", ("domain/rendering/", "PIL/", "numpy/")),
    ("object store", ("sinks/storage/", "minio/", "urllib3/", "aiobotocore", "botocore/")),
    ("postgresql", ("psycopg", "sinks/postgres/")),
    ("redis", ("redis/", "sinks/redis/")),
    ("analytics (chdb)", ("streams/analytics", "clickhouse_connect", "chdb")),
    ("trending", ("streams/trending/",)),
    ("feed", ("api/feed/", "nats/")),
    ("kafka + avro", ("confluent_kafka", "producers/", "fastavro", "aiokafka", "kafka/")),
    ("stream framework (faust)", ("faust/", "mode/", "streams/")),
    ("api (http, validation)", ("api/", "fastapi/", "starlette/", "uvicorn/", "pydantic")),
    ("event loop", ("asyncio/", "uvloop", "selectors.py", "threading.py", "concurrent/")),
)


def stage_of(frames: list[str]) -> str:
    """The stage of one stack (outermost frame first). Model code (backends, batching) is
    charged to the task that called it: moderation or sentiment when an outer frame says so."""
    for frame in reversed(frames):
        for stage, fragments in STAGES:
            if any(f in frame for f in fragments):
                if stage == AI_OTHER:
                    tasks = (t for f in reversed(frames) for k, t in AI_TASKS.items() if k in f)
                    return next(tasks, stage)
                return stage
    return "other"


def parse_raw(text: str) -> Counter[str]:
    """Samples per stage from py-spy's `raw` (collapsed stacks) output."""
    out: Counter[str] = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        out[stage_of(stack.split(";"))] += int(count)
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (the render pool) so far."""
    try:
        proc = psutil.Process(pid)
        total = sum(proc.cpu_times()[:2])
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += sum(child.cpu_times()[:2])
    except psutil.Error:
        return 0.0
    return total


def profile(
    pids: dict[str, int], duration_s: int, rate: int, py_spy: str
) -> tuple[dict[str, Counter[str]], dict[str, float]]:
    """Samples per stage per process, all processes sampled at once for `duration_s`, and each
    process's CPU seconds meanwhile (psutil: the samples say where, the kernel says how much;
    py-spy also samples threads blocked in C calls, so its counts overstate CPU)."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    folder = Path(tempfile.mkdtemp(prefix="stage-costs-"))
    procs = {}
    for name, pid in pids.items():
        args = [py_spy, "record", "--pid", str(pid), "--duration", str(duration_s)]
        args += ["--rate", str(rate), "--format", "raw", "--nonblocking", "--full-filenames"]
        args += ["--subprocesses", "--output", str(folder / f"{name}.txt")]
        procs[name] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    out: dict[str, Counter[str]] = {}
    for name, proc in procs.items():
        proc.wait(timeout=duration_s + 120)
        path = folder / f"{name}.txt"
        out[name] = parse_raw(path.read_text()) if path.exists() else Counter()
    used = {name: max(0.0, cpu_seconds(pid) - before[name]) for name, pid in pids.items()}
    return out, used


def table(
    samples: dict[str, Counter[str]], cpu: dict[str, float], memes: int | None, duration_s: float
) -> dict[str, object]:
    """CPU seconds per stage: each process's measured CPU split by its samples' stages; per
    meme when `memes` (rendered in the same window) is known."""
    by_stage: Counter[str] = Counter()
    for name, counts in samples.items():
        n = sum(counts.values())
        for stage, k in counts.items():
            by_stage[stage] += cpu.get(name, 0.0) * k / n if n else 0.0
    total = sum(by_stage.values())
    rows = [
        {
            "stage": stage,
            "cpu_s": round(seconds, 2),
            "share_pct": round(100 * seconds / total, 1) if total else 0.0,
            "cpu_ms_per_meme": round(1000 * seconds / memes, 2) if memes else None,
        }
        for stage, seconds in by_stage.most_common()
    ]
    return {
        "duration_s": duration_s,
        "cores": os.cpu_count(),
        "cpu_s_total": round(total, 2),
        "cores_busy": round(total / duration_s, 2) if duration_s else None,
        "memes": memes,
        "cpu_ms_per_meme_total": round(1000 * total / memes, 2) if memes else None,
        "stages": rows,
        "process_cpu_s": {name: round(v, 2) for name, v in cpu.items()},
        "process_samples": {name: dict(counts.most_common()) for name, counts in samples.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stack-dir", type=Path, required=True)
    parser.add_argument("--duration", type=int, default=120)
    parser.add_argument("--rate", type=int, default=20)
    parser.add_argument("--memes", type=int, default=None, help="memes rendered meanwhile")
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    parser.add_argument("-o", "--output", type=Path, default=None)
    args = parser.parse_args()
    pids = discover_pids(args.stack_dir)
    if not pids:
        raise SystemExit(f"no API or worker pid under {args.stack_dir}/run")
    started_at = datetime.now(UTC).isoformat()
    samples, cpu = profile(pids, args.duration, args.rate, args.py_spy)
    result = table(samples, cpu, args.memes, args.duration)
    result["rate_hz"] = args.rate
    result["started_at"] = started_at
    result["pids"] = pids
    result["load_avg"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
