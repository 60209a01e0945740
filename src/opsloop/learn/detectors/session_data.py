"""Labelled sessions for the log-session pipeline, from a sessions CSV or from stored telemetry.

A labelled session is ``[key, events, label]`` (JSON-able, so it can be a pipeline artifact):
``label`` is 1 (anomalous), 0 (normal) or ``None`` (unlabelled: used for training, not for
evaluation).

* **CSV** (HDFS style, as in ``/work/shared/data/hdfs``): columns ``BlockId``, ``EventSequence``
  (space-separated event names) and optionally ``Label`` (1/0; empty = unlabelled). A template
  table (``TemplateId``/``EventId``, ``EventTemplate``) may come with it.
* **Telemetry**: stored log lines are grouped into sessions with the session-key regex and the
  idle timeout (:class:`~opsloop.detect.logs.sessions.SessionGrouper`, as the live engine does),
  events being template ids resolved through the miner's merges. Labels come from the
  operators' feedback on session alerts: a verdict ``true_problem`` marks the session anomalous,
  ``noise`` normal, ``duplicate`` says nothing about the session and is ignored; the latest
  verdict wins. A verdict names the session key (alert label ``key``) and the alert time (the
  session's end): it labels the session of that key whose end is closest to that time, within
  the idle timeout.

Everything here is pure except the two CSV readers.

>>> verdicts = feedback_verdicts([
...     {"detector": "opsloop:logs.sessions.count_rules", "label": "noise",
...      "details": {"labels": {"key": "req-1"}, "starts_at": 10.0}},
...     {"detector": "opsloop:logs.frequency", "label": "true_problem",
...      "details": {"labels": {"key": "7"}, "starts_at": 3.0}},
... ])
>>> verdicts
[('req-1', 10.0, 0)]
>>> label_sessions([("req-1", ["a"], 0.0, 10.0), ("req-2", ["b"], 0.0, 11.0)], verdicts, 60)
[['req-1', ['a'], 0], ['req-2', ['b'], None]]
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from opsloop.detect.logs.sessions import SessionGrouper

__all__ = [
    "FEEDBACK_LABELS",
    "SESSION_DETECTOR_PREFIX",
    "data_hash",
    "feedback_verdicts",
    "group_log_lines",
    "label_sessions",
    "read_sessions_csv",
    "read_templates_csv",
]

SESSION_DETECTOR_PREFIX = "opsloop:logs.sessions"
FEEDBACK_LABELS = {"true_problem": 1, "noise": 0}  # "duplicate" carries no session label


def read_sessions_csv(path: str | Path) -> list[list[Any]]:
    """``[key, events, label]`` per row of an HDFS-style sessions CSV."""
    out: list[list[Any]] = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"BlockId", "EventSequence"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
        for row in reader:
            raw = (row.get("Label") or "").strip()
            label = None if raw == "" else int(raw != "0")
            out.append([row["BlockId"], row["EventSequence"].split(), label])
    return out


def read_templates_csv(path: str | Path) -> dict[str, str]:
    """``name -> template`` from a ``TemplateId``/``EventId`` + ``EventTemplate`` CSV."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields = set(reader.fieldnames or [])
        id_col = next((c for c in ("TemplateId", "EventId") if c in fields), None)
        if id_col is None or "EventTemplate" not in fields:
            raise ValueError(f"{path}: needs TemplateId (or EventId) and EventTemplate columns")
        return {row[id_col]: row["EventTemplate"] for row in reader}


def group_log_lines(
    lines: Iterable[tuple[float, int, str]],
    session_key: str,
    idle_s: float,
    resolve: Callable[[int], int] | None = None,
) -> list[tuple[str, list[str], float, float]]:
    """``(key, events, start, end)`` of the sessions in ``(ts, template id, message)`` lines.

    Lines must come in ingest order. Events are template ids resolved with ``resolve``.

    >>> lines = [(0.0, 1, "open req-1"), (1.0, 2, "close req-1"), (500.0, 1, "open req-1")]
    >>> group_log_lines(lines, r"req-\\d+", 300.0)
    [('req-1', ['1', '2'], 0.0, 1.0), ('req-1', ['1'], 500.0, 500.0)]
    """
    grouper = SessionGrouper(session_key, idle_timeout=idle_s, max_open=1_000_000)
    closed = []
    for ts, tid, message in lines:
        event = str(resolve(tid) if resolve is not None else tid)
        closed += grouper.add(event, ts, message)
    closed += grouper.flush()
    return [(s.key, list(s.events), s.start, s.end) for s in closed]


def feedback_verdicts(rows: Iterable[Mapping[str, Any]]) -> list[tuple[str, float | None, int]]:
    """``(session key, alert time, label)`` from feedback rows on session alerts, oldest first.

    ``rows`` are stored verdicts as the incident service lists them (newest first or any order
    with an ``id``/``at`` to sort by); rows of other detectors and ``duplicate`` are skipped.
    """
    ordered = sorted(rows, key=lambda r: (r.get("at") or 0.0, r.get("id") or 0))
    out = []
    for r in ordered:
        if not str(r.get("detector", "")).startswith(SESSION_DETECTOR_PREFIX):
            continue
        label = FEEDBACK_LABELS.get(str(r.get("label")))
        details = r.get("details") or {}
        key = (details.get("labels") or {}).get("key")
        if label is None or not key:
            continue
        at = details.get("starts_at")
        out.append((str(key), float(at) if at is not None else None, label))
    return out


def label_sessions(
    sessions: Sequence[tuple[str, list[str], float, float]],
    verdicts: Sequence[tuple[str, float | None, int]],
    tolerance_s: float,
) -> list[list[Any]]:
    """``[key, events, label]`` per session; later verdicts override earlier ones."""
    by_key: dict[str, list[int]] = {}
    for i, (key, *_rest) in enumerate(sessions):
        by_key.setdefault(key, []).append(i)
    labels: dict[int, int] = {}
    for key, at, label in verdicts:
        candidates = by_key.get(key, [])
        if at is None:
            for i in candidates:
                labels[i] = label
            continue
        near = [(abs(sessions[i][3] - at), i) for i in candidates]
        near = [(d, i) for d, i in near if d <= tolerance_s]
        if near:
            labels[min(near)[1]] = label
    return [[key, list(events), labels.get(i)] for i, (key, events, _s, _e) in enumerate(sessions)]


def data_hash(sessions: Sequence[Sequence[Any]]) -> str:
    """SHA-256 of the labelled sessions (keys, events and labels, in order).

    >>> data_hash([["a", ["x"], 1]]) == data_hash([["a", ["x"], 1]])
    True
    """
    digest = hashlib.sha256()
    for key, events, label in sessions:
        digest.update(f"{key}\0{' '.join(events)}\0{label}\n".encode())
    return digest.hexdigest()
