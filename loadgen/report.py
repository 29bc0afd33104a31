"""The replay's report: JSON for machines, one HTML page with plots for people, one line for CI.

Plots (matplotlib, embedded as PNG so the page works offline): latency percentiles over
time, throughput and errors per second, the generator's worst lateness per second, consumer
lag per group, the replicas KEDA would request per ScaledObject, and RSS per process.

`summary` holds the figures issue 16 compares across runs. Loss and duplicates come from the
ledger (loadgen/ledger.py), generation time and memes/min from the meme rows it read back
(loadgen/generation.py), the cache hit ratio from the API's counters (loadgen/cache_ratio.py)
and feed delivery from a subscriber held open (loadgen/feed_probe.py); a figure not measured
in a run is null, not guessed. Every report carries the core count and load average.
A run is `valid` only if the generator kept its schedule: lateness p99 at most 10 ms and no
record dropped because the client was saturated; `invalid_reasons` says why not.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from loadgen import generation
from loadgen.histograms import LatencyHistogram
from loadgen.keda import ScaledObject
from loadgen.ledger import LedgerCheck
from loadgen.memory import growth_pct, leak_verdict
from loadgen.replay import ReplayResult

#: Lateness p99 above which the generator, not the platform, set the pace.
MAX_LATENESS_P99_S = 0.010
#: Actions whose latency is an API read (feed streams are measured apart).
READ_ACTIONS = ("get_meme", "get_image", "view", "trending")


def build(
    result: ReplayResult,
    scaled_objects: list[ScaledObject],
    ledger: LedgerCheck | None = None,
    *,
    feed: dict[str, Any] | None = None,
    cache: dict[str, Any] | None = None,
    host: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The report; `ledger` (loadgen/ledger.py), `feed` (loadgen/feed_probe.py), `cache`
    (loadgen/cache_ratio.py) and `host` (loadgen/host.py) are what was measured around the
    replay, None when not measured."""
    stats = result.stats
    sent_window = max(result.duration_s, 1e-9)
    rss_series = _rss_series(result.samples.rss)
    peak_lag: dict[str, int] = {}
    peak_keda: dict[str, int] = {}
    for sample in result.samples.lag:
        for name, lag in sample["lags"].items():
            peak_lag[name] = max(peak_lag.get(name, 0), lag["total"])
        for name, replicas in sample["keda"].items():
            if replicas is not None:
                peak_keda[name] = max(peak_keda.get(name, 0), replicas)
    report: dict[str, Any] = {
        "trace": asdict(result.header) if result.header else None,
        "run": {
            "target": result.target,
            "speed": result.speed,
            "started_at": result.started_at,
            "duration_s": round(result.duration_s, 3),
            "scheduled": result.scheduled,
            "sent": stats.sent,
            "ok": sum(a.ok for a in stats.actions.values()),
            "rejected": stats.rejected,
            "errors": stats.errors,
            "skipped": stats.skipped,
            "undrained": result.undrained,
            "throughput_rps": round(stats.sent / sent_window, 2),
            "created_memes": len(stats.created),
            "waited_for_connection": stats.queued,
        },
        "lateness_s": stats.lateness.summary(),
        "latency_s": stats.overall.summary(),
        "hdr": stats.overall.encode(),
        "actions": {name: a.as_dict() for name, a in sorted(stats.actions.items())},
        "skipped": {
            name: dict(a.skipped) for name, a in sorted(stats.actions.items()) if a.skipped
        },
        "timeline": stats.timeline.rows(),
        "lag": {"samples": result.samples.lag, "peak": peak_lag},
        "keda": {
            "scaled_objects": [asdict(so) for so in scaled_objects],
            "peak_replicas": peak_keda,
        },
        "rss": {
            "samples": result.samples.rss,
            "verdict": {name: leak_verdict(series) for name, series in rss_series.items()},
        },
    }
    report["ledger"] = ledger.as_dict() if ledger is not None else None
    started = datetime.fromisoformat(result.started_at)
    report["generation"] = (
        generation.figures(ledger.memes, started, result.duration_s) if ledger else None
    )
    report["feed_delivery"] = feed
    report["cache"] = cache
    report["host"] = host
    report["summary"] = summary(result, report)
    report["summary_line"] = summary_line(report)
    return report


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def summary(result: ReplayResult, report: dict[str, Any]) -> dict[str, Any]:
    """The comparable figures of a run (null where not measured yet) and its validity."""
    stats = result.stats
    reads = LatencyHistogram()
    for name in READ_ACTIONS:
        if name in stats.actions:
            reads.merge(stats.actions[name].latency)
    generate = stats.actions.get("generate")
    lateness_p99 = stats.lateness.percentile(99)
    reasons = []
    if stats.sent == 0:
        reasons.append("nothing was sent")
    if lateness_p99 > MAX_LATENESS_P99_S:
        reasons.append(
            f"generator lateness p99 {_ms(lateness_p99):g} ms > {_ms(MAX_LATENESS_P99_S):g} ms"
        )
    saturated = sum(a.skipped.get("client saturated", 0) for a in stats.actions.values())
    if saturated:
        reasons.append(f"{saturated:,} records dropped: client saturated")
    growth = [
        pct
        for series in _rss_series(result.samples.rss).values()
        if (pct := growth_pct(series)) is not None
    ]
    gen, cache, feed = report.get("generation"), report.get("cache"), report.get("feed_delivery")
    host = report.get("host") or {}
    return {
        "scale": result.header.scale if result.header else None,
        "cores": host.get("cores"),
        "load_avg_1m_mean": host.get("load_avg_1m_mean"),
        "duration_s": round(result.duration_s, 3),
        "requests": stats.sent,
        "server_errors": stats.errors,
        "lost": report["ledger"]["lost"] if report.get("ledger") else None,
        "duplicated_effects": report["ledger"]["duplicated_effects"]
        if report.get("ledger")
        else None,
        "api_read_p95_ms": _ms(reads.percentile(95)) if reads.count else None,
        "generate_accept_p95_ms": _ms(generate.latency.percentile(95))
        if generate and generate.sent
        else None,
        "generation_p95_s": gen["p95_s"] if gen else None,
        "memes_per_min": gen["memes_per_min"] if gen else None,
        "cache_hit_ratio": cache["ratio"] if cache else None,
        "feed_delivery_p99_ms": _ms(feed["latency_s"]["p99"])
        if feed and feed.get("latency_s")
        else None,
        "rss_growth_pct": round(max(growth), 2) if growth else None,
        "max_lag": dict(report["lag"]["peak"]) if report["lag"]["samples"] else None,
        "generator_lateness_p99_ms": _ms(lateness_p99),
        "valid": not reasons,
        "invalid_reasons": reasons,
    }


def _rss_series(samples: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """Per process: (t, MiB) in sample order."""
    series: dict[str, list[tuple[float, float]]] = {}
    for sample in samples:
        for name, mb in sample["mb"].items():
            series.setdefault(name, []).append((sample["t"], mb))
    return series


def summary_line(report: dict[str, Any]) -> str:
    run, lat, trace = report["run"], report["latency_s"], report["trace"] or {}
    name = f"{trace.get('scenario', 'trace')} x{trace.get('scale', 1):g}"
    parts = [
        f"{name} -> {run['target']} at {run['speed']:g}x: {run['sent']:,} sent in "
        f"{run['duration_s']:.0f} s ({run['throughput_rps']:,.1f}/s)",
        f"p50 {lat['p50'] * 1000:.0f} ms p95 {lat['p95'] * 1000:.0f} ms "
        f"p99 {lat['p99'] * 1000:.0f} ms",
        f"{run['errors']:,} errors, {run['rejected']:,} 4xx, {run['skipped']:,} skipped",
        f"generator lateness p99 {report['lateness_s']['p99'] * 1000:.1f} ms",
    ]
    if not report["summary"]["valid"]:
        parts.append(f"INVALID ({'; '.join(report['summary']['invalid_reasons'])})")
    if report["lag"]["peak"]:
        group, lag = max(report["lag"]["peak"].items(), key=lambda kv: kv[1])
        parts.append(f"peak lag {lag:,} ({group})")
    if report["keda"]["peak_replicas"]:
        keda = ", ".join(f"{k}={v}" for k, v in sorted(report["keda"]["peak_replicas"].items()))
        parts.append(f"KEDA peak {keda}")
    host = report.get("host")
    if host:
        parts.append(
            f"{host['cores']} cores, load average {host['load_avg_1m_mean']} "
            f"(max {host['load_avg_1m_max']})"
        )
    leaks = [n for n, v in report["rss"]["verdict"].items() if v["suspected_leak"]]
    if report["rss"]["verdict"]:
        parts.append(f"suspected leak: {', '.join(leaks)}" if leaks else "no leak")
    return "; ".join(parts)


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _plots(report: dict[str, Any]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots: list[tuple[str, str]] = []
    rows = report["timeline"]
    if rows:
        t = [r["t"] for r in rows]
        fig, ax = plt.subplots(figsize=(9, 3.2))
        for key in ("p50", "p95", "p99"):
            ax.plot(t, [r[key] * 1000 for r in rows], label=key)
        ax.set(xlabel="s", ylabel="ms", title="Latency percentiles per second")
        ax.legend()
        plots.append(("Latency over time", _png(fig)))
        plt.close(fig)

        fig, ax = plt.subplots(figsize=(9, 3.2))
        ax.plot(t, [r["requests"] for r in rows], label="requests/s")
        ax.plot(t, [r["errors"] for r in rows], label="errors/s", color="red")
        ax.set(xlabel="s", title="Throughput and errors")
        ax.legend()
        plots.append(("Throughput and errors", _png(fig)))
        plt.close(fig)

        fig, ax = plt.subplots(figsize=(9, 3.2))
        ax.plot(t, [r["lateness_max"] * 1000 for r in rows], label="worst per second")
        ax.axhline(MAX_LATENESS_P99_S * 1000, color="red", linestyle="--", label="p99 limit")
        ax.set(xlabel="s", ylabel="ms", title="Generator lateness (sent minus scheduled)")
        ax.legend()
        plots.append(("Generator lateness", _png(fig)))
        plt.close(fig)

    lag = report["lag"]["samples"]
    if lag:
        fig, ax = plt.subplots(figsize=(9, 3.2))
        for name in sorted({n for s in lag for n in s["lags"]}):
            pts = [(s["t"], s["lags"][name]["total"]) for s in lag if name in s["lags"]]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=name)
        ax.set(xlabel="s", ylabel="messages", title="Consumer lag per group")
        ax.legend(fontsize="small")
        plots.append(("Consumer lag", _png(fig)))
        plt.close(fig)

        fig, ax = plt.subplots(figsize=(9, 3.2))
        for name in sorted({n for s in lag for n in s["keda"]}):
            pts = [(s["t"], s["keda"][name]) for s in lag if s["keda"].get(name) is not None]
            ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", label=name)
        ax.set(xlabel="s", ylabel="replicas", title="Replicas KEDA would request")
        ax.legend(fontsize="small")
        plots.append(("KEDA replicas", _png(fig)))
        plt.close(fig)

    gen = report.get("generation")
    if gen and gen["per_second"]:
        fig, ax = plt.subplots(figsize=(9, 3.2))
        ax.plot([p[0] for p in gen["per_second"]], [p[1] for p in gen["per_second"]])
        ax.set(xlabel="s", ylabel="memes/s", title="Memes rendered per second (accepted in run)")
        plots.append(("Rendered memes", _png(fig)))
        plt.close(fig)

    host = report.get("host")
    if host and host["samples"]:
        fig, ax = plt.subplots(figsize=(9, 3.2))
        ax.plot([p[0] for p in host["samples"]], [p[1] for p in host["samples"]])
        ax.axhline(host["cores"], color="red", linestyle="--", label=f"{host['cores']} cores")
        ax.set(xlabel="s", ylabel="load", title="Host load average (1 min)")
        ax.legend()
        plots.append(("Host load", _png(fig)))
        plt.close(fig)

    rss = report["rss"]["samples"]
    if rss:
        fig, ax = plt.subplots(figsize=(9, 3.2))
        for name in sorted({n for s in rss for n in s["mb"]}):
            pts = [(s["t"], s["mb"][name]) for s in rss if name in s["mb"]]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=name)
        ax.set(xlabel="s", ylabel="MiB", title="Resident memory (with children)")
        ax.legend(fontsize="small")
        plots.append(("Memory", _png(fig)))
        plt.close(fig)
    return plots


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _without(data: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    return {k: v for k, v in data.items() if k != key} if data else data


def _section(title: str, data: dict[str, Any] | None) -> str:
    if not data:
        return ""
    rows = [
        [k, orjson.dumps(v).decode() if isinstance(v, dict | list) else v] for k, v in data.items()
    ]
    return f"<h2>{html.escape(title)}</h2>" + _table(["figure", "value"], rows)


def _stage_costs(costs: dict[str, Any] | None) -> str:
    """The per-stage CPU table of loadgen/stage_costs.py, when a profile was taken."""
    if not costs:
        return ""
    rows = [[r["stage"], r["cpu_s"], r["share_pct"], r["cpu_ms_per_meme"]] for r in costs["stages"]]
    head = (
        f"<h2>CPU per stage (py-spy, {costs['duration_s']} s from {costs['started_at']}, "
        f"{costs['memes']} memes rendered meanwhile, {costs['cores']} cores, load average "
        f"{costs['load_avg'][0]:.1f})</h2>"
    )
    note = f"<p>{html.escape(costs['note'])}</p>" if costs.get("note") else ""
    table = _table(["stage", "CPU s", "share %", "CPU ms per meme"], rows)
    procs = _table(["process", "CPU s"], [[k, v] for k, v in costs["process_cpu_s"].items()])
    return head + note + table + procs


def write_html(report: dict[str, Any], path: Path) -> None:
    actions = [
        [
            name,
            a["sent"],
            a["ok"],
            a["rejected"],
            a["errors"],
            sum(a["skipped"].values()),
            f"{a['latency_s']['p50'] * 1000:.1f}",
            f"{a['latency_s']['p95'] * 1000:.1f}",
            f"{a['latency_s']['p99'] * 1000:.1f}",
            ", ".join(f"{k}: {v}" for k, v in a["statuses"].items()),
            ", ".join(f"{k}: {v}" for k, v in a["skipped"].items()),
        ]
        for name, a in report["actions"].items()
    ]
    keda_rows = [
        [
            so["name"],
            so["min_replicas"],
            so["max_replicas"],
            "; ".join(
                f"{t['consumer_group']}/{t['topic']} lagThreshold={t['lag_threshold']}"
                for t in so["kafka_triggers"]
            ),
            ", ".join(so["other_triggers"]) or "-",
            report["keda"]["peak_replicas"].get(so["name"], "-"),
        ]
        for so in report["keda"]["scaled_objects"]
    ]
    leak_rows = [[n, *v.values()] for n, v in report["rss"]["verdict"].items()]
    images = "".join(
        f'<h2>{html.escape(title)}</h2><img alt="{html.escape(title)}" '
        f'src="data:image/png;base64,{data}">'
        for title, data in _plots(report)
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>Memestream load report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;
font-size:14px}}code{{background:#f4f4f4;padding:2px 4px}}</style></head><body>
<h1>Memestream load report</h1><p><code>{html.escape(report["summary_line"])}</code></p>
<h2>Summary</h2>{_table(["figure", "value"], [[k, v] for k, v in report["summary"].items()])}
{_section("Ledger (accepted vs persisted)", report.get("ledger"))}
{_section("Generation (accepted to rendered)", _without(report.get("generation"), "per_second"))}
{_section("Feed delivery (event to client)", report.get("feed_delivery"))}
{_section("Cache", report.get("cache"))}
{_section("Host", _without(report.get("host"), "samples"))}
{_stage_costs(report.get("stage_costs"))}
<h2>Actions</h2>{
        _table(
            [
                "action",
                "sent",
                "ok",
                "4xx",
                "errors",
                "skipped",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "statuses",
                "skipped because",
            ],
            actions,
        )
    }
<h2>KEDA ScaledObjects (deploy/strimzi)</h2>{
        _table(
            ["ScaledObject", "min", "max", "kafka triggers", "not evaluated", "peak replicas"],
            keda_rows,
        )
        if keda_rows
        else "<p>No ScaledObjects found.</p>"
    }
{
        "<h2>Memory</h2>"
        + _table(
            [
                "process",
                "slope MiB/min",
                "growth MiB",
                "start MiB",
                "end MiB",
                "peak MiB",
                "suspected leak",
            ],
            leak_rows,
        )
        if leak_rows
        else ""
    }
{images}
</body></html>"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
