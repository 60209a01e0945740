"""Streaming model monitor: windows of live predictions become drift and performance samples.

Each served prediction is fed with its input features (:meth:`WindowMonitor.observe`); a window
closes after ``window_size`` records or at the end of a ``window_seconds`` period aligned to the
epoch (``[k w, (k + 1) w)``), whichever comes first. On closing, the window's features are
tested against the reference profile (:func:`~opsloop.learn.monitoring.drift.detect_drift`),
its predictions against the reference predictions, and the result is returned as metric
samples, each ``(name, labels, value, timestamp)``::

    model_drift_score{model, version, feature, method}   p-value or distance of the test
    model_drift_detected{model, version, feature}        0 / 1 (Evidently's verdict)
    model_drift_pvalue{model, version, feature, method}  chance that sampling noise alone gives
                                                         the score (distances: bootstrap on
                                                         the reference, NullDistances)
    model_drift_significant{model, version, feature}     detected and pvalue < significance
    model_feature_missing_share{model, version, feature} share of missing values in the window
    model_drift_share{model, version}                    drifted / tested features
    model_dataset_drift{model, version}                  1 when share >= drift_share
    model_prediction_drift_score{model, version, method} and model_prediction_drift_detected
    model_window_rows, model_error_rate, model_latency_seconds{quantile="0.5"|"0.95"|"0.99"}

Labels arrive later, by request id (:meth:`WindowMonitor.label`); each is joined with its
prediction and a performance window closes after ``label_window_size`` labelled rows (or with
the time window): ``model_accuracy``, ``model_f1``, ``model_roc_auc`` (classification, AUC when
scores were given) or ``model_mae``, ``model_rmse`` (regression), with ``model_labelled_rows``,
``model_pending_labels`` and the counters ``model_labels_evicted_total`` and
``model_labels_unmatched_total``.

Memory is bounded: a window keeps at most ``max_window_rows`` rows, a uniform sample
(reservoir, seeded: each of the ``t`` rows seen is kept with probability ``max_window_rows / t``)
once more arrive; counts, errors and missing shares stay exact. Predictions waiting for a label
are capped at ``max_pending_labels`` (the oldest evicted first, and counted), and dropped after
``label_ttl_s`` seconds when that is set.

>>> from opsloop.learn.monitoring.profile import ReferenceProfile
>>> train = {"x": [float(i % 50) for i in range(500)]}
>>> ref = ReferenceProfile.from_data(train, prediction=[0, 1] * 250)
>>> mon = WindowMonitor(ref, model="churn", version="3", window_size=100)
>>> out = []
>>> for i in range(100):
...     x = float(i % 50) + 40.0  # shifted far beyond the reference
...     out += mon.observe({"x": x}, prediction=1, request_id=str(i), timestamp=1000.0 + i)
>>> [(s.name, s.labels.get("feature"), s.value) for s in out if s.name == "model_drift_detected"]
[('model_drift_detected', 'x', 1.0)]
>>> next(s.value for s in out if s.name == "model_prediction_drift_detected")
1.0
"""

from __future__ import annotations

import math
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from opsloop.learn.monitoring.drift import detect_drift, feature_drift
from opsloop.learn.monitoring.performance import classification_metrics, regression_metrics
from opsloop.learn.monitoring.profile import ReferenceProfile, category_key
from opsloop.learn.monitoring.significance import NullDistances

__all__ = ["MetricSample", "WindowMonitor"]

LATENCY_QUANTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class MetricSample:
    """One sample of a named, labelled metric series."""

    name: str
    labels: dict[str, str]
    value: float
    timestamp: float


@dataclass
class _Row:
    features: Mapping[str, Any]
    prediction: Any
    latency: float | None


class WindowMonitor:
    """Windowed drift, prediction drift, performance, latency, errors of one model version."""

    def __init__(
        self,
        profile: ReferenceProfile,
        *,
        model: str,
        version: str | int,
        task: str = "classification",
        window_size: int | None = 1000,
        window_seconds: float | None = None,
        max_window_rows: int = 10_000,
        label_window_size: int | None = None,
        max_pending_labels: int = 100_000,
        label_ttl_s: float | None = None,
        positive_label: Any = None,
        method: str | None = None,
        threshold: float | None = None,
        drift_share: float = 0.5,
        significance: float = 0.01,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
    ):
        if task not in ("classification", "regression"):
            raise ValueError("task must be 'classification' or 'regression'")
        if window_size is None and window_seconds is None:
            raise ValueError("give window_size, window_seconds or both")
        if window_size is not None and not 0 < window_size <= max_window_rows:
            raise ValueError("window_size must be in 1..max_window_rows")
        if window_seconds is not None and window_seconds <= 0:
            raise ValueError("window_seconds must be positive")
        if max_pending_labels < 1:
            raise ValueError("max_pending_labels must be at least 1")
        if not 0.0 < significance <= 1.0:
            raise ValueError("significance must be in (0, 1]")
        self.profile = profile
        self.task = task
        self.window_size = window_size
        self.window_seconds = window_seconds
        self.max_window_rows = max_window_rows
        self.label_window_size = label_window_size or window_size or 1000
        self.max_pending_labels = max_pending_labels
        self.label_ttl_s = label_ttl_s
        self.positive_label = positive_label
        self.method = method
        self.threshold = threshold
        self.drift_share = drift_share
        self.significance = significance
        self.null = NullDistances(seed=seed)
        self.clock = clock
        self.base_labels = {"model": str(model), "version": str(version)}
        self._rng = random.Random(seed)  # noqa: S311 - sampling rows, not secrets
        # current drift window
        self._rows: list[_Row] = []
        self._seen = 0
        self._errors = 0
        self._missing: dict[str, int] = dict.fromkeys(profile.columns, 0)
        self._missing_tests = {
            name: _numeric_missing if col.kind == "numeric" else _category_missing
            for name, col in profile.columns.items()
        }
        self._start: float | None = None
        # labels
        self._pending: OrderedDict[str, tuple[Any, float | None, float]] = OrderedDict()
        self._labelled: list[tuple[Any, Any, float | None]] = []
        self.evicted = 0
        self.unmatched = 0

    # -- input -----------------------------------------------------------------------------
    def observe(
        self,
        features: Mapping[str, Any],
        prediction: Any = None,
        *,
        request_id: str | None = None,
        score: float | None = None,
        latency_s: float | None = None,
        error: bool = False,
        timestamp: float | None = None,
    ) -> list[MetricSample]:
        """Record one served request; returns the samples of any window it closed."""
        now = self.clock() if timestamp is None else float(timestamp)
        out = self.tick(now)
        if self._start is None:
            self._start = self._period_start(now)
        self._seen += 1
        self._errors += bool(error)
        for name, is_missing in self._missing_tests.items():
            if is_missing(features.get(name)):
                self._missing[name] += 1
        row = _Row(features, None if error else prediction, latency_s)
        if len(self._rows) < self.max_window_rows:
            self._rows.append(row)
        else:
            j = self._rng.randrange(self._seen)
            if j < self.max_window_rows:
                self._rows[j] = row
        if request_id is not None and not error and prediction is not None:
            self._remember(str(request_id), prediction, score, now)
        if self.window_size is not None and self._seen >= self.window_size:
            out += self._close_window(now)
        return out

    def label(
        self, request_id: str, y_true: Any, *, timestamp: float | None = None
    ) -> list[MetricSample]:
        """Join a ground-truth label with its prediction; returns samples of a closed window."""
        now = self.clock() if timestamp is None else float(timestamp)
        out = self.tick(now)
        entry = self._pending.pop(str(request_id), None)
        if entry is None:
            self.unmatched += 1
            return out
        prediction, score, _ = entry
        self._labelled.append((y_true, prediction, score))
        if len(self._labelled) >= self.label_window_size:
            out += self._close_performance(now)
        return out

    def tick(self, now: float | None = None) -> list[MetricSample]:
        """Close a time window that ended by ``now`` (call it on a timer when traffic is idle)."""
        now = self.clock() if now is None else float(now)
        self._expire_labels(now)
        if self.window_seconds is None or self._start is None:
            return []
        end = self._start + self.window_seconds
        if now < end:
            return []
        out = self._close_window(end)
        out += self._close_performance(end)
        return out

    def flush(self, now: float | None = None) -> list[MetricSample]:
        """Close the current drift and performance windows whatever their size."""
        now = self.clock() if now is None else float(now)
        return self._close_window(now) + self._close_performance(now)

    @property
    def pending_labels(self) -> int:
        """Predictions waiting for their label."""
        return len(self._pending)

    # -- internals -------------------------------------------------------------------------
    def _period_start(self, now: float) -> float:
        if self.window_seconds is None:
            return now
        return math.floor(now / self.window_seconds) * self.window_seconds

    def _remember(self, request_id: str, prediction: Any, score: float | None, now: float) -> None:
        self._pending[request_id] = (prediction, score, now)
        self._pending.move_to_end(request_id)
        while len(self._pending) > self.max_pending_labels:
            self._pending.popitem(last=False)
            self.evicted += 1

    def _expire_labels(self, now: float) -> None:
        if self.label_ttl_s is None:
            return
        cutoff = now - self.label_ttl_s
        while self._pending:
            first = next(iter(self._pending.values()))
            if first[2] >= cutoff:
                break
            self._pending.popitem(last=False)
            self.evicted += 1

    def _sample(self, name: str, value: float, ts: float, **labels: str) -> MetricSample:
        return MetricSample(name, {**self.base_labels, **labels}, float(value), ts)

    def _close_window(self, ts: float) -> list[MetricSample]:
        rows, seen, errors, missing = self._rows, self._seen, self._errors, self._missing
        self._rows, self._seen, self._errors = [], 0, 0
        self._missing = dict.fromkeys(self.profile.columns, 0)
        self._start = None  # the next record opens the next window (its own period)
        if seen == 0:
            return []
        s = self._sample
        out = [s("model_window_rows", seen, ts), s("model_error_rate", errors / seen, ts)]
        latencies = np.array([r.latency for r in rows if r.latency is not None], dtype=np.float64)
        if latencies.size:
            values = np.quantile(latencies, LATENCY_QUANTILES)
            for q, v in zip(LATENCY_QUANTILES, values, strict=True):
                out.append(s("model_latency_seconds", v, ts, quantile=str(q)))
        columns = {name: [r.features.get(name) for r in rows] for name in self.profile.columns}
        drift = detect_drift(
            self.profile,
            columns,
            method=self.method,
            threshold=self.threshold,
            drift_share=self.drift_share,
        )
        for name, res in drift.features.items():
            out.append(s("model_feature_missing_share", missing[name] / seen, ts, feature=name))
            if not res.tested:
                continue
            out.append(s("model_drift_score", res.statistic, ts, feature=name, method=res.method))
            out.append(s("model_drift_detected", res.drifted, ts, feature=name))
            p = self.null.pvalue(self.profile.columns[name], res)
            out.append(s("model_drift_pvalue", p, ts, feature=name, method=res.method))
            significant = res.drifted and p < self.significance
            out.append(s("model_drift_significant", significant, ts, feature=name))
        if drift.n_tested:
            out.append(s("model_drift_share", drift.share, ts))
            out.append(s("model_dataset_drift", drift.drifted, ts))
        if self.profile.prediction is not None:
            preds = [r.prediction for r in rows if r.prediction is not None]
            if preds:
                res = feature_drift(self.profile.prediction, preds)
                if res.tested:
                    score = res.statistic
                    out.append(s("model_prediction_drift_score", score, ts, method=res.method))
                    out.append(s("model_prediction_drift_detected", res.drifted, ts))
        return out

    def _close_performance(self, ts: float) -> list[MetricSample]:
        labelled, self._labelled = self._labelled, []
        s = self._sample
        out = [
            s("model_pending_labels", len(self._pending), ts),
            s("model_labels_evicted_total", self.evicted, ts),
            s("model_labels_unmatched_total", self.unmatched, ts),
        ]
        if not labelled:
            return out
        y_true = [t for t, _, _ in labelled]
        y_pred = [p for _, p, _ in labelled]
        if self.task == "classification":
            scores = [sc for _, _, sc in labelled]
            metrics = classification_metrics(
                y_true, y_pred, scores=scores, positive=self.positive_label
            )
        else:
            metrics = regression_metrics(y_true, y_pred)
        out.append(s("model_labelled_rows", len(labelled), ts))
        out += [s(f"model_{k}", v, ts) for k, v in metrics.items()]
        return out


def _numeric_missing(value: Any) -> bool:
    try:
        return not math.isfinite(float(value))
    except (TypeError, ValueError):
        return True


def _category_missing(value: Any) -> bool:
    return category_key(value) is None
