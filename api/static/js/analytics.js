// The analytics page: the API's /api/analytics/... series (the queries dashboards/ plots in
// Grafana), drawn with uPlot (its minified build from node_modules, served by /vendor, loaded
// by a deferred script that runs before this module) and refreshed every REFRESH_MS. The last
// good data stays on screen when the analytics store is down; a banner says so until it
// answers again. Each chart carries its plotted data as a table too (screen
// readers cannot read a canvas).
import { api, ApiError } from "/static/js/api.js";

const REFRESH_MS = 5000;
// Window (minutes) -> bucket size (minutes): about 15-60 points per line.
const STEPS = { 15: 1, 60: 1, 360: 5, 1440: 30, 10080: 360 };
const COLORS = { a: "#4ea1ff", b: "#36c26b", c: "#ef4444", d: "#f0b429" };
const AXIS = { stroke: "#9aa3b2", grid: { stroke: "#2a2f3a" }, ticks: { stroke: "#2a2f3a" } };
const CHARTS = {
  "generation-rate": {
    series: [["requested", "Requested", COLORS.a], ["rendered", "Rendered", COLORS.b],
      ["failed", "Failed", COLORS.c]],
    zero: true,
  },
  engagement: {
    series: [["views", "Views", COLORS.a], ["upvotes", "Up-votes", COLORS.b],
      ["downvotes", "Down-votes", COLORS.c]],
    zero: true,
  },
  "render-latency": {
    series: [["p50_ms", "p50", COLORS.b], ["p95_ms", "p95", COLORS.d], ["p99_ms", "p99", COLORS.c]],
    zero: false, // no renders in a bucket: no percentile, a gap in the line
  },
};

const $ = (selector) => document.querySelector(selector);
const sections = [...document.querySelectorAll(".chart[data-query]")];
const plots = new Map(); // query -> uPlot instance
let uPlot = null;
let timer = null;
let running = null;

function range() {
  const minutes = Number($("#range").value);
  return { minutes, step: STEPS[minutes] ?? 1 };
}

// Bucket start times (s) the window covers, ClickHouse's toStartOfInterval grid, plus any
// bucket the answer has that the grid missed: the whole window is drawn, counts are zero
// where no row came back and percentiles are gaps.
function timeline(rows, { minutes, step }) {
  const byTime = new Map(rows.map((row) => [seconds(row.bucket), row]));
  const times = new Set(byTime.keys());
  const size = step * 60;
  const now = Math.floor(Date.now() / 1000);
  const first = Math.floor((now - minutes * 60) / 60) * 60;
  for (let t = Math.ceil(first / size) * size; t <= now; t += size) times.add(t);
  return { times: [...times].sort((a, b) => a - b), byTime };
}

// Buckets are UTC; one without an offset is read as UTC too, not as the browser's local time.
function seconds(bucket) {
  return Date.parse(/(Z|[+-]\d\d:\d\d)$/.test(bucket) ? bucket : `${bucket}Z`) / 1000;
}

function seriesData(query, rows, window) {
  const spec = CHARTS[query];
  const { times, byTime } = timeline(rows, window);
  const columns = spec.series.map(([key]) =>
    times.map((t) => {
      const value = byTime.get(t)?.[key];
      return value ?? (spec.zero ? 0 : null);
    }));
  return [times, ...columns];
}

function size(plot) {
  const width = Math.max(200, Math.floor(plot.clientWidth));
  return { width, height: Math.round(Math.min(260, Math.max(180, width * 0.45))) };
}

function timeChart(section, query) {
  const plot = section.querySelector(".plot");
  const spec = CHARTS[query];
  return new uPlot({
    ...size(plot),
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
    axes: [{ ...AXIS }, { ...AXIS, size: 50 }],
    series: [{ label: "Time" }, ...spec.series.map(([, label, stroke]) => ({
      // Counts: uPlot's own choice (dots while they fit). Percentiles have gaps between
      // buckets without renders, so a lone bucket needs its dot to show at all.
      label, stroke, width: 2, spanGaps: false, ...(spec.zero ? {} : { points: { show: true, size: 5 } }),
    }))],
  }, [[], ...spec.series.map(() => [])], plot);
}

function templatesChart(section) {
  const plot = section.querySelector(".plot");
  const names = () => plots.get("top-templates")?.names ?? [];
  const chart = new uPlot({
    ...size(plot),
    scales: {
      x: { time: false, range: (u) => [-0.5, Math.max(0.5, u.data[0].length - 0.5)] },
      y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] },
    },
    axes: [
      { ...AXIS, splits: (u) => u.data[0], values: (u, splits) => splits.map((i) => names()[i] ?? ""),
        rotate: 0, size: 40 },
      { ...AXIS, size: 50 },
    ],
    cursor: { points: { show: false } },
    series: [
      { label: "Template", value: (u, i) => names()[i] ?? "" },
      { label: "Memes", stroke: COLORS.a, fill: "rgba(78,161,255,.45)", width: 1,
        paths: uPlot.paths.bars({ size: [0.6, 80] }), points: { show: false } },
    ],
  }, [[], []], plot);
  chart.names = [];
  return chart;
}

// The plotted data, as a table: what a screen reader (and the page's tests) can read.
function table(section, chart, query) {
  let details = section.querySelector("details");
  if (!details) {
    details = document.createElement("details");
    details.innerHTML = "<summary>Data</summary><table><thead></thead><tbody></tbody></table>";
    section.append(details);
  }
  const head = query === "top-templates"
    ? ["Template", "Memes"]
    : ["Bucket", ...CHARTS[query].series.map(([, label]) => label)];
  details.querySelector("thead").replaceChildren(row("th", head));
  const body = chart.data[0].map((x, i) => row("td", [
    query === "top-templates" ? chart.names[x] : new Date(x * 1000).toISOString(),
    ...chart.data.slice(1).map((column) => column[i] ?? ""),
  ]));
  details.querySelector("tbody").replaceChildren(...body);
}

function row(cell, values) {
  const tr = document.createElement("tr");
  for (const value of values) {
    const td = document.createElement(cell);
    td.textContent = String(value);
    tr.append(td);
  }
  return tr;
}

async function load(section, window) {
  const query = section.dataset.query;
  const params = query === "top-templates"
    ? `minutes=${window.minutes}&limit=10`
    : `minutes=${window.minutes}&step_minutes=${window.step}`;
  const answer = await api(`/api/analytics/${query}?${params}`);
  const chart = plots.get(query);
  if (query === "top-templates") {
    chart.names = answer.rows.map((r) => r.template_id);
    chart.setData([answer.rows.map((r, i) => i), answer.rows.map((r) => r.memes)]);
  } else {
    chart.setData(seriesData(query, answer.rows, window));
  }
  section.querySelector(".empty").hidden = answer.rows.length > 0;
  section.dataset.state = answer.rows.length > 0 ? "data" : "empty";
  table(section, chart, query);
}

function showError(error) {
  const banner = $("#error");
  if (error instanceof ApiError && error.status === 503) {
    banner.textContent = "The analytics store is down (ClickHouse or the analytics worker is not"
      + " answering). The charts show the last data received; retrying every few seconds.";
  } else if (error instanceof ApiError) {
    banner.textContent = `The analytics API answered ${error.status}: ${error.message}.`;
  } else {
    banner.textContent = "The API cannot be reached; retrying every few seconds.";
  }
  banner.dataset.status = error instanceof ApiError ? String(error.status) : "network";
  banner.hidden = false;
  status("down", "store down");
}

function status(state, text) {
  const pill = $("#status");
  pill.dataset.state = state;
  pill.textContent = text;
}

// One refresh at a time: a slow answer is not overtaken by the next tick's.
async function refresh() {
  if (running) return running;
  const window = range();
  running = (async () => {
    const results = await Promise.allSettled(sections.map((s) => load(s, window)));
    const failed = results.find((r) => r.status === "rejected");
    if (failed) {
      showError(failed.reason);
    } else {
      $("#error").hidden = true;
      status("live", `updated ${new Date().toLocaleTimeString()}`);
    }
    document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
  })();
  try {
    await running;
  } finally {
    running = null;
  }
}

function schedule() {
  clearInterval(timer);
  timer = setInterval(() => {
    if (document.visibilityState === "visible") refresh();
  }, REFRESH_MS);
}

async function start() {
  uPlot = window.uPlot; // the deferred classic script before this module set it, if served
  if (!uPlot) {
    $("#error").textContent = "The charting library (uPlot) is not installed on this server:"
      + " run scripts/bootstrap.sh (npm install).";
    $("#error").hidden = false;
    status("down", "no charts");
    return;
  }
  const chosen = new URLSearchParams(location.search).get("minutes");
  if (chosen && STEPS[chosen]) $("#range").value = chosen;
  for (const section of sections) {
    const query = section.dataset.query;
    plots.set(query, query === "top-templates" ? templatesChart(section) : timeChart(section, query));
  }
  new ResizeObserver(() => {
    for (const section of sections) {
      plots.get(section.dataset.query).setSize(size(section.querySelector(".plot")));
    }
  }).observe($(".charts"));
  $("#range").addEventListener("change", () => {
    const url = new URL(location.href);
    url.searchParams.set("minutes", $("#range").value);
    history.replaceState(null, "", url);
    refresh();
    schedule();
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") refresh();
  });
  await refresh();
  schedule();
}

start();
