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
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from opsloop.detect.metrics import DefaultMetricDetector, steady
from opsloop.detect.metrics.nab_scoring import PROFILES, FileLabels, score_corpus, window_indices
from opsloop.services.bench_nab import one_blas_thread

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nab_synthetic
from nab_reference_check import windowed_gaussian

DATA = Path("/work/shared/data/nab")
OUT = Path(__file__).resolve().parent / "results" / "nab.md"
PROFILE_NAMES = list(PROFILES)
COMMAND = "PYTHONHASHSEED=0 .venv/bin/python benchmarks/nab.py"

# Every configuration evaluated on this corpus while developing the detector (standard profile).
DEV_LOG = [
    "## Development log (every configuration scored on this corpus, standard profile)",
    "",
    "Views: r = |z|, s = EWMA(z) chart, l = EWMA(z^2), e = shape novelty (16-point z-normalised",
    "window, nearest neighbour among the previous 1000). Unless noted: gate at p < 1e-3,",
    "refractory 100, Bonferroni min-p, TailCalibrator q 0.95 / lam 0.01, no spending.",
    "",
    "| # | variant | standard |",
    "|---|---|---:|",
    "| 0 | previous default (views r s l) | 48.78 |",
    "| 1 | + shape view e (r s l e) | 50.48 |",
    "| 2 | shape view e alone | 19.27 |",
    "| 3 | record gate (decaying max of -log p, tau 100) r s l / r s l e / tau 300 |"
    " 47.45 / 49.07 / 48.94 |",
    "| 4 | record gate tau 1000 / 3000 (q 0.99) | 44.83 / 38.10 |",
    "| 5 | calibrator lam 0.002 / + rho 0.005 / lam 0.002 + q 0.99 | 48.80 / 47.36 / 50.82 |",
    "| 6 | + EWMA of the shape distance as 5th view (q 0.99) / instead of e | 49.66 / 49.16 |",
    "| 7 | q 0.99 with rho 0.2 / q 0.95 with rho 0.1 (faster quantile tracking) | 49.11 / 47.31 |",
    "| 8 | ring-buffer POT calibrator (2000 values, q 0.98) | 49.00 |",
    "| 9 | shape with a level coordinate / global scaling + level | 43.92 / 47.07 |",
    "| 10 | Fisher combination (sum of -log p, calibrated) 5 views / 3 views | 40.37 / 36.22 |",
    "| 11 | asinh variance-stabilising transform (q 0.95 / q 0.99 lam 0.002) | 41.36 / 38.38 |",
    "| 12 | gate level p (q 0.99, lam 0.002): 1e-3 / 3e-3 / 5e-3 / 7.5e-3 / 1e-2 / 2e-2 |"
    " 50.82 / 52.81 / 54.28 / 56.39 / 57.79 / 45.35 |",
    "| 13 | refractory 300 (p 5e-3 / 1e-2); refractory 50 (p 5e-3) | 50.11 / 47.15; 51.30 |",
    "| 14 | escalation gate (re-emit when p drops 10x within an incident), tau 100 / 1000 |"
    " 51.88 / 53.70 |",
    "| 15 | alpha spending horizon (gate 1e-2): none / 1000 / 2000 / 3000 / 5000 / 10000 |"
    " 57.79 / 52.70 / 58.41 / 60.72 / 61.98 / 59.12 |",
    "| 16 | spending 5000 without the shape view | 57.00 |",
    "| 17 | **final default**: r s l e, gate 1e-2, spending 4000 | 62.95 |",
    "| 18 | final with shape window 8 / 32 | 58.97 / 60.20 |",
    "| 19 | final with gate 5e-3 | 56.69 |",
    "| 20 | final with calibrator min_exceedances 5 | 60.33 |",
    "| 21 | final with shape memory 500 / 2000 windows | 59.45 / 60.62 |",
    "",
    "The spending horizon 4000 was picked as the middle of the 3000-5000 plateau before it was",
    "run; it happened to score highest of the sweep. Neighbouring settings lose 1-6 points, so",
    "expect the held-out figure to be lower than the one above.",
]

PROTOCOL = [
    "## Held-out protocol (issue 4)",
    "",
    "The 21 configurations above were all scored on the whole subset, so its 62.95 is",
    "optimistic. Later changes are judged under this protocol, written down before it was run:",
    "",
    "1. Split. A file is in half A when the first byte of `sha256(<category>/<file>.csv)` is",
    "   even, else in half B: A = 16 files / 27 windows (development), B = 15 files /",
    "   30 windows (held out). The split depends on the names only.",
    "2. Score. Each half is scored on its own with the same scorer (`score_corpus`: NAB's",
    "   threshold sweep and normalisation over the files of that half); the full subset as before.",
    "3. Develop only on A. A change is accepted only if (a) it is principled, i.e. follows from",
    "   the model and is stated in the docstring math, not a threshold nudge; (b) it raises A",
    "   (standard profile); (c) checked once, at the end, it does not lower B (standard). B is",
    "   computed once for the baseline and once for the candidate, nothing in between.",
    "4. Unseen series. `benchmarks/nab_synthetic.py` generates NAB-style series with a fixed",
    "   seed (daily cycles, weekend dips, trends, Gaussian / Student-t / Poisson noise; labelled",
    "   spikes, level shifts, ramps, variance changes, seasonality breaks; windows of 10 % of the",
    "   rows split over the anomalies, centred on each onset, as NAB's), scored with the same",
    "   scorer; reported before/after, never used to choose. The recipe was fixed before any",
    "   detector was run on it.",
    "5. Constraints: `score_many` bit-identical to the per-point calls, >= 100k points/s in the",
    "   batch path, bounded memory, old snapshots load.",
    "",
    "Diagnosis on A only (baseline, standard threshold 0.9916: 23/27 windows, 106 FP rows).",
    "The view with the smallest p at each detection: FP rows |z| 76, EWMA(z) 13, shape 13,",
    "EWMA(z^2) 4; TP windows |z| 25, EWMA(z^2) 3, EWMA(z) 2, shape 0. 21 of the 106 FP rows",
    "are recurring spikes (art_increase_spike_density every 200 rows, ec2_cpu_utilization_c6585a",
    "about daily with jitter, which the seasonal profile cannot absorb). Most detections, true",
    "or false, are gate edges with -log10 p between 2.0 and 2.5: the emitted score at the edge",
    "ranks true incidents barely above noise, hence the sweep's threshold just above the gate.",
    "",
    "Candidates, each scored on A (standard / low-FP / low-FN):",
    "",
    "| # | candidate (principle) | A | verdict |",
    "|---|---|---|---|",
    "| 0 | baseline (final default above) | 60.25 / 39.99 / 68.56 | - |",
    "| P1 | Bayesian predictive tail: scale uncertainty of the GPD fit from n_eff exceedances"
    " (xi + 1/n_eff, exact for the exponential tail) | 59.43 / 40.40 / 68.02 | rejected (A) |",
    "| P2 | second-level calibration: TailCalibrator on -log p of the combined p;"
    " p = max(p, p2) / p = p2 | 47.46 / 33.38 / 53.87; 42.04 / 20.79 / 50.25 |"
    " rejected (A) |",
    "| P3 | escalation: re-emit undamped when p falls 10x below the incident's last emitted p"
    " (refractory kept / restarted) | 59.21 / 45.28 / 67.87; 59.01 / 45.28 / 67.73 |"
    " rejected (A) |",
    "| P4 | incident score: emit the smallest p of an incident's first 10 rows (one EWMA time"
    " constant) once, 10 rows late | 58.20 / 38.04 / 67.19 | rejected (A) |",
    "| P5 | empirical tail floor: p_j >= (1 - q) share of the last 64 exceedances >= a"
    " (the fit may extrapolate, not contradict the data); conformal (k + 1) / (E + 1) |"
    " 56.68 / 40.32 / 65.03; 53.79 / 40.23 / 61.69 | rejected (A) |",
    "| P6 | combination of the four views: harmonic-mean p / Cauchy (ACAT) / Simes"
    " min_k 4 p_(k) / k | 58.82 / 40.41 / 68.28; 14.12 (ACAT breaks on views at p = 1);"
    " 60.40 / 43.41 / 69.61 | Simes passed A, rejected on B |",
    "",
    "Simes was the only candidate that raised A (+0.15 standard, +3.4 low-FP, +1.1 low-FN);",
    "implemented in both paths (bit-identical, about the same speed) and checked once on B:",
    "",
    "| configuration | A | B | full | synthetic seed 20240604 / seed 7 (standard) |",
    "|---|---|---|---|---|",
    "| baseline | 60.25 / 39.99 / 68.56 | 65.56 / 50.00 / 72.60 | 62.95 / 44.80 / 70.62 |"
    " 41.43 / 49.03 |",
    "| Simes | 60.40 / 43.41 / 69.61 | 64.85 / 48.56 / 72.12 | 62.15 / 42.31 / 70.67 |"
    " 40.89 / 49.81 |",
    "",
    "B fell (65.56 -> 64.85), so Simes is rejected and the detector is unchanged: nothing",
    "passed the protocol. Not tried: a NAB-style probation inside the detector (NAB never",
    "scores its probationary rows, and a fixed 750-row silence would drop true detections in",
    "short files, e.g. exchange-2's window starts at row 244) and a longer post-alarm",
    "suppression (already the gate; refractory 300 lost in #13). The A/B split also shows the",
    "spread one configuration has across halves: 60.25 vs 65.56 on the same detector, so",
    "differences below a point or two on one half are noise.",
]

ROUND2 = [
    "## Second round under the protocol (session 3)",
    "",
    "Development set widened to half A plus two synthetic corpora that had never been looked",
    "at (seeds 101 and 102); reporting on half B, the full subset and three synthetic seeds",
    "(20240604 and 7 as before, 303 new). Offline harness (`benchmarks/nab_replay.py`): the",
    "detector's un-gated, unspent p of every row, replayed through the spending and gate",
    "variants in seconds (its replay of the defaults reproduces the detector's scores,",
    "`--check`; the adopted change gave exactly the replayed numbers once implemented).",
    "",
    "Diagnosis.",
    "",
    "- The raw surprise does find NAB's anomalies: the largest -log p inside a labelled window",
    "  beats every same-width stretch outside the windows of its file in 26 of 57 windows, and",
    "  95 % of them in 34. It is lost at the gate: the emitted edge scores of true and false",
    "  detections have the same distribution (median -log10 p 2.40 vs 2.35), because the gate",
    "  fires at the first crossing and then damps the rows where the anomaly grows. A",
    "  detector that alarms every 500 rows regardless of the data scores 24.67, so 62.95 is",
    "  not luck, but the ranking of edges carries little.",
    "- Blind calibrators. On art_daily_flatmiddle a 30-sigma residual scored p = 0.026 and",
    "  the next rows p = 0.49: the |z| calibrator's 99 % quantile was 26.7, set by the P-square",
    "  start on rows 50-150 (the models still converging on a square wave), and its",
    "  stochastic-approximation step lowers an overestimate by rho d (1 - q) a row, one",
    "  e-fold per ~5,000 rows; the shape view's calibrator had 6 exceedances after 2,880 rows,",
    "  under the 10 it needs, so that view never spoke.",
    "- Synthetic series lose on false positives: 285-412 FP rows on 40 series, two thirds of",
    "  them in stretches of pure noise (before any anomaly, or in anomaly-free series). That",
    "  is the nominal rate of a gate at p < 1e-2 with spending over 4000 points. Part of the",
    "  misses are true spikes that fell inside the refractory period of a noise alarm and",
    "  were damped to half.",
    "",
    "Candidates (standard profile; A / synthetic 101 / synthetic 102):",
    "",
    "| # | candidate (principle) | A | syn 101 | syn 102 | verdict |",
    "|---|---|---:|---:|---:|---|",
    "| 0 | baseline | 60.25 | 45.88 | 48.22 | - |",
    "| S1 | stale quantile: a q-quantile unexceeded for m = ceil(5 / (1 - q)) values"
    " (q^m ~ 0.7 %) is reset to the largest value since the last exceedance | 62.38 |"
    " 43.72 | 46.37 | raises A only |",
    "| S2 | escalation (P3 again): a p 10x below the last edge's passes the gate and is a"
    " new edge | 59.21 | 52.71 | 55.21 | raises synthetic only |",
    "| S1+S2 | both | **60.75** | **52.28** | **56.40** | **adopted** |",
    "| S3 | S1+S2, the reset also restarts the tail fit (old tail worth 10 exceedances) |"
    " 55.79 | 51.54 | 57.82 | rejected (A) |",
    "| S4 | S1+S2, the reset lands on the k-th largest value, k = (1 - q) m (the stale"
    " stretch's empirical quantile) | 56.09 | 51.54 | 58.74 | rejected (A) |",
    "| S5 | calibrators start learning 100 / 300 rows later (skip the warm-up) |"
    " 52.61 / 47.70 | 41.06 / 38.40 | 50.75 / 50.61 | rejected |",
    "| S6 | HTM-style likelihood: 10-row mean of -log p against its long-run mean and"
    " spread (Gaussian tail), gated | 47.68 | - | - | rejected (A) |",
    "| S7 | gate at p < 1e-3, no escalation (fewer alarms on noise) | 50.49 | 50.91 |"
    " 62.01 | rejected (A) |",
    "| S8 | S1+S2 with calibrators and EWMA states per competing model (no mixing of the"
    " none / daily / weekly residuals across a switch) | 60.84 | 52.19 | 56.40 |"
    " rejected (no gain for 3x the calibration work) |",
    "| S9 | S1+S2, an edge's p multiplied by 1 + c r, r = earlier edges of the series at"
    " least as strong (c 0.25 / 0.5 / 1) | 56.70 / 57.11 / 49.48 | 48.48 / 47.86 / 45.11 |"
    " 54.85 / 54.21 / 53.76 | rejected |",
    "| S10 | S1+S2 without the |z| view / |z| only when its shape is also novel"
    " (max(p_z, p_shape)) | 49.97 / 52.27 | 45.38 / 46.56 | 57.13 / 56.22 | rejected (A) |",
    "| S11 | S1+S2, convergent spending p (n / 4000)^g: a bounded expected number of false"
    " alarms however long a series runs (g = 1 grows like log n); g 1.5 / 2 | 62.99 / 57.28 |"
    " 52.87 / 50.61 | 55.13 / 53.90 | g 1.5 raised A; checked once: B 67.28 -> 65.31, full"
    " 63.90 -> 63.61 (synthetic 47.53 / 53.27 / 46.56): rejected (B) |",
    "| S12 | S1+S2, the spread floored at 0.1x its slow mean (a series flat for a while is"
    " not infinitely precise: |z| reached 1e6 on ec2_disk_write_bytes and rogue_agent) |"
    " 60.89 | 52.28 | 56.40 | rejected (no gain) |",
    "| S13 | S1+S2 with a longer refractory period (escalation now lets strong events"
    " through it): 200 / 400 / 1000 points | 57.07 / 58.01 / 42.42 | 51.27 / 42.68 / 39.72 |"
    " 56.66 / 56.48 / 53.07 | rejected (A) |",
    "| S14 | S1+S2, weighted Bonferroni: the |z| view's share of alpha 0.1 / 0.4 (0.25 now,"
    " the rest split evenly) | 47.60 / 63.81 | 44.89 / 54.35 | 57.99 / 53.83 | not adopted:"
    " a weight has no principled value, choosing it on A is the threshold nudge the"
    " protocol excludes, and the synthetic corpora disagree |",
    "| S15 | S1+S2, an edge also has to be the smallest p of the last W points (a record):"
    " W 100 / 500 / 2000 | 59.54 / 60.94 / 44.59 | 52.41 / 47.85 / 35.84 | 56.41 / 57.78 /"
    " 51.23 | rejected (no consistent gain) |",
    "| S16 | S1+S2, until the |z| view's tail is fitted (10 exceedances, ~600 points), a"
    " Student-t(3) tail for |z| instead of p = 1 (power early in a series) | 59.73 | 52.28 |"
    " 56.40 | rejected (A) |",
    "| S17 | S1+S2, the shape view silent (not scored, not calibrated) until its memory is"
    " full: nearest-neighbour distances among few candidates are biased high and inflate"
    " its quantile | 57.05 | 50.89 | 56.58 | rejected (A) |",
    "",
    "The factor 10 of S2 was fixed before any run (an order of magnitude, as P3). For",
    "transparency, with S1: factor 3 / 30 / 100 / 1000 gives A 57.43 / 61.56 / 62.18 /",
    "62.38 and synthetic 101 51.38 / 50.28 / 49.11 / 46.35, 102 60.52 / 52.80 / 50.25 /",
    "47.92: a trade between NAB's half and the synthetic series, not a free gain; 10 stays.",
    "",
    "Checked once on the held-out sets (standard / low-FP / low-FN):",
    "",
    "| configuration | A | B | full | synthetic 20240604 / 7 / 303 (standard) |",
    "|---|---|---|---|---|",
    "| baseline | 60.25 / 39.99 / 68.56 | 65.56 / 50.00 / 72.60 | 62.95 / 44.80 / 70.62 |"
    " 41.43 / 49.03 / 36.54 |",
    "| S1 alone | 62.38 / 40.14 / 71.22 | 68.19 / 51.68 / 75.46 | 65.15 / 45.64 / 73.26 |"
    " 43.86 / 45.91 / 33.46 |",
    "| S2 alone | 59.21 / 45.28 / 67.87 | 64.83 / 48.53 / 72.11 | 61.98 / 43.62 / 69.98 |"
    " 47.49 / 53.58 / 46.34 |",
    "| **S1+S2 (adopted)** | 60.75 / 46.04 / 70.13 | 67.28 / 49.84 / 74.85 |"
    " 63.90 / 45.94 / 72.42 | 46.94 / 53.06 / 46.00 |",
    "",
    "S1 alone crosses 65 on the full subset but loses on four of the five synthetic corpora",
    "(it unblinds NAB's contaminated series and, on clean synthetic ones, lands its reset",
    "above the true quantile: fewer detections). The issue asks for 65 on NAB and on unseen",
    "series with one configuration; S1+S2 is the configuration that is better than the",
    "baseline on every set (A, B, full, all five synthetic seeds), so it is the one adopted,",
    "and it stays under the bar on NAB (63.90) and far under it on synthetic series (36-56",
    "on eight corpora, the three below included).",
    "Both changes are also product fixes: a series with a wild first hour is no longer blind",
    "for days, and an outage that follows a noise alarm is no longer silenced by it.",
    "",
    "Three further synthetic seeds, run after the decision to check the 'better everywhere'",
    "claim (previous -> adopted, standard): 404 37.73 -> 43.87, 505 54.92 -> 50.93, 606 29.94",
    "-> 35.88. So: better on seven of eight synthetic corpora, not all.",
]

ROUND3 = [
    "## Third round (session 4): views and rules from other detectors",
    "",
    "Harness: every view's calibrated p of every row cached once (per-row path), then",
    "combinations replayed through the real alarm stage. Development on half A and synthetic",
    "seeds 101 / 102 (7 joined them this round). Disclosure: the first replay script printed",
    "half B beside A for the R1 grid below, so B was seen more than once this round; no",
    "candidate was adopted, so no choice rests on it.",
    "",
    "Diagnosis: the emitted score is in effect binary. Scoring the current detector at fixed",
    "thresholds on the full subset (standard): -log10 p >= 2.0 (the gate) 51 windows / 254",
    "false-positive rows, 61.1; >= 2.2: 42 / 177, 53.1; >= 2.6: 36 / 82, 51.1; >= 3: 29 / 44,",
    "42.9. Nine windows are found only by edges within 0.2 decades of the gate, so NAB's sweep",
    "always lands on the gate and the score is the gate's hit and false-alarm counts; HTM",
    "reaches 48 windows with 77 false rows, we need 250 false rows for as many.",
    "",
    "| # | candidate (principle) | A | syn 101 | syn 102 | verdict |",
    "|---|---|---:|---:|---:|---|",
    "| R1 | HTM's NAB spatial rule: a value beyond the range seen so far by more than tol of"
    " that range gets p = min(p, p_sp); tol 0.05 / 0.1 / 0.2, p_sp 1e-3 | 60.55 / 60.55 /"
    " 60.75 | 51.40 / 54.13 / 52.14 | 52.54 / 55.54 / 56.31 | rejected (A, 102) |",
    "| R2 | record view: a new range extreme (margin tol) has p = 2 / n (the chance that the"
    " n-th exchangeable value is a record), as a fifth Bonferroni view; tol 0 / 0.05 / 0.1 |"
    " 58.66 / 61.10 / 57.90 | 51.03 / 53.17 / 54.32 | 54.40 / 54.61 / 55.47 | rejected (no"
    " consistent gain) |",
    "| R3 | the |z| view counts only beyond the range seen so far (HTM ignores in-range"
    " single-point surprises) | 55.39 | 51.44 | 54.35 | rejected (A) |",
    "| R4 | slow level view: |EWMA_0.05 - EWMA_0.005| of the deseasonalised value over the"
    " spread, added as a fifth view / replacing EWMA(z) | 59.86 / 62.57 | 51.51 / 45.36 |"
    " 61.29 / 59.67 | rejected (no consistent gain) |",
    "| R5 | two-sided CUSUM of z (k = 1/2, the optimal sequential test for a persistent"
    " 1-sigma shift) instead of EWMA(z); replayed | 60.87 | 52.35 | 57.39 | passed the"
    " development sets (7: 57.16 vs 53.06) |",
    "",
    "R5 implemented in both paths (bit-identical) and run end to end: A 60.61, B 63.62, full",
    "61.91 (standard; 63.90 before), synthetic 101 / 102 / 7 / 20240604 / 303 / 404 / 505 /",
    "606: 50.86 / 57.26 / 58.66 / 51.51 / 49.02 / 43.12 / 52.22 / 38.53 (before 52.28 / 56.40",
    "/ 53.06 / 46.94 / 46.00 / 43.87 / 50.93 / 35.88). The replay had approximated the CUSUM",
    "from row 50 on; the detector runs it from row 10, through the models' convergence, and",
    "that alone moved the full subset by two points. Better on six of eight synthetic",
    "corpora, two points worse on NAB: rejected, detector unchanged.",
    "",
    "A grid of the two alarm-stage settings on the development sets (gate p 5e-3 / 1e-2 /",
    "2e-2 x spending horizon 1000 / 2000 / 4000 / 8000) puts the current pair (1e-2, 4000) at",
    "the top for A (60.75; next 59.12) and within 1.5 points of the best for every synthetic",
    "seed: no setting of the alarm stage reaches 65. What moves the score is the ranking of",
    "evidence before the gate, and every view tried in three rounds trades NAB rows against",
    "synthetic ones by a few points either way.",
]

ROUND4 = [
    "## Fourth round (session 5): calibration, per-model state, alarm-rate rules",
    "",
    "Harness: `.venv/bin/python benchmarks/nab_views.py [--variant V] [--candidates]`",
    "(per-view p of every row per variant of the views, candidates replayed through the real",
    "alarm stage; it reproduces the shipped detector's A score, 60.75). Development sets: half",
    "A and synthetic seeds 101 / 102 / 7 / 303 (standard profile, in that order below).",
    "Disclosure: a scratch version of the harness printed half B and the full subset next to",
    "A for the view variants and the refractory check; those numbers are given here as seen",
    "(B / full), none was adopted on them.",
    "",
    "Where the points go. At its operating point the detector finds 51 of 57 windows with 223",
    "false-positive rows; HTM finds 48 with 77. Per file HTM has 0 false rows on art_noisy,",
    "ec2_cpu_utilization_5f5533, Twitter_volume_CRM, ec2_network_in_257a54 and",
    "occupancy_6005, where we have 10 / 11 / 14 / 5 / 6; its score stays near 0 between",
    "events. Our 254 false edges at the gate are spread over the whole length of the files",
    "(35 / 54 / 89 / 33 / 43 in rows 0-1k / 1-2k / 2-4k / 4-8k / 8k+); 14 of them come within",
    "100 rows of an earlier edge. Note on the peers: NAB's detector interface hands every",
    "detector the minimum and maximum of the whole file; HTM sets its encoder's resolution",
    "from them and CAD OSE its value bins. That is information from rows after the one being",
    "scored, which the causal contract of `opsloop bench nab` does not allow us.",
    "",
    "Calibration check (all 31 files, rows after probation and outside the windows and the 50",
    "rows before them, 143,000 rows): a calibrated p is below 1e-3 / 1e-4 on about 143 / 14",
    "of them. Observed: |z| 307 / 36, EWMA(z) 505 / 88, EWMA(z^2) 812 / 225, shape 56 / 3.",
    "The EWMA views are over-confident in the far tail by 3-16x: the method-of-moments GPD",
    "fit caps the shape at 0.5, and z^2 of a heavy-tailed z has twice z's tail index.",
    "",
    "| # | candidate (principle) | A | 101 | 102 | 7 | 303 | verdict |",
    "|---|---|---:|---:|---:|---:|---:|---|",
    "| R0 | the shipped detector | 60.75 | 52.28 | 56.40 | 53.06 | 46.00 | |",
    "| R6 | weighted Bonferroni, weights |z| : EWMA(z) : EWMA(z^2) : shape = 2:2:2:1 |"
    " 62.02 | 53.51 | 56.94 | 53.25 | 49.22 | better on all five; held out: B 60.70, full"
    " 60.10 (shipped 67.28 / 63.90): rejected |",
    "| R6' | weights 2:1:1:1 (round two's S14 at |z| share 0.4, same figures: the harness"
    " reproduces it) / 1:2:2:2 / 3:2:2:1 | 63.81 / 52.36 / 59.33 | 54.35 / 47.72 /"
    " 53.60 | 53.83 / 59.87 / 57.47 | 54.00 / 53.70 / 53.86 | 44.15 / 49.21 / 45.75 |"
    " rejected (trades sets) |",
    "| R7 | phase-tolerant |z|: distance to the nearest of the seasonal profile's bins"
    " k-1..k+2 (sharp daily edges with jitter) | 61.02 | 52.19 | 56.40 | 53.06 | 46.00 |"
    " rejected (no change; B / full 66.72 / 63.71) |",
    "| R8 | per-model calibrators: none / day / week each keep their own calibrators and"
    " EWMA state, a seasonal model's fed from one period after it starts (the early"
    " transient of the plain model no longer fits the tail for the whole file) | 59.38 |"
    " 52.38 | 54.50 | 53.99 | 49.78 | rejected (B / full 67.73 / 63.58) |",
    "| R8' | R8 with gate 2e-3 and spending 8000 (window evidence is stronger under R8:"
    " art_daily_flatmiddle -log10 p 2.9 -> 20.5, art_daily_jumpsup 3.1 -> 33.3,"
    " ec2_network_in_257a54 10.6 -> 69.7) | 53.09 | 54.16 | 57.62 | 58.80 | 53.07 |"
    " rejected (A) |",
    "| R9 | alpha spending by alarms: p x (1 + c E), E the past edges decayed over tau rows;"
    " (c, tau) = (1, 1000) / (1, 3000) / (1, 10000) | 58.67 / 52.25 / 53.83 | 50.73 / 49.18"
    " / 48.17 | 55.40 / 59.75 / 59.99 | 52.97 / 55.49 / 54.12 | 49.19 / 52.39 / 55.42 |"
    " rejected (A) |",
    "| R10 | reference from a burn-in: p x 10^(a (M - m0)), M the largest -log10 p of the"
    " first 240 rows (ARTime-like: no more alarms than the start had) | 45.15-49.16 |"
    " 48.82-49.55 | 55.17-59.90 | 53.13-54.41 | 40.16-47.15 | rejected |",
    "| R11 | burst view (HTM's 10-row average of raw surprise): rows among the last 10 with"
    " p(|z|) < 0.01, binomial tail at the running rate; added / replacing |z| | 56.63 /"
    " 58.23 | 52.37 / 50.48 | 54.88 / 55.59 | 53.31 / 51.54 | 53.00 / 52.35 | rejected (A) |",
    "| R12 | calibrated tails by transform: sqrt(EWMA(z^2)) / log1p of the three residual"
    " views (fixes the count at 1e-3 for |z| and EWMA(z): 232, 141) | 60.75 / 55.69 | 51.20"
    " / 49.21 | 56.86 / 53.40 | 52.94 / 53.64 | 46.23 / 38.96 | rejected (mixed / A; B /"
    " full 67.65 / 64.09 and 68.35 / 61.51) |",
    "| R13 | refractory 200 / 400 | 57.07 / 58.01 | 51.27 / 42.68 | 56.66 / 56.48 | 51.43 /"
    " 53.22 | 46.05 / 45.58 | rejected (B 67.38 / 62.70) |",
    "| R14 | familiar alarms: an edge is dropped when k of the last 20 edges deviated as"
    " much (robust deviation from the 50 rows before, same sign); (k, frac) = (2, 0.8) /"
    " (3, 0.8) / (2, 1.0) | 56.68 / 60.82 / 59.20 | 41.92 / 47.01 / 47.27 | 51.82 / 53.62 /"
    " 53.17 | 49.46 / 50.59 / 50.81 | 43.37 / 43.02 / 45.98 | rejected |",
    "",
    "What this round shows. Making the views honest (R12 log) or stronger where the model was",
    "wrong (R8) costs NAB points: the subset's windows are found by the same over-confident",
    "tail rows that make the false alarms, so the sweep cannot separate them. The one",
    "candidate better on every development set (R6) lost 6.6 points on held-out half B: at",
    "this level the halves differ by +-5 points between settings, and no development",
    "evidence we have predicts the held-out score. The detector is unchanged.",
]

ROUND5 = [
    "## Fifth round (session 6): model-level candidates",
    "",
    "Harness: `.venv/bin/python benchmarks/nab_round5.py` (each candidate row by row, or its",
    "alarm stage replayed; standard profile on the development sets half A and synthetic",
    "seeds 101 / 102 / 7 / 303). Diagnosis on A: 72 of the 106 false-positive rows are",
    "single-row upward |z| surprises of the plain (no season) model, which is the active one",
    "on nearly every row of the Twitter series (its one-step error beats the daily model's",
    "there); Twitter_volume_IBM and _PFE alone hold 47; Twitter_volume_CRM's come about once a",
    "day. Half B was not looked at this round.",
    "",
    "| candidate (principle) | A | 101 | 102 | 7 | 303 | verdict |",
    "|---|---:|---:|---:|---:|---:|---|",
    "| shipped | 60.75 | 52.28 | 56.40 | 53.06 | 46.00 | |",
    "| hour-spread: residual spread by hour of day (24 factors, heteroscedastic z) |"
    " 58.46 | 48.69 | 54.85 | 52.18 | 44.98 | rejected |",
    "| min-z: a value is surprising only if no competing model (none / day / week)"
    " explains it | 58.36 | 46.32 | 54.58 | 53.47 | 46.65 | rejected |",
    "| log-z: the spike view as log1p(|z|) (a power-law tail instead of one too light:"
    " |z| gives 2-2.6x the nominal count of small p) | 55.63 | 50.33 | 57.30 | 54.62 |"
    " 46.27 | rejected (A) |",
    "| seasonal profiles of 48 / 96 bins a day (less noise per bin) | 59.58 / 59.89 |"
    " 52.19 / 52.19 | 56.40 / 56.40 | 52.90 / 52.98 | 46.65 / 46.57 | rejected |",
    "| escalation against the incident's smallest p (a new event, not the same one"
    " growing) | 61.36 | 49.55 | 50.81 | 51.81 | 40.07 | rejected (synthetic) |",
    "",
    "Nothing adopted; the detector's scores are unchanged. The batch path became a compiled",
    "loop this session (speed below), bit-identical to the per-row path.",
]

ROUND6 = [
    "## Sixth round (session 7): an empirical floor for the spike view (adopted)",
    "",
    "Principle: a value many standard deviations from the level is not rare if the series",
    "keeps making that move. Each row's per-view p was cached once (the shipped detector, no",
    "spending or gate) and the candidates replayed through the real alarm stage. Floors on",
    "the |z| view's p while the plain model is active (decision 0105):",
    "",
    "- value floor: the share of past values at least as extreme, c / (m + 1) (c > 0);",
    "- move floor: the share of past moves (prev -> x) at least as extreme in both values,",
    "  which a recurring spike matches and the second row of a level shift does not;",
    "- |z| floor: the share of past |z| (or signed z) at least as large (an empirical",
    "  calibration of the view itself).",
    "",
    "Standard profile. Half B was printed beside the development sets for every candidate",
    "of this round (it is not held out here); seeds 20240604 and 505 too.",
    "",
    "| candidate | A | B | 101 | 102 | 7 | 303 | 20240604 | 505 | verdict |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    "| shipped | 60.75 | 67.28 | 52.28 | 56.40 | 53.06 | 46.00 | 46.94 | 50.93 | |",
    "| |z| floor / signed z floor | 54.59 / 54.59 | 63.73 / 63.37 | 51.00 / 52.06 |"
    " 55.25 / 55.13 | 54.05 / 52.20 | 47.63 / 46.18 | 47.35 / 46.46 | 51.07 / 51.29 |"
    " rejected (NAB) |",
    "| value floor, all history (plain model only) | 62.12 | 69.84 | 48.04 | 57.26 | 53.15 |"
    " 47.84 | 47.17 | 50.12 | rejected (101: the first row of a shift to a familiar"
    " height is floored) |",
    "| value floor, last 2000 / 4000 values (A, 101, 102, 7, 303 only) | 59.11 / 60.28 | |"
    " 49.76 / 47.95 | 57.26 / 57.54 | 53.72 / 53.72 | 49.51 / 49.73 | | | rejected |",
    "| value floor, counts decayed over 5000 / 20000 rows | 62.12 / 62.71 | 70.29 / 69.74 |"
    " 48.04 / 48.04 | 57.35 / 57.35 | 53.65 / 53.49 | 47.51 / 47.51 | 46.86 / 46.81 |"
    " 50.89 / 50.52 | rejected (as above) |",
    "| move floor, every move kept | 61.91 | 72.10 | 51.20 | 57.62 | 53.73 | 47.84 | 47.01 |"
    " 51.84 | |",
    "| move floor, triples of values | 61.86 | 71.74 | 52.61 | 56.41 | 53.65 | 47.72 | 46.76 |"
    " 51.61 | no better, more state |",
    "| **move floor, the 64 most extreme moves each way (adopted)** | **62.12** | **72.10** |"
    " **51.20** | **57.62** | **53.73** | **47.84** | **47.01** | **51.84** | better on"
    " seven of eight sets |",
    "",
    "The bounded memory gives the same figures with 32 or 256 moves kept (A 62.12 / 61.91;",
    "seed 20240604 48.22 with 32): the floor only matters in the tail, where the kept moves",
    "are exact. On the full subset: 63.90 / 45.94 / 72.42 -> 66.74 / 52.83 / 73.15 (standard",
    "/ low-FP / low-FN); at the standard operating point 49 windows and 157 false rows",
    "(was 51 and 223). Low-FP on half A and on seeds 101, 7 and 20240604 fell a little",
    "(A 46.04 -> 44.31).",
    "",
    "Then, with the floor in place, the EWMA charts' echo of single spikes (decision 0106):",
    "the charts read z clipped to +-c (Huber's robust EWMA chart). Replayed exactly through",
    "the real detector (`DefaultMetricDetector` with the clip, row by row, then the shipped",
    "alarm stage); standard profile:",
    "",
    "| charts' input | A | B | 101 | 102 | 7 | 303 | 20240604 | 505 | full | verdict |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    "| z (the floor alone) | 62.12 | 72.10 | 51.20 | 57.62 | 53.73 | 47.84 | 47.01 | 51.84 |"
    " 66.74 | |",
    "| clip 4 (level chart only / spread chart only) | 69.03 (66.00 / 61.78) | 68.59"
    " (68.50 / 71.40) | 49.13 (50.75 / 48.76) | 58.95 (58.54 / 60.71) | 55.97 (57.20 /"
    " 55.33) | 61.92 (55.94 / 59.01) | 44.93 (47.53 / 47.82) | 50.10 (50.77 / 52.53) |"
    " 68.07 (66.23 / 65.51) | mixed |",
    "| clip 5 | 62.12 | 72.15 | 51.32 | 59.00 | 55.04 | 58.40 | 50.66 | 52.24 | 66.24 |"
    " better or equal on all eight |",
    "| **clip 6 (adopted)** | **65.15** | **72.35** | **53.54** | 55.63 | **58.00** |"
    " **61.10** | **48.64** | 51.84 | **68.37** | better on six of eight, the middle of"
    " the range that works |",
    "| clip 8 | 65.48 | 72.73 | 51.95 | 55.77 | 56.35 | 59.06 | 49.22 | 52.08 | 68.12 |"
    " better on seven of eight |",
    "",
    "With both changes the full subset scores 68.37 / 56.14 / 74.24 (standard / low-FP /",
    "low-FN), was 63.90 / 45.94 / 72.42 at the start of the session.",
]

ROUND7 = [
    "## Seventh round (session 8): the data's resolution (one adopted, three rejected)",
    "",
    "Twitter_volume_PFE (mostly 0, now and then 1 or 2 mentions) had 8 of its 18 false rows",
    "from the shape view: sixteen zeros in a row are the zero vector after z-normalising,",
    "at the largest distance from windows whose single count was blown up to a whole shape.",
    "Floor the window's spread at the series' quantum q (the smallest non-zero step seen, 1",
    "for counts; decision 0107). Then, separately, floors on the two chart views' p at what",
    "the chart value would have under i.i.d. N(0, 1) residuals (level chart: erfc(a2 /",
    "sqrt 2); spread chart: Wilson-Hilferty for EWMA_0.05(z^2) as a gamma of mean 1): a",
    "chart the series' own short, autocorrelated history calls rare but that is ordinary",
    "for well-behaved residuals. Each run row by row through the real detector (standard):",
    "",
    "| candidate | A | B | full | 101 | 102 | 7 | 303 | 20240604 | 505 | 404 | 606 | verdict |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    "| before | 65.15 | 72.35 | 68.37 | 53.54 | 55.63 | 58.00 | 61.10 | 48.64 | 51.84 |"
    " 42.74 | 44.29 | |",
    "| **shape spread >= q (adopted)** | **66.86** | 72.35 | **68.48** | **53.73** | 55.63 |"
    " **58.08** | 61.10 | **48.86** | **52.07** | 42.74 | 44.29 | no set worse |",
    "| + z's spread >= q | 66.87 | 69.17 | 66.60 | 53.81 | | | | | | | | rejected (NAB) |",
    "| + level-chart floor | 66.87 | 73.08 | 68.86 | 54.74 | 54.63 | 60.38 | 61.32 | 49.37 |"
    " 51.00 | 43.67 | 43.20 | mixed (five of eight synthetic better) |",
    "| + spread-chart floor | 66.86 | 73.27 | 68.96 | 54.15 | 56.22 | 58.67 | 57.21 | 49.91 |"
    " 52.14 | 43.53 | 44.96 | mixed (303 -3.9) |",
    "| + both chart floors | 66.87 | 73.81 | 69.25 | 55.26 | 55.17 | 60.71 | 57.43 | 50.58 |"
    " 51.06 | 44.45 | 43.62 | mixed (four of eight) |",
    "",
    "The chart floors gain on NAB (the full subset +0.8 with both) but split the synthetic",
    "corpora, so they are not adopted: a gain that shows on the corpus the detector was",
    "developed on and not on unseen series is what this issue warns against.",
]

ROUND8 = [
    "",
    "## Eighth round (session 9): a seasonal bin learns per period, not per point (adopted)",
    "",
    "A seasonal bin learned 20 % of its error per point. A 30-minute weekly bin sampled",
    "every 5 minutes is visited six points in a row, so it kept 0.8^6 = 26 % of last",
    "week; a 5-minute daily bin sampled every 15 s (20 points a visit) kept 1 %. The rate",
    "is now 20 % per period at any interval (per point 1 - 0.8^(1/v), v points a visit),",
    "and unchanged where a visit is one point (NAB's daily bins). Standard scores, the",
    "synthetic corpora at 5 minutes and, with `nab_synthetic.py --step`, at 60 s and 15 s:",
    "",
    "| candidate | full | 101 | 102 | 7 | 303 | 20240604 | 505 | 404 | 606 |"
    " 7 at 60 s | 101 at 60 s | 7 at 15 s |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    "| before | 68.48 | 53.73 | 55.63 | 58.08 | 61.10 | 48.86 | 52.07 | 42.74 | 44.29 |"
    " 40.65 | 52.74 | 24.40 |",
    "| **per period (adopted)** | **68.57** | 53.73 | 55.63 | 58.01 | 61.10 | 48.86 |"
    " 52.07 | **42.94** | 44.29 | 40.65 | 52.74 | 24.40 |",
    "",
    "Adopted as the model it should have been, not for the figures: they barely move. At",
    "60 s and 15 s nothing moves because the no-season model is active on every series",
    "there (it tracks a cycle that changes little from one point to the next), so the",
    "seasonal models' learning rate does not reach the score. What does fall with the",
    "interval is the score itself (7: 58 at 5 minutes, 41 at 60 s, 24 at 15 s): NAB's",
    "windows are 10 % of the rows, so a 15-second series has 20 times the rows, and the",
    "false rows, per window. Of the 40 series of seed 7, at the gate (score >= 0.99),",
    "the windows found were 62 of 71 at 5 minutes, 54 of 60 at 60 s and 45 of 52 at 15 s",
    "(the same seed draws other anomalies at another interval), with 406, 1468 and 2407",
    "false rows (`benchmarks/nab_synthetic.py --seed 7 --step 15` prints them).",
]

SPEED_NOTES = [
    "## Speed work (issue 4: >= 100,000 points/s on one core)",
    "",
    "`opsloop bench nab` ran the previous version at about 45,000 points/s and runs this one",
    "at about 200,000 (same machine, runs interleaved, peak RSS 57 -> 63 MiB). The per-row",
    "path spent half its time in the shape view's 1000 x 16 matrix-vector product and a dozen",
    "small numpy calls per row. `DefaultMetricDetector.score_many(values, timestamps)` runs",
    "the same causal recurrence over a whole series: non-finite rows are dropped up front",
    "(they score 0 and change nothing), `ShapeNovelty.score_many` computes the shape view of",
    "every row with blocked matrix products (the candidates of 64 consecutive windows are a",
    "diagonal band of one product), and everything else runs as one loop over local",
    "variables with the per-row methods inlined. Same scores, bit for bit, as the per-row",
    "calls (a test checks it on messy series, across snapshots and mixed calls; on this",
    "corpus the line above).",
    "",
    "To make that exact on any BLAS, shape vectors are now rounded to a 2^-16 grid: every dot",
    "product is then an exact sum (multiples of 2^-32 below 2^21), independent of the order in",
    "which a matrix-vector or a matrix-matrix kernel adds. That rounding (and plain",
    "left-to-right window sums instead of `math.fsum`) changed the emitted scores of the",
    "previous version on 4,428 of 179,391 rows at 6 decimals, 9 by more than 1e-3 (one gate",
    "flip, 0.97); the NAB scores are unchanged to 4 decimals (62.949 / 44.7974 / 70.621).",
    "Nothing was tuned: no parameter changed.",
]


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


def half(name: str) -> str:
    """``"A"`` (development) or ``"B"`` (held out): parity of ``sha256(name)``'s first byte."""
    return "A" if hashlib.sha256(name.encode()).digest()[0] % 2 == 0 else "B"


def half_scores(
    results: dict[str, np.ndarray], labels: dict[str, FileLabels]
) -> dict[str, dict[str, float]]:
    """Normalised score per profile on half A, half B and the whole subset, each swept alone."""
    out = {}
    for h in ("A", "B", "full"):
        names = [n for n in labels if h == "full" or half(n) == h]
        res = {n: results[n] for n in names}
        lab = {n: labels[n] for n in names}
        out[h] = {p: score_corpus(res, lab, p).normalised for p in PROFILE_NAMES}
    return out


def load_reference(data: Path, detector: str, names: list[str]) -> dict[str, np.ndarray]:
    out = {}
    for name in names:
        category, file = name.split("/")
        path = data / "reference_results" / detector / category / f"{detector}_{file}"
        with path.open() as fh:
            out[name] = np.array([float(r["anomaly_score"]) for r in csv.DictReader(fh)])
    return out


def compile_seconds() -> float:
    """Seconds a fresh process takes to compile the detector's loop (empty numba cache)."""
    code = "from opsloop.detect.metrics import steady; print(steady.warm())"
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "NUMBA_CACHE_DIR": tmp}
        run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    return float(run.stdout.split()[-1])


def run_detector(
    series: dict[str, tuple[np.ndarray, np.ndarray]], batch: bool = True
) -> tuple[dict, float]:
    """Scores per file and detection seconds: ``score_many`` (as ``opsloop bench nab``), or
    ``score_one``/``learn_one`` per row (as live ingest)."""
    results: dict[str, np.ndarray] = {}
    seconds = 0.0
    steady.warm()  # the compiled loop, loaded once per process (timed apart: main)
    for name, (ts, values) in series.items():
        tl, xl = ts.tolist(), values.tolist()
        with one_blas_thread():
            t0 = time.perf_counter()
            det = DefaultMetricDetector()
            if batch:
                out = det.score_many(xl, tl)
            else:
                out = []
                for t, x in zip(tl, xl, strict=True):
                    out.append(det.score_one(t, x))
                    det.learn_one(t, x)
            seconds += time.perf_counter() - t0
        results[name] = np.asarray(out)
    return results, seconds


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
    cold = compile_seconds()
    load = steady.warm()
    ours, seconds = run_detector(series)
    streamed, stream_seconds = run_detector(series, batch=False)
    identical = all(np.array_equal(ours[n], streamed[n]) for n in names)
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
    ours_std, htm_std = table["opsloop default"]["standard"], table["numenta"]["standard"]
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
        "windowedGaussian's shipped results are rounded to 6 significant digits, which ties the",
        "rows NAB's optimal thresholds separate, so no scorer reaches the published figures from",
        "that file. `benchmarks/nab_reference_check.py` rebuilds the (deterministic) detector with",
        "a line-for-line port of NAB's code, identical to the file on every row at 6 digits,",
        "writes it at 12 digits as NAB's Python 2 results were, and the same scorer then gives",
        "36.7102 / 21.3976 / 45.1727 (published 36.71 / 21.40 / 45.17).",
        "",
        "## Honest assessment",
        "",
        "The default detector (residual views + shape-novelty view floored at the data's",
        "quantum, a familiar-move floor on",
        "the spike view, EWMA charts of a clipped residual, gate at p < 1e-2 with escalation,",
        "alpha spending over 4000 points, calibrators that reset stale quantiles) scores "
        f"{ours_std.normalised:.2f} on this subset: above the issue's bar of 65, below HTM",
        f"({htm_std.normalised:.2f}) and ARTime (78.15). Against HTM it catches "
        f"{ours_std.true_positives} windows to {htm_std.true_positives}, with "
        f"{ours_std.false_positives} false-positive rows to {htm_std.false_positives},",
        "most in the four 15,900-row Twitter series. The first 21 configurations below were",
        "chosen on this same corpus and half B was visible in round six, so the subset figure",
        "is optimistic; the synthetic corpora score 49-61 (101 and 102 were development sets",
        "in rounds five and six), and the issue's 65 on unseen series is not reached there.",
        "",
        *DEV_LOG,
        "",
        *PROTOCOL,
        "",
        *ROUND2,
        "",
        *ROUND3,
        "",
        *ROUND4,
        "",
        *ROUND5,
        "",
        *ROUND6,
        "",
        *ROUND7,
        *ROUND8,
        "",
        "This run, by half (standard / low-FP / low-FN):",
        "",
        "| detector | A | B | full |",
        "|---|---|---|---|",
    ]
    for det in ("numenta", "opsloop default"):
        if det in detectors:
            hs = half_scores(detectors[det], labels)
            lines.append(
                f"| {det} | "
                + " | ".join(" / ".join(f"{hs[h][p]:.2f}" for p in PROFILE_NAMES) for h in hs)
                + " |"
            )
    with one_blas_thread():
        for seed in (nab_synthetic.SEED, 7, 303):
            corpus = nab_synthetic.generate(seed)
            syn, _ = nab_synthetic.score(corpus, DefaultMetricDetector)
            # NAB's windowedGaussian baseline on the same unseen series (its NAB-subset score
            # is in the table above): how hard a corpus is, for scale
            wg = {
                n: np.asarray(windowed_gaussian(x.tolist())) for n, (_, x, _, _) in corpus.items()
            }
            wg_labels = {n: FileLabels(len(x), tuple(w)) for n, (_, x, w, _) in corpus.items()}
            base = [score_corpus(wg, wg_labels, p).normalised for p in PROFILE_NAMES]
            for det, vals in (("opsloop default", [syn[p] for p in PROFILE_NAMES]),
                              ("windowedGaussian", base)):  # fmt: skip
                lines.append(
                    f"| {det}, synthetic seed {seed} (40 series) | | | "
                    + " / ".join(f"{v:.2f}" for v in vals)
                    + " |"
                )
    lines += [
        "",
        f"Detector run time, Python {platform.python_version()}, one core (BLAS limited to one"
        " thread), wall clock:",
        "",
        f"- `score_many` per file (as `opsloop bench nab`): {seconds:.2f} s for {n_points} points,"
        f" {1e6 * seconds / n_points:.2f} us/point, {n_points / seconds:,.0f} points/s;",
        f"- `score_one` + `learn_one` per row (as live ingest): {stream_seconds:.2f} s,"
        f" {1e6 * stream_seconds / n_points:.2f} us/point, {n_points / stream_seconds:,.0f}"
        " points/s;",
        f"- `score_many` runs its steady state as one compiled loop (numba): loaded in {load:.2f} s"
        f" once per process (untimed above), compiled in {cold:.2f} s once per install (`make"
        f" install` does it); counting a compile, the run is"
        f" {n_points / (seconds + cold):,.0f} points/s;",
        f"- the two give {'identical' if identical else 'DIFFERENT'} scores on every row"
        " (compared as doubles).",
        "",
        *SPEED_NOTES,
    ]
    text = "\n".join(lines)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    print("scorer validation:", "all reproduced" if ok else "not all reproduced, see table")
    return 0


if __name__ == "__main__":
    sys.exit(main())
