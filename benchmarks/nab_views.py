"""Fourth NAB round: every view's calibrated p per row, and the candidates tried on it.

The detector's four views (|z|, EWMA(z), EWMA(z^2), shape) each get a tail probability from
their own calibrator; the detector combines them (Bonferroni), spends alpha and gates. This
harness computes the per-view p of every row once per *variant* of the views (the per-row
path, so a variant is a small subclass), then replays *candidates* for the combination and
the alarm stage through the detector's own :class:`EdgeAlarm` (``nab_replay.replay``).

    .venv/bin/python benchmarks/nab_views.py [--variant base] [--sets A,101,102,7,303]
        [--candidates] [--calibration] [--heldout]

Variants (how the views are computed): ``base`` (the detector as shipped), ``tolerant`` (|z|
against the nearest of the seasonal profile's neighbouring bins), ``per-model`` (each model,
none / day / week, keeps its own calibrators and EWMA state; a seasonal model's are fed from
one period after it starts), ``sqrt`` (sqrt of EWMA(z^2), half its tail index), ``log``
(log1p of the three residual views). ``--candidates`` replays the combination and alarm-stage
candidates of the round on the ``base`` variant. ``--calibration`` counts rows outside the
windows (after probation) whose per-view p is below 1e-2 / 1e-3 / 1e-4, against the count a
calibrated p would give. Development sets are half A and synthetic seeds; half B and the full
subset are printed only with ``--heldout``.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from opsloop.detect.metrics import DefaultMetricDetector, EdgeAlarm
from opsloop.detect.metrics import default as _default
from opsloop.detect.metrics.calibrate import TailCalibrator
from opsloop.detect.metrics.nab_scoring import FileLabels, probationary_length, score_corpus

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nab
import nab_replay
import nab_synthetic

Series = dict[str, tuple[np.ndarray, np.ndarray, FileLabels]]


class _Tolerant(DefaultMetricDetector):
    """|z| against the nearest of the active profile's bins k-1 .. k+2 (phase jitter)."""

    def _stats(self, t: float, x: float) -> tuple[float, float, float, float]:
        z, a1, a2, a3 = super()._stats(t, x)
        m = self.models[self.active]
        prof = m.profile
        if prof is None or m.n < 10:
            return z, a1, a2, a3
        s = max(m.spread, 1e-9 * (abs(m.level) + 1.0), 1e-12)
        base = m.level + (m.phi * m.trend if m.phi < 1 else m.trend)
        k0, _, _ = prof._pos(t)
        near = min(
            (x - (base + prof.s[(k0 + j) % prof.bins]) for j in range(-1, 3)),
            key=abs,
        )
        return z, min(a1, abs(near) / s), a2, a3


class _Transformed(DefaultMetricDetector):
    """Monotone transforms of the residual views (``sqrt``: EWMA(z^2) only; ``log``: all)."""

    kind = "sqrt"

    def _stats(self, t: float, x: float) -> tuple[float, float, float, float]:
        z, a1, a2, a3 = super()._stats(t, x)
        if self.kind == "sqrt":
            return z, a1, a2, math.sqrt(a3)
        return z, math.log1p(a1), math.log1p(a2), math.log1p(math.sqrt(a3))


class _Log(_Transformed):
    kind = "log"


class _PerModel(DefaultMetricDetector):
    """Each model keeps its own residual calibrators and EWMA state."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.cal: dict[str, list[TailCalibrator]] = {}
        self.ew: dict[str, tuple[float, float]] = {}

    def _model_stats(self, name: str, t: float, x: float) -> tuple[float, tuple[float, ...]]:
        m = self.models[name]
        z = 0.0
        if m.n >= 10:
            s = max(m.spread, 1e-9 * (abs(m.level) + 1.0), 1e-12)
            z = min(max(m.residual(t, x) / s, -1e6), 1e6)
        ez, ez2 = self.ew.get(name, (0.0, 1.0))
        e1, e2 = 0.9 * ez + 0.1 * z, 0.95 * ez2 + 0.05 * z * z
        return z, (abs(z), abs(e1) / _default._A2_SCALE, e2)

    def view_pvalues(self, t: float, x: float) -> list[float]:
        cals = self.cal.get(self.active)
        _, stats = self._model_stats(self.active, t, x)
        ps = [c.pvalue(a) for c, a in zip(cals, stats, strict=True)] if cals else [1.0] * 3
        return [*ps, self.calibrators[3].pvalue(self.shape.score(x))]

    def _pvalue_uncached(self, t: float, x: float) -> float:
        p = min(1.0, 4 * min(self.view_pvalues(t, x)))
        return min(1.0, p * max(1.0, self.n / self.spend)) if self.spend > 0 else p

    def learn_one(self, t: float, x: float) -> None:
        if not (math.isfinite(t) and math.isfinite(x)):
            return
        self.calibrated_score(t, x)  # memoised before the calibrators move
        for name, m in list(self.models.items()):
            ready = (
                self.n >= self.warmup // 2
                if m.profile is None
                else m.n > 0 and t - m.t_first >= m.profile.period
            )
            if ready:
                z, stats = self._model_stats(name, t, x)
                cals = self.cal.setdefault(
                    name, [TailCalibrator(q=0.99, lam=0.002) for _ in range(3)]
                )
                for c, a in zip(cals, stats, strict=True):
                    c.update(a)
                ez, ez2 = self.ew.get(name, (0.0, 1.0))
                self.ew[name] = (0.9 * ez + 0.1 * z, 0.95 * ez2 + 0.05 * z * z)
        super().learn_one(t, x)


VARIANTS: dict[str, type[DefaultMetricDetector]] = {
    "base": DefaultMetricDetector,
    "tolerant": _Tolerant,
    "per-model": _PerModel,
    "sqrt": _Transformed,
    "log": _Log,
}


def view_pvalues(ts: np.ndarray, xs: np.ndarray, variant: str) -> np.ndarray:
    """Per row, each view's calibrated p before it is learned (rows in warm-up: 1)."""
    det = VARIANTS[variant](spend=0.0, gate_p=1e-300, escalate=0.0)
    out = np.ones((len(xs), 4))
    for i, (t, x) in enumerate(zip(ts.tolist(), xs.tolist(), strict=True)):
        if det.n >= det.warmup and math.isfinite(t) and math.isfinite(x):
            if isinstance(det, _PerModel):
                out[i] = det.view_pvalues(t, x)
            else:
                _, stats = det._views(t, x)
                out[i] = [c.pvalue(a) for c, a in zip(det.calibrators, stats, strict=True)]
        det.learn_one(t, x)
    return out


def load_sets(names: list[str]) -> dict[str, Series]:
    series, labels = nab.load_corpus(nab.DATA)
    out: dict[str, Series] = {}
    for s in names:
        if s in ("A", "B", "full"):
            out[s] = {
                n: (ts, xs, labels[n])
                for n, (ts, xs) in series.items()
                if s == "full" or nab.half(n) == s
            }
        else:
            corpus = nab_synthetic.generate(int(s))
            out[s] = {
                n: (ts, x, FileLabels(len(x), tuple(w))) for n, (ts, x, w, _) in corpus.items()
            }
    return out


def bonferroni(P: np.ndarray, w: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)) -> np.ndarray:
    """Weighted Bonferroni: ``min(1, min_j p_j / w_j)`` with the weights summing to one."""
    wa = np.asarray(w, float) / sum(w)
    return np.minimum(1.0, (P / wa).min(axis=1))


def replay_edge_spending(p: np.ndarray, c: float, tau: float) -> np.ndarray:
    """The alarm stage with p also multiplied by ``1 + c E``, ``E`` the past edges' count
    decayed with time constant ``tau`` rows (a series that alarms often must do more)."""
    gate = EdgeAlarm(on=0.99, off=0.9, refractory=100, clear=10, escalate=10.0)
    out = np.empty(len(p))
    edges, decay = 0.0, math.exp(-1.0 / tau)
    for i, pi in enumerate(p.tolist()):
        if pi < 1.0:
            pi = min(1.0, pi * max(1.0, i / 4000.0) * (1.0 + c * edges))
        s = 1.0 - pi if pi < 1.0 else 0.0
        out[i] = gate.gate(s)
        edges = (edges + (1.0 if gate.step(s) else 0.0)) * decay
    return out


def burst_pvalue(p0: np.ndarray, alpha: float = 0.01, width: int = 10) -> np.ndarray:
    """Per row: P(B >= b) for ``b`` rows of the last ``width`` with ``p0 < alpha``, B binomial
    with the running rate of such rows (only rows that are themselves below ``alpha``)."""
    from scipy.stats import binom

    hit = (p0 < alpha).astype(int)
    csum = np.concatenate([[0], np.cumsum(hit)])
    out = np.ones(len(p0))
    rate = alpha
    for i in range(len(p0)):
        if hit[i]:
            b = csum[i + 1] - csum[max(0, i + 1 - width)]
            out[i] = binom.sf(b - 1, width, max(rate, 1e-4))
        if p0[i] < 1.0:
            rate += 0.001 * (hit[i] - rate)
    return out


def burn_in_scaled(p: np.ndarray, a: float, m0: float, rows: int) -> np.ndarray:
    """p times ``10^(a (M - m0))`` after ``rows``, ``M`` the largest -log10 p before."""
    lp = -np.log10(np.maximum(p[:rows], 1e-300))
    q = p.copy()
    q[rows:] = np.minimum(1.0, p[rows:] * 10 ** max(0.0, a * (float(lp.max()) - m0)))
    return q


def replay_familiar(p: np.ndarray, xs: np.ndarray, k: int, frac: float) -> np.ndarray:
    """The alarm stage, an edge dropped when ``k`` of the last 20 edges deviated as much (at
    least ``frac`` of this one's robust deviation from the 50 rows before, same sign): an
    alarm that looks like earlier alarms is familiar (HTM learns a repeated surprise)."""
    gate = EdgeAlarm(on=0.99, off=0.9, refractory=100, clear=10, escalate=10.0)
    out = np.empty(len(p))
    past: list[float] = []
    for i, pi in enumerate(p.tolist()):
        if pi < 1.0:
            pi = min(1.0, pi * max(1.0, i / 4000.0))
        s = 1.0 - pi if pi < 1.0 else 0.0
        if s >= 0.99 and gate.passes(s) and i > 50:
            med = float(np.median(xs[i - 50 : i]))
            dev = (xs[i] - med) / (float(np.median(np.abs(xs[i - 50 : i] - med))) + 1e-12)
            seen = sum(1 for q in past if q * dev > 0 and abs(q) >= frac * abs(dev))
            past = [*past[-19:], dev]
            if seen >= k:
                s = 0.0
        out[i] = gate.gate(s)
        gate.step(s)
    return out


Candidate = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (per-view P, values) -> scores


def candidates() -> dict[str, Candidate]:
    rp = nab_replay.replay
    out: dict[str, Candidate] = {"R0 shipped": lambda P, x: rp(bonferroni(P))}
    for w in [(2, 2, 2, 1), (2, 1, 1, 1), (1, 2, 2, 2), (3, 2, 2, 1)]:
        out[f"R6 weights {w}"] = lambda P, x, w=w: rp(bonferroni(P, w))
    for c, tau in [(1.0, 1000.0), (1.0, 3000.0), (0.5, 3000.0), (1.0, 10000.0)]:
        out[f"R9 edge spending c {c} tau {tau:.0f}"] = lambda P, x, c=c, tau=tau: (
            replay_edge_spending(bonferroni(P), c, tau)
        )
    for a, m0 in [(0.5, 2.0), (0.25, 1.0)]:
        out[f"R10 burn-in a {a} m0 {m0}"] = lambda P, x, a=a, m0=m0: rp(
            burn_in_scaled(bonferroni(P), a, m0, 240)
        )
    out["R11 burst view added"] = lambda P, x: rp(
        np.minimum(1.0, 5 * np.minimum(P.min(axis=1), burst_pvalue(P[:, 0])))
    )
    out["R11 burst view replacing |z|"] = lambda P, x: rp(
        bonferroni(np.column_stack([burst_pvalue(P[:, 0]), P[:, 1:]]))
    )
    out["gate 2e-3, spending 8000"] = lambda P, x: rp(bonferroni(P), gate_p=2e-3, spend=8000.0)
    for k, frac in [(2, 0.8), (3, 0.8), (2, 1.0)]:
        out[f"R14 familiar alarms k {k} frac {frac}"] = lambda P, x, k=k, frac=frac: (
            replay_familiar(bonferroni(P), x, k, frac)
        )
    for r in (200, 400):
        out[f"refractory {r}"] = lambda P, x, r=r: rp(bonferroni(P), refractory=r)
    return out


def calibration(pv: dict[str, np.ndarray], data: Series) -> list[str]:
    alphas = (1e-2, 1e-3, 1e-4)
    seen = np.zeros((4, 3))
    rows = 0
    for n, (_, xs, lab) in data.items():
        keep = np.ones(len(xs), bool)
        keep[: probationary_length(lab.n_rows)] = False
        for a, b in lab.windows:
            keep[max(0, a - 50) : b + 1] = False
        rows += int(keep.sum())
        seen += [[(pv[n][keep, v] < a).sum() for a in alphas] for v in range(4)]
    lines = [f"rows {rows}; expected below 1e-2 / 1e-3 / 1e-4: "
             + " / ".join(f"{a * rows:.0f}" for a in alphas)]  # fmt: skip
    for v, name in enumerate(("|z|", "EWMA(z)", "EWMA(z^2)", "shape")):
        lines.append(f"  {name}: " + " / ".join(f"{c:.0f}" for c in seen[v]))
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="base")
    ap.add_argument("--sets", default="A,101,102,7,303")
    ap.add_argument("--candidates", action="store_true")
    ap.add_argument("--calibration", action="store_true")
    ap.add_argument("--heldout", action="store_true", help="also half B and the full subset")
    args = ap.parse_args(argv)
    names = [s for s in args.sets.split(",") if s]
    names += ["B", "full"] if args.heldout else []
    sets = load_sets(names)
    pv = {s: {n: view_pvalues(ts, xs, args.variant) for n, (ts, xs, _) in d.items()}
          for s, d in sets.items()}  # fmt: skip
    cands = candidates() if args.candidates else {"R0 shipped": candidates()["R0 shipped"]}
    for label, cand in cands.items():
        cells = []
        for s, d in sets.items():
            res = {n: cand(pv[s][n], d[n][1]) for n in d}
            lab = {n: d[n][2] for n in d}
            cells.append(f"{s} {score_corpus(res, lab, 'standard').normalised:.2f}")
        print(f"{args.variant} | {label} | " + "  ".join(cells), flush=True)
    if args.calibration and "full" in sets:
        print("\n".join(calibration(pv["full"], sets["full"])))
    elif args.calibration:
        print("--calibration needs --heldout (it counts over the full subset)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
