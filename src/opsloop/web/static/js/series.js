// One series: values, anomaly scores, alarms and the forecast band ahead of now (and, when the
// crossing was read from the last hour's pace, that pace's line and band).
(function () {
  "use strict";
  const RANGES = { "1h": [3600, "15s"], "6h": [21600, "1m"], "24h": [86400, "5m"], "7d": [604800, "30m"] };
  let plot = null;
  // The stored score is 1 - p. It is drawn as surprise on a log scale of p: 0 at p = 1, 1 at
  // p = 0.001 (the default alarm level) or below. p is uniform on [0, 1] when nothing is wrong,
  // so 1 - p itself would draw a normal series anywhere between 0 and 1; on this scale it
  // stays low (p = 0.5 is 0.1) and only the rare rises.
  const surprise = (score) => Math.min(1, -Math.log10(Math.max(1e-12, 1 - score)) / 3);
  const pOf = (v) => (10 ** (-3 * v)).toPrecision(1);

  async function getJSON(url) {
    const resp = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (resp.status === 401) { window.location.href = "/login"; return null; }
    if (resp.status === 404) return null;
    if (!resp.ok) throw new Error(url + ": HTTP " + resp.status);
    return resp.json();
  }

  function params(el, extra) {
    const p = new URLSearchParams({ name: el.dataset.name, ...extra });
    Object.entries(JSON.parse(el.dataset.labels)).forEach(([k, v]) => p.append("label", k + "=" + v));
    return p.toString();
  }

  async function load(el, range) {
    const [span, step] = RANGES[range];
    const threshold = el.dataset.threshold;
    const fparams = { horizon: Math.round(span / 4) + "s" };
    if (threshold) fparams.threshold = threshold;
    const [values, scores, alarms, forecast] = await Promise.all([
      getJSON("/api/v1/metrics/query?" + params(el, { since: span + "s", step })),
      getJSON("/api/v1/metrics/scores?" + params(el, { since: span + "s", step })),
      getJSON("/api/v1/metrics/alarms?" + params(el, { since: span + "s" })),
      getJSON("/api/v1/metrics/forecast?" + params(el, fparams)),
    ]);
    if (!values) return;
    const match = (s) => JSON.stringify(s.labels) === JSON.stringify(JSON.parse(el.dataset.labels));
    const vs = (values.series.find(match) || values.series[0] || { points: [] }).points;
    const ss = scores ? (scores.series.find(match) || { points: [] }).points : [];
    const al = alarms ? alarms.alarms.filter(match) : [];
    const band = forecast ? forecast.band : [];
    const recent = forecast && forecast.recent_band ? forecast.recent_band : [];
    el.dataset.points = String(vs.length);
    el.dataset.alarms = String(al.length);
    el.dataset.forecast = String(band.length);
    el.dataset.recent = String(recent.length);
    const times = new Set();
    vs.forEach((p) => times.add(p[0]));
    ss.forEach((p) => times.add(p[0]));
    al.forEach((a) => times.add(a.time));
    band.forEach((b) => times.add(b[0]));
    recent.forEach((b) => times.add(b[0]));
    const xs = Array.from(times).sort((a, b) => a - b);
    const idx = new Map(xs.map((t, i) => [t, i]));
    const col = () => new Array(xs.length).fill(null);
    const v = col(), s = col(), a = col(), fm = col(), fl = col(), fh = col();
    const rm = col(), rl = col(), rh = col();
    vs.forEach((p) => { v[idx.get(p[0])] = p[1]; });
    ss.forEach((p) => { s[idx.get(p[0])] = surprise(p[1]); });
    const drawn = ss.map((p) => surprise(p[1])).sort((x, y) => x - y);
    el.dataset.scoreMedian = drawn.length ? String(drawn[Math.floor(drawn.length / 2)]) : "";
    el.dataset.scoreTop = drawn.length ? String(drawn[drawn.length - 1]) : "";
    al.forEach((x) => {
      // mark the alarm at the nearest value
      const i = idx.get(x.time);
      let best = null, bestDist = Infinity;
      vs.forEach((p) => { const d = Math.abs(p[0] - x.time); if (d < bestDist) { bestDist = d; best = p[1]; } });
      a[i] = best;
    });
    band.forEach((b) => { const i = idx.get(b[0]); fm[i] = b[1]; fl[i] = b[2]; fh[i] = b[3]; });
    recent.forEach((b) => { const i = idx.get(b[0]); rm[i] = b[1]; rl[i] = b[2]; rh[i] = b[3]; });
    if (plot) plot.destroy();
    el.replaceChildren();
    const opts = {
      width: Math.max(el.clientWidth, 320), height: 320,
      scales: { x: { time: true }, score: { range: [0, 1] } },
      axes: [
        { stroke: "#94a3b8" },
        { stroke: "#94a3b8", size: 60 },
        { scale: "score", side: 1, stroke: "#f59e0b", grid: { show: false }, size: 50,
          splits: () => [0, 1 / 3, 2 / 3, 1], values: (u, splits) => splits.map(pOf) },
      ],
      series: [
        {},
        { label: "value", stroke: "#3b82f6", width: 1.5, spanGaps: true },
        { label: "p", scale: "score", stroke: "#f59e0b", width: 1, spanGaps: true,
          value: (u, v) => (v == null ? "--" : (10 ** (-3 * v)).toPrecision(2)) },
        { label: "alarm", stroke: "#ef4444", width: 0, points: { show: true, size: 9, fill: "#ef4444" } },
        { label: "forecast", stroke: "#a78bfa", width: 1.5, dash: [6, 4], spanGaps: true },
        { label: "low", stroke: "#a78bfa55", width: 1, dash: [2, 4], spanGaps: true },
        { label: "high", stroke: "#a78bfa55", width: 1, dash: [2, 4], spanGaps: true },
        { label: "last hour's pace", stroke: "#f472b6", width: 1.5, dash: [6, 4], spanGaps: true },
        { label: "pace low", stroke: "#f472b655", width: 1, dash: [2, 4], spanGaps: true },
        { label: "pace high", stroke: "#f472b655", width: 1, dash: [2, 4], spanGaps: true },
      ],
    };
    plot = new uPlot(opts, [xs, v, s, a, fm, fl, fh, rm, rl, rh], el);
    const eta = document.getElementById("series-eta");
    if (forecast && forecast.eta) {
      const verb = forecast.direction === "down" ? "fall to " : "reach ";
      eta.textContent = "Forecast to " + verb + threshold + " at " + new Date(forecast.eta * 1000).toLocaleString()
        + (forecast.eta_source === "recent" ? " (at the pace of the last hour)" : "");
    } else if (threshold) {
      eta.textContent = "No crossing of " + threshold + " forecast in the next " + Math.round(span / 4 / 3600) + " h.";
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const el = document.getElementById("series-chart");
    if (!el) return;
    const go = (r) => load(el, r).catch((e) => { el.dataset.error = String(e); console.warn(e); });
    document.querySelectorAll("button.range").forEach((b) => b.addEventListener("click", () => {
      document.querySelectorAll("button.range").forEach((x) => x.classList.remove("active"));
      b.classList.add("active");
      go(b.dataset.range);
    }));
    go("6h");
  });
})();
