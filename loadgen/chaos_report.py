"""The chaos run's report: `chaos.json` (the whole run) and `chaos.html` (a table of the faults
and, per fault, requests and errors per second with the fault's window shaded).

Plots are matplotlib PNGs embedded in the page, as the replay report does, so it opens offline.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import orjson

COLUMNS = (
    "lost",
    "duplicated_effects",
    "errors_by_status",
    "recovery_s",
    "accept_to_render_max_s",
    "outbox_pending",
    "requests",
    "restarted_by_supervisor",
    "fault_error",
)


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))


def _plot(name: str, fault: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = fault["timeline"]
    fig, ax = plt.subplots(figsize=(9, 2.8))
    t = [r["t"] for r in rows]
    ax.plot(t, [r["requests"] for r in rows], label="requests/s")
    ax.plot(t, [r["errors"] for r in rows], label="errors/s (5xx, transport)", color="tab:red")
    start, end = fault.get("injected_at_s"), fault.get("lifted_at_s")
    if start is not None:
        ax.axvspan(start, end if end is not None else max(t, default=start), alpha=0.2)
    ax.set(xlabel="s since the replay started", ylabel="per second", title=name)
    ax.legend(loc="upper right")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def write_html(report: dict[str, Any], path: Path) -> None:
    faults: dict[str, dict[str, Any]] = report["faults"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ("fault", *COLUMNS))
    body = "".join(
        "<tr><td>"
        + html.escape(name)
        + "</td>"
        + "".join(f"<td>{html.escape(str(fault.get(c)))}</td>" for c in COLUMNS)
        + "</tr>"
        for name, fault in faults.items()
    )
    host = html.escape(orjson.dumps(report.get("host", {})).decode())
    plan = html.escape(orjson.dumps(report.get("plan", {})).decode())
    plots = "".join(
        f'<h2>{html.escape(name)}</h2><img alt="{html.escape(name)}" '
        f'src="data:image/png;base64,{_plot(name, fault)}">'
        for name, fault in faults.items()
        if fault.get("timeline")
    )
    summary = report["summary"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "<!doctype html><meta charset=utf-8><title>Memestream chaos under load</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;"
        "padding:4px 8px;font-size:13px}table{border-collapse:collapse}</style>"
        "<h1>Faults while a mixed trace replays</h1>"
        f"<p>lost {summary['lost']}, duplicated effects {summary['duplicated_effects']}</p>"
        f"<p>host: {host}</p><p>plan: {plan}</p>"
        f"<table><tr>{head}</tr>{body}</table>{plots}",
        encoding="utf-8",
    )
