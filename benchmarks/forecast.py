"""Time-to-exhaustion benchmark: opsloop TrendForecaster vs Prometheus predict_linear.

Generates seeded synthetic capacity series (disk-like: linear growth, daily cycle, noise,
clean-up drops such as log rotation), stops each at an evaluation time, asks every method when the
series will reach 100 % and compares with the true first crossing of the noiseless signal.

A second section ("sudden fast fills") starts disks filling at 0.2-5 %/min after a quiet period,
sampled every 10 seconds, and measures how soon after the fill starts each method's ETA to 95 %
is within a factor 2 of the truth, and how often it warns of a crossing within 4 h while quiet.

A third ("other sampling intervals") runs the first section's recipe at 60-second and
15-second samples (Prometheus' usual scrape intervals), ``--cadence-series`` series each.

    .venv/bin/python benchmarks/forecast.py [--series 300] [--seed 7] [--fills 100]
        [--cadences 60,15] [--cadence-series 100]
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


def make_series(rng: np.random.Generator, step: float = STEP) -> dict:
    days = rng.uniform(5, 12)
    n = int(days * DAY / step)
    t = np.arange(n) * step
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
        i = int(c / step)
        current = base[i] + offset[i]
        offset[i:] -= rng.uniform(0.2, 0.6) * current
    trend = base + offset
    season = amp * np.sin(2 * math.pi * t / DAY + phase)
    x = trend + season + rng.normal(0, noise, n)
    # truth: noiseless continuation from the end, no further clean-ups
    t_end = t[-1]
    fut = t_end + np.arange(1, int(60 * DAY / step)) * step
    path = trend[-1] + rate * (fut - t_end) + amp * np.sin(2 * math.pi * fut / DAY + phase)
    hit = np.nonzero(path >= 100.0)[0]
    eta = (fut[hit[0]] - t_end) if len(hit) else math.inf
    recent_cut = bool(len(cuts) and cuts[-1] > t_end - DAY)
    return {"t": t, "x": x, "eta": eta, "recent_cut": recent_cut, "cuts": len(cuts)}


def evaluate(n_series: int, seed: int, step: float = STEP) -> dict:
    rng = np.random.default_rng(seed)
    rows = []
    while len(rows) < n_series:
        s = make_series(rng, step)
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


FILL_STEP = 10.0  # seconds between samples in the fast-fill section
FILL_THRESHOLD = 95.0
QUIET_EVERY = 60  # quiet-period check every 60 samples (10 minutes)
QUIET_ALARM = 4 * 3600.0  # an ETA under this while quiet warns of an imminent crossing
SLOW_METHODS = {
    "opsloop TrendForecaster": "ours",
    "Prometheus predict_linear[6h]": "pl6h",
    "Prometheus predict_linear[24h]": "pl24h",
}
FILL_METHODS = {
    "opsloop TrendForecaster": "ours",
    "Prometheus predict_linear[5m]": "pl5m",
    "Prometheus predict_linear[1h]": "pl1h",
}
PL_WINDOWS = {"pl5m": 300.0, "pl1h": 3600.0}


def make_fill(rng: np.random.Generator) -> dict:
    """A quiet disk (slow growth, maybe a daily cycle) that suddenly starts filling fast."""
    quiet = rng.uniform(6, 24) * 3600
    slow = rng.uniform(0.0, 2.0) / DAY  # % per second
    level0 = rng.uniform(20.0, 60.0)
    noise = rng.uniform(0.02, 0.3)
    amp = rng.uniform(0.0, 3.0) * (rng.random() < 0.5)  # half the series cycle daily
    phase = rng.uniform(0, 2 * math.pi)
    rate = rng.uniform(0.2, 5.0) / 60  # % per second
    t_fill = int(quiet / FILL_STEP) * FILL_STEP
    v0 = level0 + slow * t_fill + amp * math.sin(2 * math.pi * t_fill / DAY + phase)
    t_95 = t_fill + (FILL_THRESHOLD - v0) / rate
    t_full = t_fill + (100.0 - v0) / rate
    t = np.arange(int(t_full / FILL_STEP) + 1) * FILL_STEP
    quiet_path = level0 + slow * t + amp * np.sin(2 * math.pi * t / DAY + phase)
    clean = np.where(t <= t_fill, quiet_path, v0 + rate * (t - t_fill))
    x = clean + rng.normal(0, noise, len(t))
    return {"t": t, "x": x, "t_fill": t_fill, "t_95": t_95}


def _pl_eta(t: np.ndarray, x: np.ndarray, i: int, window: float) -> float:
    """predict_linear_eta over the samples in (t[i] - window, t[i]]."""
    j = int(np.searchsorted(t, t[i] - window, side="right"))
    return predict_linear_eta(t[j : i + 1].tolist(), x[j : i + 1].tolist(), t[i], FILL_THRESHOLD)


def evaluate_fills(n_fills: int, seed: int) -> list[dict]:
    """Per series: minutes from the fill start to each method's first useful ETA (within a
    factor 2 of the truth; ``None`` if none before 95 %), and whether it gave an ETA under
    4 h in the quiet period (checked every 10 minutes)."""
    rng = np.random.default_rng(seed + 1000)
    rows = []
    for _ in range(n_fills):
        s = make_fill(rng)
        t, x, t_fill, t_95 = s["t"], s["x"], s["t_fill"], s["t_95"]
        f = TrendForecaster()
        first: dict[str, float | None] = dict.fromkeys(FILL_METHODS.values())
        alarms = dict.fromkeys(FILL_METHODS.values(), 0)
        checks = 0
        for i, (ti, xi) in enumerate(zip(t.tolist(), x.tolist(), strict=True)):
            if ti >= t_95:
                break
            f.update(ti, xi)
            if ti <= t_fill:
                if i and i % QUIET_EVERY == 0:
                    checks += 1
                    etas = {"ours": f.time_to_threshold(FILL_THRESHOLD).seconds}
                    for key, window in PL_WINDOWS.items():
                        etas[key] = _pl_eta(t, x, i, window)
                    for key, eta in etas.items():
                        alarms[key] += eta < QUIET_ALARM
                continue
            truth = t_95 - ti
            for key in FILL_METHODS.values():
                if first[key] is not None:
                    continue
                if key == "ours":
                    eta = f.time_to_threshold(FILL_THRESHOLD).seconds
                else:
                    eta = _pl_eta(t, x, i, PL_WINDOWS[key])
                if truth / 2 <= eta <= 2 * truth:
                    first[key] = (ti - t_fill) / 60
            if all(v is not None for v in first.values()):
                break
        rows.append(
            {
                "to95": (t_95 - t_fill) / 60,
                "first": first,
                "alarms": alarms,
                "checks": checks,
            }
        )
    return rows


def fill_lines(rows: list[dict]) -> list[str]:
    to95 = np.array([r["to95"] for r in rows])
    checks = sum(r["checks"] for r in rows)
    lines = [
        "",
        "## Sudden fast fills (10-second samples)",
        "",
        f"{len(rows)} synthetic series (seeded with seed + 1000), 10-second samples: a quiet"
        " period of 6-24 h",
        "(start 20-60 %, growth 0-2 %/day, Gaussian noise sd 0.02-0.3 %, on half the series a"
        " daily",
        "cycle of amplitude 0-3 %), then from the fill start the noiseless value rises linearly at",
        "0.2-5 %/min from where it was until 100 % (noise continues). Threshold 95 %; the truth at",
        "each sample after the fill start is the time left until the noiseless fill reaches 95 %"
        " (time",
        f"from the fill start to 95 %: median {np.median(to95):.0f} min, range"
        f" {to95.min():.0f}-{to95.max():.0f} min).",
        "Every method is asked at every sample after the fill start (TrendForecaster fed one"
        " point at a",
        "time from the start of the series, no `falling`; predict_linear over the last 5"
        " minutes or hour",
        "of samples, as in the usual `predict_linear(x[5m], ...)` / `[1h]` alerts). A *useful*"
        " ETA is",
        "within a factor 2 of the truth (truth / 2 <= ETA <= 2 x truth); the table gives the"
        " time from",
        "the fill start to a method's first useful ETA, and that time as a share of the fill's"
        " time to",
        "95 %. A method with no useful ETA before 95 % is reached counts under 'never' and is"
        " charged the",
        "whole time to 95 % (share 100 %) in the median and p90. The last column counts series"
        " where the",
        "method gave an ETA under 4 h at any of the quiet-period checks (every 10 minutes from"
        " the 10th",
        f"minute until the fill starts, {checks} checks in all): false warnings of an imminent"
        " crossing.",
        "This measures only how fast a sudden fill is noticed and how often a quiet disk is"
        " flagged; not",
        "accuracy late in a fill, nor fills that start, stop or change pace.",
        "",
        "| method | median min to first useful ETA | p90 (min) | median share of time to 95 %"
        " used | never | quiet series with an ETA < 4 h |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, key in FILL_METHODS.items():
        mins = np.array([r["to95"] if r["first"][key] is None else r["first"][key] for r in rows])
        never = float(np.mean([r["first"][key] is None for r in rows]))
        false = sum(r["alarms"][key] > 0 for r in rows)
        n_alarm = sum(r["alarms"][key] for r in rows)
        lines.append(
            f"| {label} | {np.median(mins):.1f} | {np.percentile(mins, 90):.1f} |"
            f" {100 * np.median(mins / to95):.0f} % | {100 * never:.0f} % |"
            f" {false} of {len(rows)} ({n_alarm} of {checks} checks) |"
        )
    return lines


CADENCE_NOTES = [
    "Before session 9 the forecaster's daily profile moved a bin by 10 % of its error at",
    "every point, which is 10 % per 5 minutes only at 5-minute samples: at 15 s a 30-minute",
    "bin saw 120 points a visit and kept nothing of the days before, so the profile was the",
    "last visit's noise and whatever the trend fit had not yet taken (it learns",
    "`x - (a + b t)`), and the ETA inherited it. The rate is now per unit of time,",
    "`1 - 0.9^(dt / 300 s)` for a point `dt` after the last one (unchanged at 5 minutes:",
    "the two tables above are identical to the digit). Same seed and series count as this",
    "table, the previous code (commit ff19150) -> this (median error, p90, coverage of the",
    "90 % interval, median width): 60 s 9.1 -> 1.2 h, 78.1 -> 22.5 h, 80 -> 88 %,",
    "0.16 -> 0.10x; 15 s 51.1 -> 1.1 h, 317.1 -> 22.5 h, 65 -> 95 %, 0.34 -> 0.11x.",
]


def cadence_lines(n_series: int, seed: int, steps: list[float]) -> list[str]:
    lines = [
        "",
        "## Other sampling intervals",
        "",
        f"The first section's recipe (seed {seed}, {n_series} series) sampled every 60 s or"
        " 15 s instead of 5 minutes",
        "(the same seed draws other series at another interval).",
        "",
        "| interval | method | median abs error (h) | p90 abs error (h) | answers 'never'"
        " | coverage of the 90 % interval | median width |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for step in steps:
        rows = evaluate(n_series, seed, step)["rows"]
        truth = np.array([r["truth"] for r in rows])
        lo = np.array([r["ours_lo"] for r in rows])
        hi = np.array([r["ours_hi"] for r in rows])
        with np.errstate(invalid="ignore"):
            width = np.where(np.isfinite(hi), (hi - lo) / truth, np.inf)
        for label, key in SLOW_METHODS.items():
            med, p90, _, never = summarise(rows, key)
            extra = (
                f" {100 * np.mean((lo <= truth) & (truth <= hi)):.0f} % | {np.median(width):.2f}x |"
                if key == "ours"
                else " | |"
            )
            lines.append(
                f"| {step:g} s | {label} | {med:.1f} | {p90:.1f} | {100 * never:.0f} % |" + extra
            )
    return [*lines, "", *CADENCE_NOTES]


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
    ap.add_argument("--fills", type=int, default=100)
    ap.add_argument("--step", type=float, default=STEP, help="sampling interval, seconds")
    ap.add_argument("--cadences", default="60,15", help="other intervals (s); '' for none")
    ap.add_argument("--cadence-series", type=int, default=100)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    rows = evaluate(args.series, args.seed, args.step)["rows"]
    subsets = {
        "all": rows,
        "clean-up in the last 24 h": [r for r in rows if r["recent_cut"]],
        "no recent clean-up": [r for r in rows if not r["recent_cut"]],
    }
    every = "5-minute" if args.step == STEP else f"{args.step:g}-second"
    lines = [
        "# Time-to-exhaustion: TrendForecaster vs Prometheus predict_linear",
        "",
        f"Command: `{COMMAND} --series {args.series} --seed {args.seed} --fills {args.fills}"
        f" --cadences '{args.cadences}' --cadence-series {args.cadence_series}"
        + (f" --step {args.step:g}`" if args.step != STEP else "`"),
        "",
        f"Synthetic disk-usage series (seeded): {every} samples over 5-12 days, growth 2-10 %/day,",
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
        for label, key in SLOW_METHODS.items():
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
    if args.fills > 0:
        lines += fill_lines(evaluate_fills(args.fills, args.seed))
    steps = [float(v) for v in args.cadences.split(",") if v.strip()]
    if steps:
        lines += cadence_lines(args.cadence_series, args.seed, steps)
    text = "\n".join(lines)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
