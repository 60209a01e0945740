"""Time-to-exhaustion benchmark: opsloop TrendForecaster vs Prometheus predict_linear.

Generates seeded synthetic capacity series (disk-like: linear growth, daily cycle, noise,
clean-up drops such as log rotation), stops each at an evaluation time, asks every method when the
series will reach 100 % and compares with the true first crossing of the noiseless signal.

    .venv/bin/python benchmarks/forecast.py [--series 300] [--seed 7]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from opsloop.detect.metrics.forecast import TrendForecaster, predict_linear_eta

DAY = 86400.0
STEP = 300.0
OUT = Path(__file__).resolve().parent / "results" / "forecast.md"
COMMAND = ".venv/bin/python benchmarks/forecast.py"

INTERVAL_NOTES = [
    "How the interval is made (`TrendForecaster`, split conformal on its own record): every",
    "h / 12 it forecasts h = 1 h, 4 h and 16 h ahead; when the series gets there the error is",
    "kept (the last 120 per horizon, issued within the regression's memory tau = 3 days);",
    "forecasts spanning a clean-up reset are dropped (the ETA is the crossing if the series",
    "goes on as it is). `E[e(h)^2] = sd_l^2 + sd_b^2 h^2` is fitted to the horizons' mean",
    "squared errors; the band h ahead is the wider of the forecast plus the conformal 90 %",
    "bounds of e / sd(h) times sd(h), and the regression's own -+1.645 standard errors; the",
    "interval runs from the crossing of its upper edge to that of its lower edge.",
    "",
    "Crossings follow the daily cycle (session 3). The ETA used to solve trend + max(daily",
    "profile) = 100 %: the right day, but any time of day, while a cycling series can only",
    "cross near the hour its cycle peaks, so the truth was often up to a day later (16-18 % of",
    "the truths after the interval on the development seeds). The forecaster now searches the",
    "first time its own forecast (trend + profile at that time of day) reaches the threshold,",
    "from the trend-only time (a lower bound) over the next period; the interval's ends are",
    "the same crossings of the band's edges. Developed on seeds 100 / 101 (median error 8.4 /",
    "8.2 h -> 2.7 / 2.8 h, coverage 77 / 76 % -> 87 / 88 %), then run once on this set",
    "(seed 7): median error 7.2 h -> 2.6 h, coverage 82 % -> 90 %.",
    "",
    "What was tried before, and on what. The first interval (the regression's slope +- 1.645",
    "standard errors, residuals taken as independent) covered 48 % on this set (seed 7). The",
    "first calibrated version (normalised errors at 3 h / 12 h / 2 days, conformal bounds of",
    "the nearest horizon) covered 73 % on it. Then, looking at seeds 100 and 101: 2-day",
    "forecasts rarely survive clean-ups (every ~2.5 days), so the horizons became 1 h / 4 h /",
    "16 h with the error model above (seed 100: 80 %); with a guard removed it reached 93 % /",
    "91 % there and 94 % on this set, but only because the warm-up's large errors stayed in",
    "the record: 44 % of upper ends open, a median width of 4x the ETA, and open-ended on clean",
    "series. With the tau age limit, 71 % / 70 % (seeds 100 / 101) at 0.18x; taking the wider",
    "of that and the regression's own band, 77 % / 76 % at 0.19x (82 % on this set). Still",
    "short after a recent clean-up (78 %): the record since the reset is short.",
    "",
    "Smaller clean-ups (session 6). Looking at the misses after a recent clean-up on seeds",
    "100 / 101: about half came from clean-ups the forecaster had not seen. It took a drop",
    "only when one point fell 8 spreads below the trend, so a cut of 20-60 % of a low usage",
    "(3-6 spreads) stayed in the regression, which then read the drop as slower growth, or a",
    "shrinking disk ('never'). A drop now also counts when a one-sided CUSUM of the residuals",
    "(reference 2 spreads) reaches 8, provided it is a step: one point-to-point fall of at",
    "least 4 spreads in its run (the falling half of a daily cycle the profile has not learnt",
    "yet is not: a unit test caught that), the last three points all 2 spreads down (a one-",
    "point dip is not), and a mean drop of at least 5 % of the level. Seeds 100 / 101: median",
    "error 2.7 / 2.8 h -> 2.2 / 2.0 h, coverage 87 / 88 % -> 88 / 89 %, after a recent",
    "clean-up 74 / 70 % -> 78 / 74 %. Rejected on those seeds: moving the fit's old points",
    "down by the drop instead of restarting it (median error 4.2 / 3.7 h), and a stronger",
    "slope prior after a restart (150 / 400 points: worse on series without a recent",
    "clean-up). On this set (seed 7; run once with a first version of the step test and once",
    "with this one): median error 2.6 -> 1.9 h, p90 166 -> 28 h, 'never' 2 % -> 0 %, coverage",
    "90 % -> 90 %, after a recent clean-up 78 % -> 83 %, width 0.22x -> 0.18x.",
    "",
    "The slope after a clean-up (session 6). On seeds 100 / 101 the misses after a recent",
    "clean-up had an accurate slope at the reset and a slope 5-15 % off half a day later: the",
    "old slope entered the restarted fit as 50 pseudo-points (about four hours of data), so a",
    "few noisy hours of the cycle overrode days of growth. Now the old slope is a prior on the",
    "slope alone, worth what the old fit knew of it: its sum w (u - mean u)^2 joins stt and b",
    "times it joins sty (penalised least squares; the level comes from the new points only,",
    "and the prior fades with the fit's memory tau like every sum). The slope from before a",
    "CUSUM run is used (the run's points already lean on the drop). Seeds 100 / 101: median",
    "error 2.2 / 2.0 h -> 1.3 / 1.1 h, after a recent clean-up 11.1 / 10.0 h -> 1.6 / 1.6 h,",
    "coverage 88 / 89 % -> 91 / 94 % (after a recent clean-up 78 / 74 % -> 88 / 95 %), width",
    "0.16x / 0.15x -> 0.12x / 0.10x. Then once on this set: the table and coverage above.",
]


def make_series(rng: np.random.Generator) -> dict:
    days = rng.uniform(5, 12)
    n = int(days * DAY / STEP)
    t = np.arange(n) * STEP
    rate = rng.uniform(2.0, 10.0) / DAY  # % per second
    amp = rng.uniform(0.0, 3.0)
    noise = rng.uniform(0.1, 1.0)
    level0 = rng.uniform(10.0, 40.0)
    phase = rng.uniform(0, 2 * math.pi)
    # clean-ups: Poisson, each removes 20-60 % of the current usage
    base = level0 + rate * t
    cuts = np.sort(rng.uniform(0, t[-1], rng.poisson(0.4 * days)))
    offset = np.zeros(n)
    for c in cuts:
        i = int(c / STEP)
        current = base[i] + offset[i]
        offset[i:] -= rng.uniform(0.2, 0.6) * current
    trend = base + offset
    season = amp * np.sin(2 * math.pi * t / DAY + phase)
    x = trend + season + rng.normal(0, noise, n)
    # truth: noiseless continuation from the end, no further clean-ups
    t_end = t[-1]
    fut = t_end + np.arange(1, int(60 * DAY / STEP)) * STEP
    path = trend[-1] + rate * (fut - t_end) + amp * np.sin(2 * math.pi * fut / DAY + phase)
    hit = np.nonzero(path >= 100.0)[0]
    eta = (fut[hit[0]] - t_end) if len(hit) else math.inf
    recent_cut = bool(len(cuts) and cuts[-1] > t_end - DAY)
    return {"t": t, "x": x, "eta": eta, "recent_cut": recent_cut, "cuts": len(cuts)}


def evaluate(n_series: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    rows = []
    while len(rows) < n_series:
        s = make_series(rng)
        if not (0 < s["eta"] <= 30 * DAY) or s["x"][-1] >= 95:
            continue
        t, x = s["t"], s["x"]
        f = TrendForecaster()
        for ti, xi in zip(t.tolist(), x.tolist(), strict=True):
            f.update(ti, xi)
        ours = f.time_to_threshold(100.0)
        res = {
            "truth": s["eta"],
            "recent_cut": s["recent_cut"],
            "ours": ours.seconds,
            "ours_lo": ours.low,
            "ours_hi": ours.high,
        }
        for hours in (6, 24):
            m = t > t[-1] - hours * 3600
            res[f"pl{hours}h"] = predict_linear_eta(t[m].tolist(), x[m].tolist(), t[-1], 100.0)
        rows.append(res)
    return {"rows": rows}


def summarise(rows: list[dict], key: str) -> tuple[float, float, float, float]:
    truth = np.array([r["truth"] for r in rows])
    est = np.array([r[key] for r in rows])
    err = np.abs(np.where(np.isfinite(est), est, 60 * DAY) - truth) / 3600
    rel = err * 3600 / truth
    never = float(np.mean(~np.isfinite(est)))
    return float(np.median(err)), float(np.percentile(err, 90)), float(np.median(rel)), never


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--series", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    rows = evaluate(args.series, args.seed)["rows"]
    subsets = {
        "all": rows,
        "clean-up in the last 24 h": [r for r in rows if r["recent_cut"]],
        "no recent clean-up": [r for r in rows if not r["recent_cut"]],
    }
    methods = {
        "opsloop TrendForecaster": "ours",
        "Prometheus predict_linear[6h]": "pl6h",
        "Prometheus predict_linear[24h]": "pl24h",
    }
    lines = [
        "# Time-to-exhaustion: TrendForecaster vs Prometheus predict_linear",
        "",
        f"Command: `{COMMAND} --series {args.series} --seed {args.seed}`",
        "",
        "Synthetic disk-usage series (seeded): 5-minute samples over 5-12 days, growth 2-10 %/day,",
        "daily cycle of amplitude 0-3 %, Gaussian noise 0.1-1 %, clean-ups (log rotation) as a",
        "Poisson process of 0.4/day each removing 20-60 % of the usage. At the end of each series",
        "every method estimates when usage reaches 100 %; the truth is the first crossing of the",
        "noiseless signal (no further clean-ups). Truth beyond 30 days: skipped.",
        "A method that answers 'never' is charged an estimate of 60 days.",
        "",
        "| subset | n | method | median abs error (h) | p90 abs error (h) | median rel. error"
        " | answers 'never' |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for sub, rs in subsets.items():
        if not rs:
            continue
        for label, key in methods.items():
            med, p90, rel, never = summarise(rs, key)
            lines.append(
                f"| {sub} | {len(rs)} | {label} | {med:.1f} | {p90:.1f} | {100 * rel:.0f} % |"
                f" {100 * never:.0f} % |"
            )
    truth = np.array([r["truth"] for r in rows])
    lo = np.array([r["ours_lo"] for r in rows])
    hi = np.array([r["ours_hi"] for r in rows])
    cover = float(np.mean((lo <= truth) & (truth <= hi)))
    early = float(np.mean(truth < lo))
    late = float(np.mean(truth > hi))
    open_end = float(np.mean(~np.isfinite(hi)))
    with np.errstate(invalid="ignore"):
        width = np.where(np.isfinite(hi), (hi - lo) / truth, np.inf)
    cut = np.array([r["recent_cut"] for r in rows])
    cover_cut = float(np.mean(((lo <= truth) & (truth <= hi))[cut])) if cut.any() else math.nan
    lines += [
        "",
        f"Coverage of TrendForecaster's nominal 90 % ETA interval: {100 * cover:.0f} % "
        f"({len(rows)} series; truth before the interval {100 * early:.0f} %, after it"
        f" {100 * late:.0f} %; {100 * cover_cut:.0f} % on the series with a clean-up in the"
        f" last 24 h). Median width {np.median(width):.2f} x the true ETA; upper end open"
        f" ('may never cross') on {100 * open_end:.0f} %.",
        "",
        *INTERVAL_NOTES,
    ]
    text = "\n".join(lines)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
