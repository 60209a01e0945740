// Pipeline DAGs: draw an arrow from each step box to the boxes of the steps that use its
// outputs. The boxes are laid out by CSS (one column per topological layer); this only adds
// an SVG of curves behind them, redrawn on resize and when htmx swaps in new content.
(function () {
  "use strict";
  const NS = "http://www.w3.org/2000/svg";
  let serial = 0;

  function el(name, attrs) {
    const node = document.createElementNS(NS, name);
    Object.entries(attrs).forEach(([k, v]) => node.setAttribute(k, String(v)));
    return node;
  }

  function draw(dag) {
    const old = dag.querySelector(":scope > svg.dag-edges");
    if (old) old.remove();
    const nodes = new Map();
    dag.querySelectorAll("[data-step]").forEach((n) => nodes.set(n.dataset.step, n));
    const origin = dag.getBoundingClientRect();
    const svg = el("svg", { class: "dag-edges", width: dag.scrollWidth, height: dag.scrollHeight, "aria-hidden": "true" });
    const id = "dag-arrow-" + ++serial;
    const marker = el("marker", { id: id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" });
    marker.appendChild(el("path", { d: "M0,0 L10,5 L0,10 z" }));
    const defs = el("defs", {});
    defs.appendChild(marker);
    svg.appendChild(defs);
    let edges = 0;
    nodes.forEach((node) => {
      let upstream = [];
      try {
        upstream = JSON.parse(node.dataset.upstream || "[]");
      } catch (e) {
        console.warn("bad data-upstream on step", node.dataset.step);
      }
      const b = node.getBoundingClientRect();
      upstream.forEach((name) => {
        const from = nodes.get(name);
        if (!from) return;
        const a = from.getBoundingClientRect();
        const x1 = a.right - origin.left + dag.scrollLeft;
        const y1 = a.top + a.height / 2 - origin.top + dag.scrollTop;
        const x2 = b.left - origin.left + dag.scrollLeft - 2;
        const y2 = b.top + b.height / 2 - origin.top + dag.scrollTop;
        const mid = (x1 + x2) / 2;
        const path = el("path", { d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`, "marker-end": `url(#${id})` });
        path.dataset.from = name;
        path.dataset.to = node.dataset.step;
        svg.appendChild(path);
        edges += 1;
      });
    });
    dag.prepend(svg);
    dag.dataset.edges = String(edges);
  }

  function drawIn(root) {
    if (!root || !root.querySelectorAll) return;
    if (root.matches && root.matches("[data-dag]")) draw(root);
    root.querySelectorAll("[data-dag]").forEach(draw);
  }

  let pending = null;
  window.addEventListener("resize", () => {
    if (pending) clearTimeout(pending);
    pending = setTimeout(() => drawIn(document.body), 150);
  });
  document.addEventListener("DOMContentLoaded", () => drawIn(document.body));
  document.addEventListener("htmx:load", (event) => drawIn(event.detail && event.detail.elt));
})();
