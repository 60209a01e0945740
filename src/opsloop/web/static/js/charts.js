// Draws each [data-metric] element as a uPlot time-series chart and refreshes it.
(function () {
  "use strict";
  const REFRESH_MS = 10000;
  const PALETTE = ["#3b82f6", "#ef4444", "#10b981", "#f59e0b", "#8b5cf6", "#ec4899"];
  const charts = new Map();

  function fmt(unit) {
    return (u, v) => {
      if (v == null) return "";
      if (unit === "B/s") {
        const k = ["B/s", "kB/s", "MB/s", "GB/s"];
        let i = 0;
        while (Math.abs(v) >= 1024 && i < k.length - 1) { v /= 1024; i++; }
        return v.toFixed(1) + " " + k[i];
      }
      return unit === "%" ? v.toFixed(1) + "%" : v.toFixed(2);
    };
  }

  function seriesLabel(labels) {
    const skip = new Set(["host"]);
    const parts = Object.entries(labels).filter(([k]) => !skip.has(k)).map(([k, v]) => v);
    return parts.length ? parts.join(" ") : "value";
  }

  function align(series) {
    const times = new Set();
    series.forEach((s) => s.points.forEach((p) => times.add(p[0])));
    const xs = Array.from(times).sort((a, b) => a - b);
    const index = new Map(xs.map((t, i) => [t, i]));
    const ys = series.map((s) => {
      const col = new Array(xs.length).fill(null);
      s.points.forEach((p) => { col[index.get(p[0])] = p[1]; });
      return col;
    });
    return [xs, ...ys];
  }

  async function load(el) {
    const name = el.dataset.metric;
    const url = "/api/v1/metrics/query?name=" + encodeURIComponent(name) + "&since=1h&step=10s";
    const resp = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (resp.status === 401) { window.location.href = "/login"; return; }
    if (!resp.ok) throw new Error(name + ": HTTP " + resp.status);
    const body = await resp.json();
    const series = body.series.slice(0, PALETTE.length);
    const npoints = series.reduce((n, s) => n + s.points.length, 0);
    el.dataset.points = String(npoints);
    el.dataset.since = String(body.since);
    el.dataset.until = String(body.until);
    if (npoints === 0) return;
    const data = align(series);
    const key = series.map((s) => JSON.stringify(s.labels)).join("|");
    const existing = charts.get(el);
    if (existing && existing.key === key) { existing.plot.setData(data, true); return; }
    if (existing) existing.plot.destroy();
    el.replaceChildren();
    const unit = el.dataset.unit;
    const opts = {
      width: Math.max(el.clientWidth, 280),
      height: 180,
      scales: { x: { time: true, range: () => [Number(el.dataset.since), Number(el.dataset.until)] }, y: unit === "%" ? { range: [0, 100] } : { auto: true } },
      axes: [{ stroke: "#94a3b8" }, { stroke: "#94a3b8", size: 70, values: (u, vals) => vals.map((v) => fmt(unit)(u, v)) }],
      series: [{}].concat(series.map((s, i) => ({
        label: seriesLabel(s.labels), stroke: PALETTE[i], width: 1.5, value: fmt(unit), spanGaps: true,
      }))),
      legend: { show: series.length > 1 },
    };
    charts.set(el, { key, plot: new uPlot(opts, data, el) });
  }

  function refresh() {
    document.querySelectorAll("[data-metric]").forEach((el) => {
      load(el).catch((err) => { el.dataset.error = String(err); console.warn(err); });
    });
  }

  window.addEventListener("resize", () => {
    charts.forEach((c, el) => c.plot.setSize({ width: Math.max(el.clientWidth, 280), height: 180 }));
  });
  document.addEventListener("DOMContentLoaded", () => { refresh(); setInterval(refresh, REFRESH_MS); });
})();
