"""Metric ingest: validate → store → per-series anomaly detection and exhaustion forecasts.

Every accepted sample is stored; every series not excluded gets a
:class:`~opsloop.detect.metrics.DefaultMetricDetector` (LRU-capped at ``max_series``) whose score
is stored next to the value and whose alarms become :class:`Anomaly` records. Series matching a
capacity rule also feed a :class:`~opsloop.detect.metrics.forecast.TrendForecaster`; a forecast
crossing of the threshold within the horizon raises an early-warning anomaly (once per day per
series). State is snapshotted to ``<home>/metric_state.json``.

Alarm settings per series family (metric name) come from the registry's champion of
``opsloop-metric-settings`` through :meth:`MetricIngest.use_settings` (see
:class:`~opsloop.services.detector_models.MetricSettingsWatcher`); untuned families run the
detector's defaults.
"""

from __future__ import annotations

import logging
import math
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsloop.detect.anomaly import Anomaly
from opsloop.detect.metrics import DefaultMetricDetector
from opsloop.detect.metrics.forecast import ETA, TrendForecaster
from opsloop.learn.detectors.metric_data import check_settings, default_settings
from opsloop.observe.sample_check import Rejection, check_samples
from opsloop.services.state_file import load_state, save_state, set_aside
from opsloop.store.telemetry import MetricSample, TelemetryStore
from opsloop.store.telemetry.logs import LogTable
from opsloop.store.telemetry.metrics import canonical_labels

log = logging.getLogger("opsloop.metrics")
STATE_VERSION = 1
WARN_AGAIN_AFTER_S = 86400.0
# the soonest a warning repeats because exhaustion came closer (or surer): a tenth of the time
# then left, and never later than 30 minutes after the last warning (a disk that went from
# "full in 4 days" to "full in 90 minutes" must not wait half an hour of its 90 minutes)
ESCALATE_AFTER_S = 1800.0
ESCALATE_FRACTION = 0.1
MIN_FORECAST_POINTS = 30
#: Samples of one series in one call that go through the detector's batch path; until the
#: process has loaded its compiled loop (about 0.5-1 s, once), only batches that repay that.
BATCH_MIN, COLD_BATCH_MIN = 32, 20_000
_SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}


def forecast_severity(eta: ETA, horizon_s: float) -> str:
    """How sure an exhaustion forecast (point ETA within the horizon) is.

    ``eta.high`` is the late end of the forecaster's calibrated 90 % interval, so exhaustion
    comes before it with probability about 95 %: ``error`` when that is within a quarter of
    the horizon, ``warning`` when within the horizon, else ``info`` (possible within the
    horizon, but the interval reaches past it: a trend seen for too short a time, or too
    noisy, to page anyone; it still shows on the Overview and can start a preventive runbook).

    >>> from opsloop.detect.metrics.forecast import ETA
    >>> [forecast_severity(ETA(10.0, 5.0, h), 100.0) for h in (20.0, 90.0, 400.0)]
    ['error', 'warning', 'info']
    """
    if eta.high <= 0.25 * horizon_s:
        return "error"
    return "warning" if eta.high <= horizon_s else "info"


@dataclass
class MetricIngestResult:
    """What happened to one batch of samples."""

    accepted: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    anomalies: list[Anomaly] = field(default_factory=list)


def series_id(name: str, labels: dict[str, str]) -> str:
    """The identity of a series: its name and canonical labels.

    >>> series_id("cpu", {"host": "a"})
    'cpu{"host":"a"}'
    """
    return name + canonical_labels(labels)


class MetricIngest:
    """The metric pipeline shared by the collector, scrapes and the HTTP API."""

    def __init__(
        self,
        store: TelemetryStore,
        state_path: Path | None,
        capacity: Sequence[tuple[str, float] | tuple[str, float, str]] = (),
        horizon_s: float = 7 * 86400.0,
        detect_exclude: str | None = None,
        max_series: int = 10_000,
    ) -> None:
        self.store = store
        self.anomaly_table = LogTable(store)
        self.state_path = state_path
        # (name regex, threshold, falling): rules are (pattern, threshold[, "up" | "down"])
        self.capacity = [
            (re.compile(r[0]), float(r[1]), len(r) > 2 and r[2] == "down")  # type: ignore[misc]
            for r in capacity
        ]
        self.horizon_s = horizon_s
        self.exclude = re.compile(detect_exclude) if detect_exclude else None
        self.max_series = max_series
        self._lock = threading.Lock()
        self.detectors: OrderedDict[str, DefaultMetricDetector] = OrderedDict()
        self.forecasters: dict[str, TrendForecaster] = {}
        self._warned: dict[str, float] = {}
        self._warned_eta: dict[str, float] = {}  # the ETA (s) of the last warning
        self._warned_sev: dict[str, str] = {}  # and its severity
        self._dirty = False
        self.on_anomalies: Callable[[list[Anomaly]], None] | None = None
        self.settings_by_family: dict[str, dict[str, Any]] = {}
        self.settings_version: str | None = None  # the registered settings version in use
        self._load()

    # -- state -------------------------------------------------------------------------------
    def _load(self) -> None:
        state = load_state(self.state_path, STATE_VERSION)
        if state is None:
            return
        try:
            detectors = {
                k: DefaultMetricDetector.from_dict(d) for k, d in state["detectors"].items()
            }
            forecasters = {k: TrendForecaster.from_dict(d) for k, d in state["forecasters"].items()}
            warned = {k: float(v) for k, v in state.get("warned", {}).items()}
            warned_eta = {k: float(v) for k, v in state.get("warned_eta", {}).items()}
            warned_sev = {k: str(v) for k, v in state.get("warned_severity", {}).items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            assert self.state_path is not None
            set_aside(self.state_path, exc)
            return
        self.detectors.update(detectors)
        self.forecasters, self._warned = forecasters, warned
        self._warned_eta, self._warned_sev = warned_eta, warned_sev
        tuned = state.get("settings") or {}
        try:
            by_family = {f: check_settings(s) for f, s in (tuned.get("by_family") or {}).items()}
        except (ValueError, TypeError, AttributeError) as exc:
            log.warning("stored alarm settings ignored: %s", exc)
            return
        self.settings_by_family = by_family
        self.settings_version = tuned.get("version")

    def snapshot(self) -> bool:
        """Write the detectors' state if it changed."""
        if self.state_path is None:
            return False
        with self._lock:
            if not self._dirty:
                return False
            state = {
                "version": STATE_VERSION,
                "saved_at": time.time(),
                "detectors": {k: d.to_dict() for k, d in self.detectors.items()},
                "forecasters": {k: f.to_dict() for k, f in self.forecasters.items()},
                "warned": self._warned,
                "warned_eta": self._warned_eta,
                "warned_severity": self._warned_sev,
                "settings": {
                    "version": self.settings_version,
                    "by_family": self.settings_by_family,
                },
            }
            self._dirty = False
        save_state(self.state_path, state)
        return True

    # -- ingest ------------------------------------------------------------------------------
    def capacity_threshold(self, name: str) -> float | None:
        """The threshold of the first capacity rule matching ``name`` (``None``: none)."""
        rule = self.capacity_rule(name)
        return None if rule is None else rule[0]

    def capacity_rule(self, name: str) -> tuple[float, bool] | None:
        """``(threshold, falling)`` of the first capacity rule matching ``name``, if any."""
        for rx, threshold, falling in self.capacity:
            if rx.search(name):
                return threshold, falling
        return None

    def _detector(self, key: str) -> DefaultMetricDetector:
        det = self.detectors.get(key)
        if det is None:
            own = self.settings_by_family.get(_family(key))
            det = self.detectors[key] = DefaultMetricDetector(**(own or {}))
            while len(self.detectors) > self.max_series:
                old, _ = self.detectors.popitem(last=False)
                self.forecasters.pop(old, None)
        else:
            self.detectors.move_to_end(key)
        return det

    def ingest(
        self, samples: Sequence[MetricSample], now: float | None = None
    ) -> MetricIngestResult:
        """Validate and store ``samples``; score them and return anomalies found."""
        accepted, rejected = check_samples(samples, now=now)
        result = MetricIngestResult(accepted=len(accepted), rejected=rejected)
        if not accepted:
            return result
        self.store.append_metrics(accepted)
        scores: list[tuple[float, str, dict[str, str], float, bool]] = []
        with self._lock:
            groups: dict[str, list[MetricSample]] = {}
            for s in sorted(accepted, key=lambda x: x.ts):
                if self.exclude is None or not self.exclude.search(s.name):
                    groups.setdefault(series_id(s.name, s.labels), []).append(s)
            found: list[Anomaly] = []
            for key, group in groups.items():
                det = self._detector(key)
                loaded = "opsloop.detect.metrics.steady" in sys.modules
                if len(group) >= (BATCH_MIN if loaded else COLD_BATCH_MIN):
                    # a backfill or an import: one batch call, the same scores and alarms as
                    # point by point (bit for bit), several times faster
                    values, stamps = [s.value for s in group], [s.ts for s in group]
                    batch, fired, raw = det.score_and_alarm_many(values, stamps)
                else:
                    batch, fired, raw = [], [], []
                    for s in group:
                        batch.append(det.score_one(s.ts, s.value))
                        raw.append(det.calibrated_score(s.ts, s.value))
                        det.learn_one(s.ts, s.value)
                        fired.append(bool(det.last_alarm))
                rule = self.capacity_rule(group[0].name)
                for s, score, alarm, strength in zip(group, batch, fired, raw, strict=True):
                    scores.append((s.ts, s.name, s.labels, score, alarm))
                    if alarm:  # the record holds the alarm's own (un-gated) strength
                        found.append(_alarm(s, strength, det))
                    if rule is not None:
                        warning = self._forecast(key, s, *rule)
                        if warning is not None:
                            found.append(warning)
            result.anomalies.extend(sorted(found, key=lambda a: a.time))
            self._dirty = True
        self.store.append_scores(scores)
        if result.anomalies:
            self.anomaly_table.append_anomalies(result.anomalies)
            if self.on_anomalies is not None:
                self.on_anomalies(result.anomalies)
        return result

    def _forecast(
        self, key: str, s: MetricSample, threshold: float, falling: bool = False
    ) -> Anomaly | None:
        f = self.forecasters.get(key)
        if f is None or f.falling != falling:  # (a rule's direction changed: start afresh)
            f = self.forecasters[key] = TrendForecaster(falling=falling)
        f.update(s.ts, s.value)
        crossed = s.value <= threshold if falling else s.value >= threshold
        if f.n < MIN_FORECAST_POINTS or crossed:
            return None
        eta = f.time_to_threshold(threshold, now=s.ts)
        if not math.isfinite(eta.seconds) or eta.seconds > self.horizon_s:
            return None
        if not math.isfinite(eta.high):
            return None  # the interval reaches "never": no significant trend towards it yet
        severity = forecast_severity(eta, self.horizon_s)
        last = self._warned.get(key, -math.inf)
        if s.ts - last < WARN_AGAIN_AFTER_S:
            # warned recently: again only if exhaustion came much closer than then foreseen, or
            # became more certain; and not sooner than a tenth of the time now left (at most
            # ESCALATE_AFTER_S), so a fast fill is not a storm: each repeat needs the time left
            # halved (or the severity raised), so a fill repeats O(log) times
            foreseen = self._warned_eta.get(key, math.inf) - (s.ts - last)
            closer = eta.seconds < 0.5 * foreseen
            surer = _SEVERITY_RANK[severity] > _SEVERITY_RANK[self._warned_sev.get(key, "info")]
            soonest = min(ESCALATE_AFTER_S, ESCALATE_FRACTION * eta.seconds)
            if s.ts - last < soonest or not (closer or surer):
                return None
        self._warned[key] = s.ts
        self._warned_eta[key] = eta.seconds
        self._warned_sev[key] = severity
        hours = eta.seconds / 3600
        return Anomaly(
            "metrics.forecast", "exhaustion_forecast", 1.0 - min(eta.seconds / self.horizon_s, 1.0),
            s.ts, key,
            [f"{s.name} is forecast to {'fall to' if falling else 'reach'} {threshold:g} in "
             f"{hours:.1f} h "
             f"(between {eta.low / 3600:.1f} h and {eta.high / 3600:.1f} h)"
             + (" at the pace of the last hour" if eta.source == "recent" else ""),
             f"now {s.value:g}"],
            {"name": s.name, "labels": s.labels, "threshold": threshold, "falling": falling,
             "eta_s": eta.seconds,
             "eta_low_s": eta.low, "eta_high_s": eta.high, "eta_source": eta.source,
             "value": s.value,
             "severity": severity},
        )  # fmt: skip

    def use_settings(self, settings_by_family: dict[str, dict[str, Any]], version: str) -> int:
        """Run the alarm settings of ``settings_by_family`` from now on; returns detectors changed.

        ``{metric name: {"alarm_p": ..., "refractory": ...}}`` (missing keys: the defaults)
        replaces the previous mapping: existing detectors of a listed family change in place,
        those of a family no longer listed go back to the defaults, and detectors created later
        start with their family's settings. Everything is checked before anything changes
        (``ValueError`` on an unknown key or value out of range).

        Changing these two in place is safe mid-stream: they act only on the alarm stage (the
        :class:`~opsloop.detect.metrics.alarm.EdgeAlarm` threshold ``on = 1 - alarm_p`` and its
        ``refractory``, the gate's ``refractory``), not on the models, calibrators or scores a
        detector has learnt; an alarm that fired keeps counting its refractory steps under the
        new length. The change happens under the ingest lock, between two batches.
        """
        checked = {str(f): check_settings(s) for f, s in settings_by_family.items()}
        defaults = default_settings()
        changed = 0
        with self._lock:
            for key, det in self.detectors.items():
                changed += _apply(det, checked.get(_family(key)) or defaults)
            self.settings_by_family = checked
            self.settings_version = str(version)
            self._dirty = True
        log.info("metric alarm settings version %s: %d families, %d detectors changed",
                 version, len(checked), changed)  # fmt: skip
        return changed

    # -- reads -------------------------------------------------------------------------------
    def forecaster(self, name: str, labels: dict[str, str]) -> TrendForecaster | None:
        """The live forecaster of a series, if it has one."""
        with self._lock:
            return self.forecasters.get(series_id(name, labels))


def _family(key: str) -> str:
    """The metric name of a series id (names cannot hold ``{``).

    >>> _family(series_id("cpu", {"host": "a"}))
    'cpu'
    """
    return key.split("{", 1)[0]


def _apply(det: DefaultMetricDetector, settings: dict[str, Any]) -> bool:
    """Set a detector's alarm stage to ``settings`` (as its constructor would); True if changed.

    >>> d = DefaultMetricDetector()
    >>> _apply(d, {"alarm_p": 1e-4, "refractory": 300}), d.alarm.on, d.gate.refractory
    (True, 0.9999, 300)
    >>> _apply(d, {"alarm_p": 1e-4, "refractory": 300})
    False
    """
    alarm_p, refractory = settings["alarm_p"], settings["refractory"]
    if det.alarm_p == alarm_p and det.refractory == refractory:
        return False
    det.alarm_p, det.refractory = alarm_p, refractory
    det.alarm.on = 1.0 - alarm_p
    det.alarm.refractory = det.gate.refractory = refractory
    return True


def _alarm(s: MetricSample, score: float, det: DefaultMetricDetector) -> Anomaly:
    return Anomaly(
        "metrics.detector", "metric_anomaly", float(score), s.ts, series_id(s.name, s.labels),
        [f"{s.name} = {s.value:g} is unusual for this series (score {score:.3f})"],
        {"name": s.name, "labels": s.labels, "value": s.value},
    )  # fmt: skip


def forecast_band(
    f: TrendForecaster, now: float, horizon_s: float, points: int = 48
) -> list[tuple[float, float, float, float]]:
    """``(t, mean, low, high)`` points from ``now`` to ``now + horizon_s``."""
    return _band(f.forecast, now, now + horizon_s, points)


def recent_band(
    f: TrendForecaster, now: float, until: float, points: int = 24
) -> list[tuple[float, float, float, float]]:
    """``(t, mean, low, high)`` points from ``now`` to ``until`` at the pace of the last hour
    (what an ETA with ``source == "recent"`` was read from); empty while that fit does not
    stand."""
    return _band(f.recent_forecast, now, until, points)


def _band(
    forecast: Callable[[float], tuple[float, float, float] | None],
    now: float,
    until: float,
    points: int,
) -> list[tuple[float, float, float, float]]:
    out = []
    for i in range(1, points + 1):
        t = now + (until - now) * i / points
        fc = forecast(t)
        if fc is None:
            return []
        out.append((t, *fc))
    return out


def build_forecaster(
    points: Sequence[tuple[float, float]], falling: bool = False
) -> TrendForecaster:
    """A forecaster trained on stored ``(ts, value)`` points (for series without a live one)."""
    f = TrendForecaster(falling=falling)
    for t, x in points:
        f.update(t, x)
    return f


def summarize(result: MetricIngestResult) -> dict[str, Any]:
    """A JSON-able summary for the API."""
    return {
        "accepted": result.accepted,
        "rejected": [{"sample": r.sample_repr, "reason": r.reason} for r in result.rejected],
        "anomalies": len(result.anomalies),
    }
