"""Fast what-ifs for the metric detector's alarm stage, and where NAB's windows stand.

The detector's models and calibrators do not depend on the gate, the spending or the
escalation: those only turn the per-row p-value into the emitted score. So the un-gated,
unspent p of every row is computed once (``DefaultMetricDetector(spend=0, gate_p=1e-300,
escalate=0)``), and the alarm stage is replayed over it in a second with other settings: the
replay of the defaults gives the same NAB scores as the detector itself (``--check``).

    .venv/bin/python benchmarks/nab_replay.py [--gate 1e-2] [--spend 4000] [--escalate 10]
        [--refractory 100] [--synthetic 101,102] [--windows] [--check]

Prints the standard / low-FP / low-FN scores on half A, half B and the full subset (the
split of ``benchmarks/nab.py``) and on the synthetic corpora asked for; ``--windows`` adds,
per labelled window, the largest raw ``-log10 p`` inside it and the share of same-width
stretches outside the windows of its file that reach it (0: none does). Used for the second
held-out round in ``benchmarks/results/nab.md``; develop on A and unseen synthetic seeds,
look at B once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from opsloop.detect.metrics import DefaultMetricDetector, EdgeAlarm
from opsloop.detect.metrics.nab_scoring import (
    PROFILES,
    FileLabels,
    probationary_length,
    score_corpus,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nab
import nab_synthetic


def raw_pvalues(series: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per row: the detector's Bonferroni p before spending and gating (1 where it scores 0)."""
    out = {}
    for name, (ts, xs) in series.items():
        det = DefaultMetricDetector(spend=0.0, gate_p=1e-300, escalate=0.0)
        out[name] = 1.0 - np.asarray(det.score_many(xs.tolist(), ts.tolist()))
    return out


def replay(
    p: np.ndarray,
    spend: float = 4000.0,
    gate_p: float = 1e-2,
    escalate: float = 10.0,
    refractory: int = 100,
    clear: int = 10,
    off: float = 0.9,
    damp: float = 0.5,
) -> np.ndarray:
    """The emitted scores of :class:`DefaultMetricDetector`'s alarm stage over raw ``p``: its
    spending (by row index: the NAB files have no missing rows), then its own
    :class:`EdgeAlarm` gate."""
    gate = EdgeAlarm(on=1.0 - gate_p, off=off, refractory=refractory, clear=clear, damp=damp,
                     escalate=escalate)  # fmt: skip
    out = np.empty(len(p))
    for i, pi in enumerate(p.tolist()):
        if pi < 1.0 and spend > 0.0:
            pi = min(1.0, pi * max(1.0, i / spend))
        s = 1.0 - pi if pi < 1.0 else 0.0
        out[i] = gate.gate(s)
        gate.step(s)
    return out


def scores(results: dict[str, np.ndarray], labels: dict[str, FileLabels]) -> str:
    return " / ".join(f"{score_corpus(results, labels, p).normalised:.2f}" for p in PROFILES)


def window_ranks(p: dict[str, np.ndarray], labels: dict[str, FileLabels]) -> list[str]:
    lines = []
    for name in sorted(labels):
        lab = labels[name]
        lp = -np.log10(np.maximum(p[name], 1e-300))
        inside = np.zeros(len(lp), dtype=bool)
        for a, b in lab.windows:
            inside[a : b + 1] = True
        start = probationary_length(lab.n_rows)
        for a, b in lab.windows:
            w = b - a + 1
            top = lp[a : b + 1].max()
            outside = [
                lp[s : s + w].max()
                for s in range(start, len(lp) - w, w)
                if not inside[s : s + w].any()
            ]
            share = float(np.mean([v >= top for v in outside])) if outside else float("nan")
            lines.append(
                f"{nab.half(name)} {name} [{a}, {b}] max -log10 p {top:.2f} share {share:.2f}"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=nab.DATA)
    ap.add_argument("--gate", type=float, default=1e-2)
    ap.add_argument("--spend", type=float, default=4000.0)
    ap.add_argument("--escalate", type=float, default=10.0)
    ap.add_argument("--refractory", type=int, default=100)
    ap.add_argument("--synthetic", default="", help="comma-separated seeds")
    ap.add_argument("--windows", action="store_true")
    ap.add_argument("--check", action="store_true", help="replay of the defaults == detector")
    args = ap.parse_args(argv)
    kw = {"spend": args.spend, "gate_p": args.gate, "escalate": args.escalate,
          "refractory": args.refractory}  # fmt: skip

    series, labels = nab.load_corpus(args.data)
    raw = raw_pvalues(series)
    res = {n: replay(raw[n], **kw) for n in raw}
    for h in ("A", "B", "full"):
        names = [n for n in labels if h == "full" or nab.half(n) == h]
        print(f"NAB {h}: " + scores({n: res[n] for n in names}, {n: labels[n] for n in names}))
    for seed in [int(s) for s in args.synthetic.split(",") if s.strip()]:
        corpus = nab_synthetic.generate(seed)
        syn = {n: (ts, x) for n, (ts, x, _, _) in corpus.items()}
        lab = {n: FileLabels(len(x), tuple(w)) for n, (_, x, w, _) in corpus.items()}
        sraw = raw_pvalues(syn)
        print(f"synthetic {seed}: " + scores({n: replay(sraw[n], **kw) for n in sraw}, lab))
    if args.windows:
        print("\n".join(window_ranks(raw, labels)))
    if args.check:
        direct, _ = nab.run_detector(series)
        same = scores(direct, labels) == scores({n: replay(raw[n]) for n in raw}, labels)
        print("replay of the defaults reproduces the detector:", "yes" if same else "NO")
        return 0 if same else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
