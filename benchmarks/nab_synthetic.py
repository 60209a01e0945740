"""Synthetic NAB-style series with labelled anomaly windows: "series it has never seen".

A seeded generator (``numpy.random.default_rng(seed)``) writes a corpus in NAB's layout
(``DIR/data/synthetic/<file>.csv`` and ``DIR/labels/combined_windows.json``), which
``opsloop bench nab --data DIR`` and :func:`score` below score with the same NAB scorer as the
real subset. Nothing here was fitted to a detector: the recipe was fixed before any detector
was run on it, and it is used for reporting only, never to choose a configuration.

Each series: 5-minute samples (``--step`` for another interval), 4032 rows (14 days) or, one
time in four, 10080 rows (35 days);
a base level, a daily cycle (amplitude 0-3 noise units, random phase, sometimes a weekend dip),
a linear trend (up to +-2 noise units per day), noise (Gaussian, Student-t with 3 degrees of
freedom, or Poisson counts) and, one time in five, no anomaly. Otherwise 1-3 anomalies after
NAB's probationary 15 %, at least 10 % of the series apart, each of one kind:

* ``spike``: 1-3 consecutive points at +-(5-12) noise units;
* ``level``: a persistent shift of +-(2-5) noise units;
* ``variance``: noise times 3-6 for 100-400 points;
* ``season``: the daily cycle flattened or phase-shifted by half a day for 1-2 days (only on
  series whose cycle is at least 2 noise units);
* ``drift``: a ramp of 3-6 noise units over 200-500 points that then stays.

Windows as NAB's labelling: 10 % of the rows divided among the anomalies, centred on each
onset (clipped to the series).

    .venv/bin/python benchmarks/nab_synthetic.py [--seed 20240604] [--series 40] [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from opsloop.detect.metrics.nab_scoring import (
    PROFILES,
    FileLabels,
    probationary_length,
    score_corpus,
)

SEED = 20240604
N_SERIES = 40
STEP = 300.0  # seconds
DAY_ROWS = 288
T0 = datetime(2024, 1, 1, tzinfo=UTC).timestamp()
KINDS = ("spike", "level", "variance", "season", "drift")


def _series(
    rng: np.random.Generator, day_rows: int = DAY_ROWS
) -> tuple[np.ndarray, list[tuple[int, int]], list[str]]:
    n = 35 * day_rows if rng.random() < 0.25 else 14 * day_rows
    i = np.arange(n, dtype=float)
    amp = float(rng.choice([0.0, rng.uniform(0.5, 1.5), rng.uniform(2.0, 3.0)]))
    phase = rng.uniform(0, 2 * np.pi)
    day = np.sin(2 * np.pi * i / day_rows + phase)
    weekend = rng.random() < 0.3
    trend = rng.uniform(-2.0, 2.0) / day_rows if rng.random() < 0.5 else 0.0
    noise_kind = rng.choice(["gauss", "t3", "poisson"])
    cycle = amp * day
    if weekend:
        cycle = cycle - amp * ((i // day_rows) % 7 >= 5)
    level = np.zeros(n)
    noise_mult = np.ones(n)
    n_anom = 0 if rng.random() < 0.2 else int(rng.integers(1, 4))
    prob = int(0.15 * n)
    gap = n // 10
    onsets: list[int] = []
    for _ in range(50):
        if len(onsets) == n_anom:
            break
        c = int(rng.integers(prob + gap // 2, n - 50))
        if all(abs(c - o) >= gap for o in onsets):
            onsets.append(c)
    onsets.sort()
    kinds: list[str] = []
    spikes = np.zeros(n)
    for c in onsets:
        kind = str(rng.choice(KINDS if amp >= 2.0 else KINDS[:3] + KINDS[4:]))
        kinds.append(kind)
        sign = 1.0 if rng.random() < 0.5 else -1.0
        if kind == "spike":
            k = int(rng.integers(1, 4))
            spikes[c : c + k] += sign * rng.uniform(5.0, 12.0)
        elif kind == "level":
            level[c:] += sign * rng.uniform(2.0, 5.0)
        elif kind == "variance":
            noise_mult[c : c + int(rng.integers(100, 401))] *= rng.uniform(3.0, 6.0)
        elif kind == "drift":
            span = int(rng.integers(200, 501))
            ramp = np.clip((i - c) / span, 0.0, 1.0)
            level += sign * rng.uniform(3.0, 6.0) * ramp
        else:  # season
            span = int(rng.integers(1, 3)) * day_rows
            seg = slice(c, min(n, c + span))
            if rng.random() < 0.5:
                cycle[seg] = 0.0
            else:
                cycle[seg] = -cycle[seg]
    if noise_kind == "gauss":
        eps = rng.standard_normal(n)
    elif noise_kind == "t3":
        eps = rng.standard_t(3, n) / np.sqrt(3.0)
    else:
        eps = np.zeros(n)
    base = rng.uniform(5.0, 50.0)
    x = base + cycle + trend * i + level + spikes + noise_mult * eps
    if noise_kind == "poisson":
        # counts with mean lam (noise unit sqrt(lam)); the signal is in units of sqrt(lam)
        lam = rng.uniform(20.0, 200.0)
        mu = np.maximum(lam + np.sqrt(lam) * (x - base), 0.5)
        x = rng.poisson(mu).astype(float)
        if np.any(noise_mult != 1.0):
            x += (noise_mult - 1.0) * np.sqrt(lam) * rng.standard_normal(n)
    else:
        x = x * rng.uniform(0.5, 20.0)
    width = int(0.1 * n / max(1, len(onsets)))
    windows = [(max(0, c - width // 2), min(n - 1, c + width // 2)) for c in onsets]
    return x, windows, kinds


def generate(seed: int = SEED, n_series: int = N_SERIES, step: float = STEP) -> dict[str, Any]:
    """``{name: (timestamps, values, windows (row indices), kinds)}`` of the synthetic corpus.

    ``step``: the sampling interval in seconds (300 by default, NAB's). Daily things (the
    cycle, the trend per day, the length of a series and of a ``season`` anomaly) keep their
    length in time; the other anomalies keep their length in rows.
    """
    day_rows = round(86400.0 / step)
    if 86400.0 / step != day_rows or day_rows < 8:
        raise ValueError("step must divide a day into at least 8 rows")
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for k in range(n_series):
        x, windows, kinds = _series(rng, day_rows)
        ts = T0 + step * np.arange(len(x))
        out[f"synthetic/syn_{k:03d}.csv"] = (ts, x, windows, kinds)
    return out


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def write_corpus(corpus: dict[str, Any], out: Path) -> None:
    """Write ``corpus`` in NAB's layout under ``out``."""
    labels: dict[str, list[list[str]]] = {}
    for name, (ts, x, windows, _) in corpus.items():
        path = out / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["timestamp", "value"])
            for t, v in zip(ts, x, strict=True):
                w.writerow([_stamp(float(t)), repr(float(v))])
        labels[name] = [[_stamp(float(ts[a])), _stamp(float(ts[b]))] for a, b in windows]
    (out / "labels").mkdir(parents=True, exist_ok=True)
    (out / "labels" / "combined_windows.json").write_text(json.dumps(labels, indent=1))


def score(
    corpus: dict[str, Any], factory: Any, results: dict[str, list[float]] | None = None
) -> tuple[dict[str, float], float]:
    """Normalised NAB score per profile of ``factory()`` detectors, and points per second;
    the per-row scores go into ``results`` when it is given."""
    results = {} if results is None else results
    labels = {}
    points, seconds = 0, 0.0
    for name, (ts, x, windows, _) in corpus.items():
        started = time.perf_counter()
        results[name] = factory().score_many(x.tolist(), ts.tolist())
        seconds += time.perf_counter() - started
        points += len(x)
        labels[name] = FileLabels(len(x), tuple(windows))
    scores = {p: score_corpus(results, labels, p).normalised for p in PROFILES}
    return scores, points / seconds


def gate_counts(
    corpus: dict[str, Any], results: dict[str, list[float]], threshold: float = 0.99
) -> tuple[int, int, int]:
    """``(windows with a row scoring >= threshold, windows, rows >= threshold outside every
    window)``, rows of NAB's probationary period left out (0.99 is the detector's gate)."""
    found = total = false_rows = 0
    for name, (_, x, windows, _) in corpus.items():
        s = np.asarray(results[name])
        s[: probationary_length(len(x))] = 0.0
        outside = np.ones(len(x), dtype=bool)
        for a, b in windows:
            outside[a : b + 1] = False
            total += 1
            found += bool((s[a : b + 1] >= threshold).any())
        false_rows += int(((s >= threshold) & outside).sum())
    return found, total, false_rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--series", type=int, default=N_SERIES)
    ap.add_argument("--step", type=float, default=STEP, help="sampling interval, seconds")
    ap.add_argument("--out", type=Path, help="also write the corpus in NAB's layout here")
    args = ap.parse_args(argv)
    corpus = generate(args.seed, args.series, args.step)
    if args.out:
        write_corpus(corpus, args.out)
    from opsloop.detect.metrics import DefaultMetricDetector
    from opsloop.services.bench_nab import one_blas_thread

    kinds = [k for *_, ks in corpus.values() for k in ks]
    results: dict[str, list[float]] = {}
    with one_blas_thread():
        scores, rate = score(corpus, DefaultMetricDetector, results)
    print(
        f"seed {args.seed}, step {args.step:g} s: {len(corpus)} series, "
        f"{sum(len(c[1]) for c in corpus.values())} points, {len(kinds)} windows "
        f"({', '.join(f'{k} {kinds.count(k)}' for k in KINDS)})"
    )
    print(" / ".join(f"{p} {s:.2f}" for p, s in scores.items()), f"({rate:,.0f} points/s)")
    found, total, false_rows = gate_counts(corpus, results)
    print(f"at the gate (score >= 0.99): {found} of {total} windows, {false_rows} false rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
