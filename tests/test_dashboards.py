"""Grafana dashboards and alert rules against the code: every query runs or names real metrics.

ClickHouse panels: the grafana-clickhouse-datasource macros are expanded the way the plugin
does (pkg/macros/macros.go) and the SQL runs on chDB over seeded events; it must return rows.
Prometheus panels and alert rules: every metric and label they use exists in domain.metrics.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from domain import metrics
from sinks.clickhouse import EVENT_COLUMNS, apply_schema, get_client

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "dashboards"
PROVISIONING = DASHBOARDS / "provisioning"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DATABASE = "dashboards_test"
CH_TYPE = "grafana-clickhouse-datasource"


# --- loading -----------------------------------------------------------------------------------
def load_dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows keep their panels inside


def targets(kind: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(dashboard file, panel title, target) of every target whose data source is `kind`."""
    out = []
    for name, dashboard in load_dashboards().items():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                ds = target.get("datasource") or panel.get("datasource") or {}
                if ds.get("type") == kind:
                    out.append((name, panel["title"], target))
    return out


# --- macro expansion ---------------------------------------------------------------------------
def _dt(t: datetime) -> str:
    return f"toDateTime({int(t.timestamp())})"


def _dt64(t: datetime) -> str:
    return f"fromUnixTimestamp64Milli({int(t.timestamp() * 1000)})"


def _date(t: datetime) -> str:
    return f"toDate('{t:%Y-%m-%d}')"


def _call_args(sql: str, start: int) -> tuple[list[str], int]:
    """Arguments of a macro call whose '(' is at `start`, honouring nested parentheses."""
    depth, args, current = 0, [], ""
    for i in range(start, len(sql)):
        ch = sql[i]
        if ch == "(":
            depth += 1
            if depth == 1:
                continue
        elif ch == ")":
            depth -= 1
            if depth == 0:
                args.append(current.strip())
                return [a for a in args if a], i + 1
        elif ch == "," and depth == 1:
            args.append(current.strip())
            current = ""
            continue
        current += ch
    raise ValueError(f"unbalanced macro call in {sql[start : start + 60]!r}")


def expand_macros(sql: str, frm: datetime, to: datetime, interval_s: int) -> str:
    """The plugin's macros; an unknown macro raises, so typos fail the test."""
    with_args = {
        "timeFilter": lambda c: f"{c[0]} >= {_dt(frm)} AND {c[0]} <= {_dt(to)}",
        "timeFilter_ms": lambda c: f"{c[0]} >= {_dt64(frm)} AND {c[0]} <= {_dt64(to)}",
        "dateFilter": lambda c: f"{c[0]} >= {_date(frm)} AND {c[0]} <= {_date(to)}",
        "dateTimeFilter": lambda c: (
            f"({c[0]} >= {_date(frm)} AND {c[0]} <= {_date(to)}) AND "
            f"({c[1]} >= {_dt(frm)} AND {c[1]} <= {_dt(to)})"
        ),
        "timeInterval": lambda c: (
            f"toStartOfInterval(toDateTime({c[0]}), INTERVAL {interval_s} second)"
        ),
        "timeInterval_ms": lambda c: (
            f"toStartOfInterval(toDateTime64({c[0]}, 3), INTERVAL {interval_s * 1000} millisecond)"
        ),
    }
    with_args["dt"] = with_args["dateTimeFilter"]
    plain = {
        "fromTime": _dt(frm),
        "toTime": _dt(to),
        "fromTime_ms": _dt64(frm),
        "toTime_ms": _dt64(to),
        "interval_s": str(interval_s),
    }
    out, i = "", 0
    for match in re.finditer(r"\$__(\w+)", sql):
        if match.start() < i:
            continue
        name = match.group(1)
        out += sql[i : match.start()]
        end = match.end()
        if end < len(sql) and sql[end] == "(" and name in with_args:
            args, i = _call_args(sql, end)
            out += with_args[name](args)
        elif name in plain:
            out += plain[name]
            i = end
        else:
            raise AssertionError(f"unknown ClickHouse macro $__{name}")
    out += sql[i:]
    assert "$" not in out, f"unexpanded variable left in: {out}"
    return out


def test_macro_expansion_matches_the_plugin() -> None:
    frm = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    to = frm + timedelta(hours=1)
    sql = (
        "SELECT $__timeInterval(ts) t FROM x WHERE $__timeFilter(ts) AND d >= $__fromTime "
        "AND $__dateFilter(toDate(ts)) AND s = $__interval_s"
    )
    out = expand_macros(sql, frm, to, 30)
    assert "toStartOfInterval(toDateTime(ts), INTERVAL 30 second)" in out
    assert f"ts >= toDateTime({int(frm.timestamp())}) AND ts <= toDateTime" in out
    assert "toDate(ts) >= toDate('2024-01-02')" in out
    assert out.endswith("s = 30")
    with pytest.raises(AssertionError):
        expand_macros("SELECT $__nope(x)", frm, to, 30)


# --- structure ---------------------------------------------------------------------------------
def test_dashboards_are_well_formed() -> None:
    dashboards = load_dashboards()
    assert {"overview.json", "engagement.json", "content.json", "kafka.json"} <= set(dashboards)
    provisioned = yaml.safe_load((PROVISIONING / "datasources" / "datasources.yaml").read_text())
    uids = {ds["uid"]: ds["type"] for ds in provisioned["datasources"]}
    assert uids == {"prometheus": "prometheus", "clickhouse": CH_TYPE}
    seen_uids = set()
    for name, dashboard in dashboards.items():
        assert dashboard["uid"] not in seen_uids, name
        seen_uids.add(dashboard["uid"])
        assert dashboard["title"].startswith("Memestream / ")
        ids = [p["id"] for p in panels(dashboard)]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for panel in panels(dashboard):
            assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
            assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
            if panel["type"] == "row":
                continue
            assert panel.get("targets"), f"{name}: {panel['title']} has no query"
            for target in panel["targets"]:
                ds = target.get("datasource") or panel["datasource"]
                assert uids.get(ds["uid"]) == ds["type"], f"{name}: {panel['title']}"
                if ds["type"] == CH_TYPE:
                    assert target["editorType"] == "sql" and target["rawSql"].strip()
                    assert target["queryType"] in ("timeSeries", "table")
                    assert target["format"] == (0 if target["queryType"] == "timeSeries" else 1)
                else:
                    assert target["expr"].strip()
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "dashboards.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/memestream"


REQUIRED_PANELS = {
    "overview.json": [
        "generation rate",
        "render latency p50 / p95 / p99",
        "error rate",
        "cache hit ratio",
        "consumer lag",
    ],
    "engagement.json": ["views and votes", "trending", "top templates"],
    "content.json": ["memes per template", "memes per category", "sentiment", "moderation"],
    "kafka.json": ["consumer lag per group and topic", "lag per partition"],
}


@pytest.mark.parametrize("name", sorted(REQUIRED_PANELS))
def test_dashboards_have_the_required_panels(name: str) -> None:
    titles = [p["title"].lower() for p in panels(load_dashboards()[name])]
    for wanted in REQUIRED_PANELS[name]:
        assert any(wanted in t for t in titles), f"{name}: no panel about {wanted!r}"


# --- ClickHouse panels on chDB -----------------------------------------------------------------
@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, datetime]]:
    """chDB (the process's one folder, own database) with the schema and a small event history."""
    url = f"chdb://{tmp_path_factory.getbasetemp() / 'chdb'}"
    admin = get_client(url=url)
    admin.command(f"DROP DATABASE IF EXISTS {DATABASE}")
    admin.command(f"CREATE DATABASE {DATABASE}")
    admin.close()
    client = get_client(url=f"{url}?database={DATABASE}")
    try:
        apply_schema(client)
        now = datetime.now(UTC).replace(microsecond=0)
        client.insert("events", seed_rows(now), column_names=list(EVENT_COLUMNS))
        yield client, now
    finally:
        client.close()


def seed_rows(now: datetime) -> list[list[Any]]:
    templates = [("drake", "reaction"), ("distracted", "relationship"), ("doge", "animals")]
    sentiments = ["positive", "negative", "neutral"]
    outcomes = ["ok", "ok", "flagged", "rejected"]
    rows: list[list[Any]] = []

    def add(event_id: str, event_type: str, meme: str, ts: datetime, **values: Any) -> None:
        base: dict[str, Any] = {
            "event_id": event_id,
            "event_type": event_type,
            "meme_id": meme,
            "template_id": "",
            "category": "",
            "user_id": "",
            "ts": ts,
            "render_ms": 0,
            "vote": 0,
            "sentiment": "",
            "moderation_label": "",
            "moderation_score": 0.0,
            "format": "",
            "bytes": 0,
        }
        base.update(values)
        rows.append([base[c] for c in EVENT_COLUMNS])

    for i in range(30):
        meme = f"m{i}"
        template, category = templates[i % len(templates)]
        ts = now - timedelta(minutes=55 - i)
        common = {
            "template_id": template,
            "category": category,
            "user_id": f"u{i % 7}",
            "sentiment": sentiments[i % 3],
        }
        add(f"req-{i}", "requested", meme, ts, **common)
        if i % 10 == 9:
            add(f"fail-{i}", "failed", meme, ts + timedelta(seconds=2), **common)
            continue
        add(
            f"ren-{i}",
            "rendered",
            meme,
            ts + timedelta(seconds=1),
            render_ms=80 + 13 * i,
            format=["png", "webp", "gif"][i % 3],
            bytes=40_000 + 1000 * i,
            moderation_label=outcomes[i % 4],
            moderation_score=0.1 * (i % 4),
            **common,
        )
        for v in range(i % 5 + 1):
            add(
                f"view-{i}-{v}",
                "view",
                meme,
                ts + timedelta(seconds=10 + v),
                user_id=f"viewer{v}",
                template_id=template,
            )
        for v in range(i % 3 + 1):
            add(
                f"vote-{i}-{v}",
                "vote",
                meme,
                ts + timedelta(seconds=20 + v),
                user_id=f"voter{v}",
                vote=1 if v % 3 != 2 else -1,
                template_id=template,
            )
        if i % 15 == 0:
            add(f"del-{i}", "deleted", meme, ts + timedelta(minutes=1), **common)
    return rows


CH_TARGETS = targets(CH_TYPE)


def test_there_are_clickhouse_panels() -> None:
    assert len(CH_TARGETS) >= 10


@pytest.mark.parametrize(
    ("dashboard", "title", "target"), CH_TARGETS, ids=[f"{d}:{t}" for d, t, _ in CH_TARGETS]
)
def test_clickhouse_panel_returns_rows(
    seeded: tuple[Any, datetime], dashboard: str, title: str, target: dict[str, Any]
) -> None:
    client, now = seeded
    sql = expand_macros(target["rawSql"], now - timedelta(hours=6), now + timedelta(minutes=1), 60)
    result = client.query(sql)
    assert result.result_rows, f"{dashboard}: {title!r} returned no rows:\n{sql}"
    if target["queryType"] == "timeSeries":
        assert result.column_names[0] == "time", f"{title}: a time series starts with `time`"


# --- Prometheus panels, alert rules ------------------------------------------------------------
SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?\s*(\[[^\]]*\])?")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
LABEL_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")


def check_promql(expr: str) -> list[str]:
    """Problems of one PromQL expression against the metrics registry (empty when it is fine)."""
    known = metrics.series_labels()
    problems: list[str] = []
    used: list[str] = []
    stripped = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values never look like names
    for match in SELECTOR.finditer(stripped):
        name, matchers, _ = match.groups()
        if not name.startswith("memestream_"):
            if matchers or match.group(3):
                problems.append(f"{name}: not a Memestream metric")
            continue
        if name not in known:
            problems.append(f"{name}: no such series in domain.metrics")
            continue
        used.append(name)
        for label in LABEL_MATCHER.findall(matchers or ""):
            if label not in known[name]:
                problems.append(f"{name}: no label {label!r}")
    if not used:
        problems.append("uses no Memestream metric")
    labels = set().union(*(known[n] for n in used)) if used else set()
    for group in GROUPING.findall(stripped):
        for label in (g.strip() for g in group.split(",") if g.strip()):
            if label not in labels:
                problems.append(f"grouping by {label!r}, which none of {used} has")
    return problems


def test_promql_checker_catches_mistakes() -> None:
    assert (
        check_promql('sum by (route) (rate(memestream_http_requests_total{status=~"5.."}[5m]))')
        == []
    )
    assert check_promql("memestream_nope_total")
    assert check_promql('memestream_consumer_lag{topics="x"}')
    assert check_promql("sum by (pod) (memestream_consumer_lag)")
    assert check_promql("up{job='x'}")


PROM_TARGETS = targets("prometheus")


@pytest.mark.parametrize(
    ("dashboard", "title", "target"), PROM_TARGETS, ids=[f"{d}:{t}" for d, t, _ in PROM_TARGETS]
)
def test_prometheus_panel_uses_real_metrics(dashboard: str, title: str, target: dict) -> None:
    assert check_promql(target["expr"]) == [], f"{dashboard}: {title}"


def load_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_alert_rules_are_well_formed() -> None:
    doc = yaml.safe_load(ALERTS.read_text())
    rules = load_rules()
    assert all(group["name"] and group["rules"] for group in doc["groups"])
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names)), "duplicate alert names"
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}
        assert re.fullmatch(r"\d+[smhd]", str(rule.get("for", "0s"))), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert check_promql(rule["expr"]) == [], rule["alert"]


def test_alert_rules_cover_lag_errors_and_latency() -> None:
    exprs = " ".join(r["expr"] for r in load_rules())
    for needed in (
        "memestream_consumer_lag",
        'status=~"5.."',
        "memestream_http_request_duration_seconds_bucket",
        "memestream_generation_latency_seconds_bucket",
    ):
        assert needed in exprs, needed
    p95 = [r for r in load_rules() if "histogram_quantile(0.95" in r["expr"]]
    assert len(p95) >= 3
