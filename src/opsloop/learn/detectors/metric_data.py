"""Labelled metric events and alarm replays for the ``detector-metric-settings`` pipeline.

**Families.** A series family is a metric name: every series of ``cpu_seconds`` shares one set
of alarm settings. Only the alarm stage is tuned (:data:`TUNED`: ``alarm_p``, ``refractory``):
it acts on the detector's calibrated score and changes nothing upstream of it, which is what
makes one replay of a series serve every candidate setting and what makes a live change of
these two settings safe (see :meth:`opsloop.services.metric_ingest.MetricIngest.use_settings`).

**Labels.** Operators judge alerts, and an opsloop metric alert is the fingerprint of a series
(:func:`~opsloop.act.incidents.alert.from_anomaly`: the series labels, ``metric`` and
``alertname``, no time), so one verdict on an incident's alert covers every anomaly of that
series the incident gathered: the stored anomalies whose alert fingerprint is the verdict's,
between the alert's ``first_seen`` and ``last_seen`` in the incident (``slack_s`` either side).
``true_problem`` makes each such anomaly time a *true event*, ``noise`` a *noise event*;
``duplicate`` says nothing about the signal and is skipped. When a later verdict covers the same
anomaly it wins. A verdict whose anomalies are no longer stored labels its alert time
(``details.starts_at``) on the series its alert labels name.

**Replay.** :func:`calibrated_scores` runs a fresh :class:`DefaultMetricDetector` (the live
engine's defaults) over a series with the fast :meth:`~DefaultMetricDetector.score_many` and
recovers the un-gated calibrated score of every point by replaying the detector's gate (the
gate multiplies the score by ``damp`` = 0.5 while disarmed, an exact operation in binary
floating point, so the division restores the score bit for bit). :func:`alarm_times` then steps
the alarm stage of a given setting over those scores, exactly as ``learn_one`` does.

**Objective.** On one family's labelled events, a setting's alarms *hit* a true event when one
falls within ``tolerance_s`` of it, and make a *false alarm* on a noise event when one falls
within ``tolerance_s`` of it (each event counts once): ``score = hits - cost * false_alarms``.
Alarms away from every labelled event are not counted (nobody judged them); they break ties
(fewer alarms is better: less operator load). ``cost`` < 1 says a missed true problem is worse
than a false alarm (the default 0.5: twice as bad).

Everything here is pure except :class:`MetricTelemetry` (the store and state reader).
"""

from __future__ import annotations

import bisect
import hashlib
import inspect
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsloop.act.incidents.alert import from_anomaly
from opsloop.detect.anomaly import Anomaly
from opsloop.detect.metrics import DefaultMetricDetector
from opsloop.detect.metrics.alarm import EdgeAlarm
from opsloop.store.telemetry.metrics import canonical_labels

if TYPE_CHECKING:
    from opsloop.store.state import StateDB
    from opsloop.store.telemetry import TelemetryStore

__all__ = [
    "FEEDBACK_LABELS",
    "METRIC_DETECTOR",
    "METRIC_SOURCE",
    "TUNED",
    "MetricTelemetry",
    "alarm_times",
    "calibrated_scores",
    "check_settings",
    "data_hash",
    "default_settings",
    "label_events",
    "score_alarms",
]

METRIC_SOURCE = "metrics.detector"  # Anomaly.source of the per-series detector
METRIC_DETECTOR = f"opsloop:{METRIC_SOURCE}"  # the alert source, as feedback rows store it
FEEDBACK_LABELS = {"true_problem": 1, "noise": 0}
TUNED = ("alarm_p", "refractory")


def default_settings() -> dict[str, Any]:
    """The built-in alarm settings of :class:`DefaultMetricDetector` (what runs untuned).

    >>> default_settings()
    {'alarm_p': 0.001, 'refractory': 100}
    """
    params = inspect.signature(DefaultMetricDetector).parameters
    return {k: params[k].default for k in TUNED}


def check_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` completed with the defaults and checked; raises ``ValueError`` if unusable.

    ``alarm_p`` must lie in (0, 0.1] (the alarm re-arms below a score of 0.9, so it cannot fire
    below it) and ``refractory`` be a whole number of points >= 0.

    >>> check_settings({"alarm_p": 1e-4})
    {'alarm_p': 0.0001, 'refractory': 100}
    >>> check_settings({"spend": 1})
    Traceback (most recent call last):
    ...
    ValueError: unknown alarm settings ['spend'] (tunable: alarm_p, refractory)
    """
    unknown = sorted(set(settings) - set(TUNED))
    if unknown:
        raise ValueError(f"unknown alarm settings {unknown} (tunable: {', '.join(TUNED)})")
    out = {**default_settings(), **settings}
    alarm_p, refractory = float(out["alarm_p"]), out["refractory"]
    if not 0.0 < alarm_p <= 0.1:
        raise ValueError(f"alarm_p must be in (0, 0.1], not {alarm_p!r}")
    if isinstance(refractory, bool) or int(refractory) != refractory or refractory < 0:
        raise ValueError(f"refractory must be a whole number >= 0, not {refractory!r}")
    return {"alarm_p": alarm_p, "refractory": int(refractory)}


# -- labels -----------------------------------------------------------------------------------
def _series_of(labels: Mapping[str, Any]) -> tuple[str, dict[str, str]] | None:
    """``(family, series labels)`` from a metric alert's labels (fallback mapping)."""
    family = labels.get("metric")
    if not family:
        return None
    series = {str(k): str(v) for k, v in labels.items() if k not in ("alertname", "metric")}
    return str(family), series


def label_events(
    verdicts: Iterable[Mapping[str, Any]],
    anomalies: Iterable[Mapping[str, Any]],
    windows: Mapping[str, Mapping[str, tuple[float, float]]],
    slack_s: float = 1.0,
) -> list[list[Any]]:
    """``[family, labels, t, label]`` per labelled anomaly (label 1 true, 0 noise), by time.

    ``verdicts``: feedback rows (``id``, ``at``, ``incident_id``, ``fingerprint``, ``label``,
    ``details``) on metric alerts; ``anomalies``: stored metric anomalies (``time``, ``key``,
    ``score``, ``details`` with ``name`` and ``labels``); ``windows``: per incident id, the
    ``(first_seen, last_seen)`` of each alert fingerprint in it.

    >>> a = {"time": 100.0, "key": "k", "score": 0.999, "details": {"name": "cpu",
    ...      "labels": {"host": "a"}}}
    >>> b = dict(a, time=500.0)
    >>> fp = from_anomaly(_anomaly(a)).fingerprint
    >>> rows = [{"id": 1, "at": 9.0, "incident_id": "i1", "fingerprint": fp, "label": "noise",
    ...          "details": {"starts_at": 100.0}},
    ...         {"id": 2, "at": 9.5, "incident_id": "i2", "fingerprint": fp,
    ...          "label": "true_problem", "details": {"starts_at": 500.0}}]
    >>> label_events(rows, [a, b], {"i1": {fp: (100.0, 100.0)}, "i2": {fp: (500.0, 500.0)}})
    [['cpu', {'host': 'a'}, 100.0, 0], ['cpu', {'host': 'a'}, 500.0, 1]]
    """
    by_fp: dict[str, list[tuple[float, str, dict[str, str]]]] = {}
    for raw in anomalies:
        a = _anomaly(raw)
        name = a.details.get("name")
        if not isinstance(name, str) or not name:
            continue
        labels = {str(k): str(v) for k, v in (a.details.get("labels") or {}).items()}
        by_fp.setdefault(from_anomaly(a).fingerprint, []).append((float(raw["time"]), name, labels))
    labelled: dict[tuple[str, str, float], list[Any]] = {}
    for r in sorted(verdicts, key=lambda r: (r.get("at") or 0.0, r.get("id") or 0)):
        label = FEEDBACK_LABELS.get(str(r.get("label")))
        if label is None:
            continue
        details = r.get("details") or {}
        at = details.get("starts_at")
        fp = str(r.get("fingerprint") or "")
        lo, hi = windows.get(str(r.get("incident_id")), {}).get(fp, (at, at))
        if lo is None or hi is None:
            continue
        hits = [x for x in by_fp.get(fp, []) if lo - slack_s <= x[0] <= hi + slack_s]
        if not hits:  # its anomalies are gone: the alert's own time and labels
            series = _series_of(details.get("labels") or {})
            if series is None or at is None:
                continue
            hits = [(float(at), series[0], series[1])]
        for t, name, labels in hits:
            labelled[(name, canonical_labels(labels), t)] = [name, labels, t, label]
    return [labelled[k] for k in sorted(labelled, key=lambda k: (k[2], k[0], k[1]))]


def _anomaly(d: Mapping[str, Any]) -> Anomaly:
    return Anomaly(
        METRIC_SOURCE, "metric_anomaly", float(d.get("score") or 0.0), float(d["time"]),
        str(d.get("key", "")), list(d.get("evidence") or []), dict(d.get("details") or {}),
    )  # fmt: skip


# -- replay and objective ---------------------------------------------------------------------
def calibrated_scores(ts: Sequence[float], xs: Sequence[float]) -> list[float]:
    """The un-gated calibrated score ``1 - p`` of every point, for a fresh default detector.

    The same numbers ``learn_one`` feeds its alarm stage, at ``score_many`` speed.

    >>> import random
    >>> rng = random.Random(1)
    >>> ts = [60.0 * i for i in range(400)]
    >>> xs = [10 + rng.gauss(0, 1) + (30 if i == 300 else 0) for i in range(400)]
    >>> cal = calibrated_scores(ts, xs)
    >>> d = DefaultMetricDetector()
    >>> slow = []
    >>> for t, x in zip(ts, xs):
    ...     slow.append(d.calibrated_score(t, x))
    ...     d.learn_one(t, x)
    >>> cal == slow, cal[300] > 0.999
    (True, True)
    """
    det = DefaultMetricDetector()
    gate = EdgeAlarm.from_dict(det.gate.to_dict())  # the gate's state before the first point
    gated = det.score_many(xs, ts)
    out = []
    for s in gated:
        score = s if gate.passes(s) else s / gate.damp  # damped values lie below `on`
        gate.step(score)
        out.append(score)
    return out


def alarm_times(
    ts: Sequence[float], cal: Sequence[float], settings: Mapping[str, Any]
) -> list[float]:
    """Times at which a detector with alarm ``settings`` fires on calibrated scores ``cal``."""
    alarm = DefaultMetricDetector(**check_settings(settings)).alarm
    return [t for t, s in zip(ts, cal, strict=True) if alarm.step(s)]


def score_alarms(
    alarms: Sequence[float], events: Iterable[tuple[float, int]], tolerance_s: float
) -> dict[str, int]:
    """Hits, misses and false alarms of sorted ``alarms`` on ``(t, label)`` events.

    >>> score_alarms([100.0, 900.0], [(90.0, 1), (500.0, 1), (905.0, 0), (2000.0, 0)], 60.0)
    {'true': 2, 'noise': 2, 'hits': 1, 'misses': 1, 'false_alarms': 1, 'alarms': 2}
    """
    out = {"true": 0, "noise": 0, "hits": 0, "misses": 0, "false_alarms": 0,
           "alarms": len(alarms)}  # fmt: skip
    for t, label in events:
        i = bisect.bisect_left(alarms, t - tolerance_s)
        near = i < len(alarms) and alarms[i] <= t + tolerance_s
        if label:
            out["true"] += 1
            out["hits" if near else "misses"] += 1
        else:
            out["noise"] += 1
            out["false_alarms"] += near
    return out


def data_hash(families: Mapping[str, Mapping[str, Any]]) -> str:
    """SHA-256 of the families' series points and labelled events (order-independent keys).

    >>> data_hash({"a": {"series": [], "events": []}}) == data_hash({"a": {"events": [],
    ...                                                               "series": []}})
    True
    """
    digest = hashlib.sha256()
    for family in sorted(families):
        body = families[family]
        digest.update(json.dumps([family, body["events"]], sort_keys=True).encode())
        for s in body["series"]:
            digest.update(json.dumps([s["key"], s["ts"], s["xs"]]).encode())
    return digest.hexdigest()


# -- reading the store ------------------------------------------------------------------------
@dataclass
class MetricTelemetry:
    """Metric samples, stored metric anomalies and the verdicts on them."""

    store: TelemetryStore
    state: StateDB | None = None

    def verdicts(self) -> list[dict[str, Any]]:
        """Feedback rows on opsloop's metric alerts, oldest first (none without a state store)."""
        if self.state is None:
            return []
        from sqlalchemy import select

        from opsloop.store.state.models import FeedbackRow

        stmt = (
            select(FeedbackRow)
            .where(FeedbackRow.detector.in_((METRIC_DETECTOR, METRIC_SOURCE)))
            .order_by(FeedbackRow.id)
        )
        with self.state.session() as s:
            return [
                {"id": r.id, "incident_id": r.incident_id, "fingerprint": r.fingerprint,
                 "label": r.label, "at": r.at.timestamp() if r.at else None,
                 "details": dict(r.details or {})}
                for r in s.scalars(stmt)
            ]  # fmt: skip

    def windows(self, incident_ids: Iterable[str]) -> dict[str, dict[str, tuple[float, float]]]:
        """Per incident, ``(first_seen, last_seen)`` of each of its alerts' fingerprints."""
        ids = sorted(set(incident_ids))
        if self.state is None or not ids:
            return {}
        from sqlalchemy import select

        from opsloop.store.state.models import IncidentRow

        out: dict[str, dict[str, tuple[float, float]]] = {}
        with self.state.session() as s:
            for row in s.scalars(select(IncidentRow).where(IncidentRow.id.in_(ids))):
                alerts = (row.data or {}).get("alerts") or []
                out[row.id] = {
                    a["alert"]["fingerprint"]: (float(a["first_seen"]), float(a["last_seen"]))
                    for a in alerts
                }
        return out

    def anomalies(self, since: float, until: float, limit: int = 1_000_000) -> list[dict[str, Any]]:
        """Stored metric-detector anomalies in ``[since, until]``."""
        from opsloop.store.telemetry.logs import LogTable

        rows = LogTable(self.store).anomalies(since=since, source_prefix=METRIC_SOURCE, limit=limit)
        return [
            r for r in rows
            if r["source"] == METRIC_SOURCE and r["kind"] == "metric_anomaly"
            and r["time"] <= until
        ]  # fmt: skip

    def points(
        self, name: str, labels: Mapping[str, str], since: float, until: float
    ) -> list[tuple[float, float]]:
        """``(ts, value)`` of one series in ``[since, until]``, oldest first."""
        return self.store.series_points(name, dict(labels), since, until)
