// Incident evidence: the metric around each metric signal (two hours before, one after).
(function () {
  "use strict";
  async function draw(el) {
    const at = Number(el.dataset.at);
    const p = new URLSearchParams({ name: el.dataset.metric, since: String(at - 7200), until: String(at + 3600), step: "1m" });
    Object.entries(JSON.parse(el.dataset.labels)).forEach(([k, v]) => p.append("label", k + "=" + v));
    const resp = await fetch("/api/v1/metrics/query?" + p, { credentials: "same-origin" });
    if (!resp.ok) return;
    const body = await resp.json();
    const pts = body.series.length ? body.series[0].points : [];
    el.dataset.points = String(pts.length);
    if (!pts.length) return;
    const mark = pts.map((q) => (Math.abs(q[0] - at) < 60 ? q[1] : null));
    new uPlot({
      width: Math.max(el.clientWidth, 260), height: 140, legend: { show: false },
      scales: { x: { time: true } }, axes: [{ stroke: "#94a3b8" }, { stroke: "#94a3b8" }],
      series: [{}, { stroke: "#3b82f6", width: 1.5 }, { stroke: "#ef4444", width: 0, points: { show: true, size: 8, fill: "#ef4444" } }],
    }, [pts.map((q) => q[0]), pts.map((q) => q[1]), mark], el);
  }
  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll(".evidence-chart").forEach((el) => draw(el).catch((e) => console.warn(e)));
  });
})();
