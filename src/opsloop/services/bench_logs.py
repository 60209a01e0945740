"""The log benchmarks behind ``opsloop bench``: Loghub grouping/parsing accuracy and HDFS sessions.

Both read a user-given folder or file; nothing here depends on the repository's ``shared/``.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opsloop.detect.logs.hdfs_format import (
    labels_from_rows,
    precision_recall_f1,
    score_sessions,
    train_count_rules,
)
from opsloop.detect.templates import TemplateMiner
from opsloop.detect.templates.scoring import grouping_accuracy, parsing_accuracy
from opsloop.observe.logformat import LogParser

csv.field_size_limit(16 * 1024 * 1024)


class BenchError(Exception):
    """A benchmark input is missing or malformed (one-line message)."""


def loghub_systems(data_dir: Path) -> list[tuple[str, Path, Path, str]]:
    """``(name, raw log, structured csv, header format)`` for each system in a Loghub-2k folder."""
    formats_file = data_dir / "formats.json"
    if not formats_file.is_file():
        raise BenchError(f"{data_dir}: no formats.json (expected a Loghub-2k layout)")
    try:
        formats = json.loads(formats_file.read_text())
    except ValueError as exc:
        raise BenchError(f"{formats_file}: invalid JSON: {exc}") from None
    out = []
    for name, fmt in sorted(formats.items()):
        log = data_dir / name / f"{name}_2k.log"
        truth = data_dir / name / f"{name}_2k.log_structured.csv"
        if log.is_file() and truth.is_file():
            out.append((name, log, truth, fmt))
    if not out:
        raise BenchError(f"{data_dir}: no <S>/<S>_2k.log with its _structured.csv found")
    return out


def score_system(
    log: Path, truth_csv: Path, fmt: str, make_miner: Callable[[], Any] = TemplateMiner
) -> dict[str, Any]:
    """GA and PA of one system: parse every line with ``fmt``, mine, compare with the truth."""
    with truth_csv.open(newline="", encoding="utf-8", errors="replace") as fh:
        truth = [row["EventTemplate"] for row in csv.DictReader(fh)]
    parser = LogParser(fmt)
    raw_lines = log.read_bytes().splitlines()
    if len(raw_lines) != len(truth):
        raise BenchError(f"{log}: {len(raw_lines)} lines but {len(truth)} truth rows")
    miner = make_miner()
    started = time.perf_counter()
    ids = [miner.learn_one(parser.parse(raw).content).template_id for raw in raw_lines]
    seconds = time.perf_counter() - started
    final_ids = [miner.resolve(i) for i in ids]
    predicted = [miner.template(i) for i in final_ids]
    return {
        "lines": len(ids),
        "ga": grouping_accuracy(truth, final_ids),
        "pa": parsing_accuracy(truth, predicted),
        "templates": len(set(final_ids)),
        "true_templates": len(set(truth)),
        "seconds": seconds,
    }


def run_loghub(data_dir: Path, make_miner: Callable[[], Any] = TemplateMiner) -> dict[str, Any]:
    """Score every system of a Loghub-2k folder; per-system rows and the means."""
    rows = []
    for name, log, truth, fmt in loghub_systems(data_dir):
        rows.append({"system": name, **score_system(log, truth, fmt, make_miner)})
    n = len(rows)
    return {
        "systems": rows,
        "mean_ga": sum(r["ga"] for r in rows) / n,
        "mean_pa": sum(r["pa"] for r in rows) / n,
    }


def _read_rows(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise BenchError(f"{path}: missing column(s) {', '.join(missing)}")
            return [{c: row[c] for c in reader.fieldnames or [] if c in columns} for row in reader]
    except OSError as exc:
        raise BenchError(f"cannot read {path}: {exc.strerror}") from None


def run_hdfs(train_csv: Path, test_csv: Path, out_csv: Path) -> dict[str, Any]:
    """Train on ``train_csv``'s sessions without reading its ``Label`` column; score ``test_csv``.

    Writes ``BlockId,Score,Predicted`` (1 = anomalous) to ``out_csv``; when the test file has
    labels, the summary carries precision, recall and F1.
    """
    started = time.perf_counter()
    train = _read_rows(train_csv, ("BlockId", "EventSequence"))  # Label is never read
    model = train_count_rules((r["BlockId"], r["EventSequence"].split()) for r in train)
    trained = time.perf_counter()
    test = _read_rows(test_csv, ("BlockId", "EventSequence", "Label"))
    results = score_sessions(model, [(r["BlockId"], r["EventSequence"].split()) for r in test])
    with out_csv.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["BlockId", "Score", "Predicted"])
        w.writerows((k, f"{s:.6g}", p) for k, s, p in results)
    summary: dict[str, Any] = {
        "train_sessions": len(train),
        "test_sessions": len(results),
        "predicted_anomalous": sum(p for *_, p in results),
        "train_seconds": trained - started,
        "score_seconds": time.perf_counter() - trained,
    }
    labels = labels_from_rows(test)
    if labels is not None:
        p, r, f1 = precision_recall_f1([labels[k] for k, *_ in results], [x for *_, x in results])
        summary.update(precision=p, recall=r, f1=f1, test_anomalous=sum(labels.values()))
    return summary
