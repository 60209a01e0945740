"""Validate opsloop's NAB scorer against the published scores of two reference detectors.

    .venv/bin/python benchmarks/nab_reference_check.py [--data ../shared/data/nab]

1. Numenta HTM: its shipped per-row results are scored with ``opsloop bench nab --score``'s code.
2. windowedGaussian: its shipped results were rounded to 6 significant digits, which merges the
   rows NAB's optimal threshold separates (hundreds of scores become exactly ``1``), so no
   scorer can reproduce the published figures from that file. The detector is deterministic, so
   it is rebuilt here with a line-for-line port of NAB's ``windowedGaussian`` detector, checked
   row for row against the shipped file at 6 digits, written at 12 significant digits (the
   precision of NAB's Python 2 results files) and scored.

Exits 1 if any profile is more than 0.01 away from ``reference_scores.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

from opsloop.services.bench_nab import corpus_files, read_series, score_results

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nab"
TOLERANCE = 0.01


def _normal_probability(x: float, mean: float, std: float) -> float:
    if x < mean:
        return _normal_probability(2 * mean - x, mean, std)
    z = (x - mean) / std
    return 0.5 * math.erfc(z / math.sqrt(2))


def windowed_gaussian(values: list[float]) -> list[float]:
    """NAB's windowedGaussian detector (window 6400, step 100), ported line for line."""
    window_size, step_size = 6400, 100
    window: list[float] = []
    step: list[float] = []
    mean, std = 0.0, 1.0
    out = []
    for v in values:
        score = 1 - _normal_probability(v, mean, std) if window else 0.0
        updated = False
        if len(window) < window_size:
            window.append(v)
            updated = True
        else:
            step.append(v)
            if len(step) == step_size:
                window = window[step_size:] + step
                step = []
                updated = True
        if updated:
            mean = float(np.mean(window))
            std = float(np.std(window)) or 0.000001
        out.append(score)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    args = ap.parse_args(argv)
    reference = json.loads((args.data / "reference_scores.json").read_text())
    ok = True
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        mismatches = total = 0
        for name in corpus_files(args.data):
            stamps, _, values = read_series(args.data / "data" / name)
            scores = windowed_gaussian(values)
            category, file = name.split("/", 1)
            shipped = args.data / "reference_results" / "windowedGaussian" / category
            with (shipped / f"windowedGaussian_{file}").open() as fh:
                ref_scores = [float(r["anomaly_score"]) for r in csv.DictReader(fh)]
            mismatches += sum(float(f"{a:g}") != b for a, b in zip(scores, ref_scores, strict=True))
            total += len(scores)
            target = Path(tmp) / "windowedGaussian" / category / f"windowedGaussian_{file}"
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["timestamp", "anomaly_score"])
                w.writerows((t, f"{s:.12g}") for t, s in zip(stamps, scores, strict=True))
        print(
            f"windowedGaussian port vs shipped 6-digit results: {mismatches} of {total} rows differ"
        )
        ok &= mismatches == 0
        shipped_root = args.data / "reference_results"
        scored = {
            "numenta (shipped results)": ("numenta", shipped_root / "numenta"),
            "windowedGaussian (shipped, 6 digits)": (
                "windowedGaussian",
                shipped_root / "windowedGaussian",
            ),
            "windowedGaussian (rebuilt, 12 digits)": (
                "windowedGaussian",
                Path(tmp) / "windowedGaussian",
            ),
        }
        scored = {
            k: (det, score_results(args.data, folder)[det]) for k, (det, folder) in scored.items()
        }
    print("| input | profile | ours | published | diff |\n|---|---|---:|---:|---:|")
    for label, (det, scores) in scored.items():
        for profile, value in scores.items():
            pub = float(reference[det][profile])
            diff = abs(value - pub)
            checked = "shipped, 6 digits" not in label
            rows.append((label, profile, value, pub, diff))
            flag = "" if not checked else (" ✓" if diff <= TOLERANCE else " ✗")
            print(f"| {label} | {profile} | {value:.4f} | {pub:.2f} | {diff:.4f}{flag} |")
            if checked and diff > TOLERANCE:
                ok = False
    print("all checked profiles within 0.01" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
