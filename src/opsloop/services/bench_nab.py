"""``opsloop bench nab``: run the default metric detector over a NAB-style corpus and score it.

Layout (as NAB's): ``DIR/data/<category>/<file>.csv`` with ``timestamp,value`` and optionally
``DIR/labels/combined_windows.json``. Results go to
``OUT/opsloop/<category>/opsloop_<file>.csv`` with ``timestamp,value,anomaly_score,label``.
Detection is strictly causal: each row is scored before it is learned.
"""

from __future__ import annotations

import csv
import json
import resource
import time
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsloop.detect.metrics import DefaultMetricDetector, steady
from opsloop.detect.metrics.nab_scoring import PROFILES, FileLabels, score_corpus, window_indices

DETECTOR = "opsloop"


def one_blas_thread() -> AbstractContextManager[object]:
    """Limit BLAS to one thread while detecting: the benchmark is "on one core".

    The shape view's batch path does its nearest-neighbour search as matrix products; a
    multi-threaded BLAS would spread them over cores (and, on a busy machine, spin).
    ``threadpoolctl`` comes with scikit-learn (an MLflow dependency); without it this is a no-op.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - only without scikit-learn
        return nullcontext()
    return threadpool_limits(1)


class NabError(Exception):
    """A NAB input is missing or malformed (one-line message)."""


def parse_timestamp(text: str) -> float:
    """Epoch seconds of a NAB timestamp (``2014-04-01 00:00:00``, taken as UTC)."""
    dt = datetime.fromisoformat(text.strip().replace(" ", "T"))
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def read_series(path: Path) -> tuple[list[str], list[float], list[float]]:
    """Raw timestamps, epoch seconds and values of one ``timestamp,value`` file."""
    stamps, ts, values = [], [], []
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if not {"timestamp", "value"} <= set(reader.fieldnames or []):
            raise NabError(f"{path}: expected columns timestamp,value")
        for n, row in enumerate(reader, 2):
            try:
                t, x = parse_timestamp(row["timestamp"]), float(row["value"])
            except ValueError as exc:
                raise NabError(f"{path}:{n}: {exc}") from None
            stamps.append(row["timestamp"])
            ts.append(t)
            values.append(x)
    return stamps, ts, values


def corpus_files(data_dir: Path) -> list[str]:
    """``<category>/<file>.csv`` names under ``DIR/data``, sorted."""
    root = data_dir / "data"
    if not root.is_dir():
        raise NabError(f"{data_dir}: no data/ folder (expected NAB's layout)")
    names = sorted(str(p.relative_to(root)) for p in root.glob("*/*.csv"))
    if not names:
        raise NabError(f"{root}: no <category>/<file>.csv found")
    return names


def load_windows(data_dir: Path) -> dict[str, list[tuple[float, float]]] | None:
    """Anomaly windows per file in epoch seconds, or ``None`` without a labels file."""
    path = data_dir / "labels" / "combined_windows.json"
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
    except ValueError as exc:
        raise NabError(f"{path}: invalid JSON: {exc}") from None
    return {k: [(parse_timestamp(a), parse_timestamp(b)) for a, b in v] for k, v in raw.items()}


def _labels_for(
    ts: list[float], windows: list[tuple[float, float]]
) -> tuple[FileLabels, list[int]]:
    rows = tuple(window_indices(ts, windows))
    flags = [0] * len(ts)
    for a, b in rows:
        for i in range(a, b + 1):
            flags[i] = 1
    return FileLabels(len(ts), rows), flags


def score_all(results: dict[str, list[float]], labels: dict[str, FileLabels]) -> dict[str, float]:
    """Normalised NAB score per profile."""
    return {p: round(score_corpus(results, labels, p).normalised, 4) for p in PROFILES}


def run_nab(data_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Detect over every file, write the results folder; score when labels exist."""
    names = corpus_files(data_dir)
    windows = load_windows(data_dir)
    results: dict[str, list[float]] = {}
    labels: dict[str, FileLabels] = {}
    points = 0
    seconds = 0.0
    # the detector's compiled loop: loaded once per process, outside the timed detection
    jit_seconds = steady.warm()
    for name in names:
        stamps, ts, values = read_series(data_dir / "data" / name)
        with one_blas_thread():
            started = time.perf_counter()
            # score_many: the same causal recurrence as score_one/learn_one per row, bit for bit
            scores = DefaultMetricDetector().score_many(values, ts)
            seconds += time.perf_counter() - started
        points += len(values)
        results[name] = scores
        flags = [0] * len(ts)
        if windows is not None and name in windows:
            labels[name], flags = _labels_for(ts, windows[name])
        category, file = name.split("/", 1)
        target = out_dir / DETECTOR / category / f"{DETECTOR}_{file}"
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["timestamp", "value", "anomaly_score", "label"])
            for row in zip(stamps, values, scores, flags, strict=True):
                w.writerow([row[0], repr(row[1]), f"{row[2]:.6f}", row[3]])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    summary: dict[str, Any] = {
        "files": len(names),
        "points": points,
        "detect_seconds": seconds,
        "jit_load_seconds": jit_seconds,
        "points_per_second": points / seconds if seconds else 0.0,
        "peak_rss_bytes": peak,
    }
    if windows is not None:
        summary["scores"] = score_all(results, labels)
    return summary


def score_results(data_dir: Path, results_dir: Path) -> dict[str, dict[str, float]]:
    """Score an existing results folder (one detector, or one subfolder per detector)."""
    windows = load_windows(data_dir)
    if windows is None:
        raise NabError(f"{data_dir}: no labels/combined_windows.json to score against")
    names = corpus_files(data_dir)
    ts_of = {n: read_series(data_dir / "data" / n)[1] for n in names}
    labels = {n: _labels_for(ts_of[n], windows.get(n, []))[0] for n in names}
    categories = {n.split("/", 1)[0] for n in names}
    if any((results_dir / c).is_dir() for c in categories):
        detectors = {_detector_name(results_dir): results_dir}
    else:
        detectors = {p.name: p for p in sorted(results_dir.iterdir()) if p.is_dir()}
    if not detectors:
        raise NabError(f"{results_dir}: no results found")
    out = {}
    for det, folder in detectors.items():
        results = {}
        for n in names:
            category, file = n.split("/", 1)
            path = folder / category / f"{det}_{file}"
            if not path.is_file():
                raise NabError(f"{path}: missing result file")
            with path.open(newline="") as fh:
                results[n] = [float(r["anomaly_score"]) for r in csv.DictReader(fh)]
            if len(results[n]) != labels[n].n_rows:
                raise NabError(f"{path}: {len(results[n])} rows, data has {labels[n].n_rows}")
        out[det] = score_all(results, labels)
    return out


def _detector_name(folder: Path) -> str:
    for path in folder.glob("*/*.csv"):
        return path.name.split("_", 1)[0]
    raise NabError(f"{folder}: no result files")
