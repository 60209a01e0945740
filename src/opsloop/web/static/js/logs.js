// Logs pages: counts over time of the top templates, or of one template.
(function () {
  "use strict";
  const PALETTE = ["#3b82f6", "#ef4444", "#10b981", "#f59e0b", "#8b5cf6"];
  const STEP = 300;

  async function getJSON(url) {
    const resp = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (resp.status === 401) { window.location.href = "/login"; return null; }
    if (!resp.ok) throw new Error(url + ": HTTP " + resp.status);
    return resp.json();
  }

  function draw(el, labels, countsList) {
    const times = new Set();
    countsList.forEach((c) => c.forEach((p) => times.add(p[0])));
    const xs = Array.from(times).sort((a, b) => a - b);
    const npoints = countsList.reduce((n, c) => n + c.length, 0);
    el.dataset.points = String(npoints);
    if (npoints === 0) return;
    const index = new Map(xs.map((t, i) => [t, i]));
    const ys = countsList.map((c) => {
      const col = new Array(xs.length).fill(0);
      c.forEach((p) => { col[index.get(p[0])] = p[1]; });
      return col;
    });
    el.replaceChildren();
    const now = Date.now() / 1000;
    new uPlot({
      width: Math.max(el.clientWidth, 280), height: 200,
      scales: { x: { time: true, range: () => [now - 86400, now] } },
      axes: [{ stroke: "#94a3b8" }, { stroke: "#94a3b8" }],
      series: [{}].concat(labels.map((l, i) => ({ label: l, stroke: PALETTE[i % PALETTE.length], width: 1.5, points: { show: true } }))),
      legend: { show: labels.length > 1 },
    }, [xs, ...ys], el);
  }

  async function topTemplates(el) {
    const body = await getJSON("/api/v1/log-templates?since=24h");
    if (!body) return;
    const top = body.templates.slice(0, 5);
    const details = await Promise.all(top.map((t) => getJSON("/api/v1/log-templates/" + t.id + "?since=24h&step=5m")));
    draw(el, top.map((t) => "#" + t.id), details.map((d) => d.counts));
  }

  async function oneTemplate(el) {
    const d = await getJSON("/api/v1/log-templates/" + el.dataset.templateId + "?since=24h&step=5m");
    if (d) draw(el, ["#" + d.id], [d.counts]);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const top = document.getElementById("templates-chart");
    if (top) topTemplates(top).catch((e) => { top.dataset.error = String(e); console.warn(e); });
    const one = document.getElementById("template-chart");
    if (one) oneTemplate(one).catch((e) => { one.dataset.error = String(e); console.warn(e); });
  });
})();
