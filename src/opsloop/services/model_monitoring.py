"""Watching served models: predictions and labels stored, drift and performance as metrics.

The model gateway hands every (sampled) prediction to :meth:`ModelMonitoring.on_prediction`
and every delayed label to :meth:`ModelMonitoring.on_labels`. This service

1. stores them in the telemetry store (:class:`PredictionTable`; labels synchronously, since
   the API acknowledges them; predictions in small batches);
2. feeds a :class:`~opsloop.learn.monitoring.WindowMonitor` per model version, built from the
   reference profile saved with that version at registration (``reference/profile.json`` in
   the version's run); each closed window yields metric samples (drift per feature, drift
   share, prediction drift, latency, error rate, accuracy/F1/AUC or MAE/RMSE) that go through
   the metric pipeline like any series (stored, scored by the anomaly detectors);
3. turns a feature whose drift was *significant* in ``persistence`` consecutive windows
   (default 2) into an anomaly ("model churn@3 drifting on feature tenure", with the test,
   statistic and sampling p-value as evidence) for the incident engine; repeats while the
   drift lasts keep the same incident alive (same fingerprint). Significant: Evidently's
   verdict (p < 0.05 or distance >= 0.1) *and* a p-value under 0.01 that sampling noise
   alone explains it (``model_drift_significant``; for distances a bootstrap on the
   reference, :class:`~opsloop.learn.monitoring.significance.NullDistances`). Evidently's
   fixed distance threshold ignores the window size: on windows of 100 rows a stable
   feature passes 0.1 normed Wasserstein in about 70 % of windows, so its verdict alone kept
   a steady trickle of false drift incidents. With both conditions a stable feature is
   flagged in about 1 % of windows and twice in a row about once in 10,000 per feature.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from opsloop.detect.anomaly import Anomaly
from opsloop.store.telemetry.metrics import MetricSample
from opsloop.store.telemetry.predictions import PredictionRecord, PredictionTable

log = logging.getLogger("opsloop.models.monitoring")

PROFILE_ARTIFACT = "reference/profile.json"
FLUSH_EVERY = 200  # predictions buffered before a write


def load_reference_profile(env: Any, model: str, version: str) -> Any:
    """The :class:`ReferenceProfile` saved with a model version, or ``None``.

    Looked up in the version's run (artifact ``reference/profile.json``), then next to the
    model files (``<source>/reference/profile.json``).
    """
    import json

    from opsloop.learn.monitoring import ReferenceProfile

    client = env.client()
    mv = client.get_model_version(model, version)
    candidates = []
    if mv.run_id:
        candidates.append(("run", mv.run_id))
    if mv.source:
        candidates.append(("source", mv.source))
    import mlflow

    for kind, where in candidates:
        try:
            if kind == "run":
                path = mlflow.artifacts.download_artifacts(
                    run_id=where, artifact_path=PROFILE_ARTIFACT, tracking_uri=env.tracking_uri
                )
            else:
                path = mlflow.artifacts.download_artifacts(
                    artifact_uri=f"{where.rstrip('/')}/{PROFILE_ARTIFACT}",
                    tracking_uri=env.tracking_uri,
                )
            with open(path) as fh:
                return ReferenceProfile.from_dict(json.load(fh))
        except Exception as exc:
            log.debug("no profile at %s %s: %s", kind, where, exc)
    return None


class ModelMonitoring:
    """Stores predictions and labels; windows of them become metrics and drift anomalies."""

    def __init__(
        self,
        predictions: PredictionTable,
        *,
        metrics_sink: Callable[[list[MetricSample]], Any] | None = None,
        anomalies_sink: Callable[[list[Anomaly]], Any] | None = None,
        profile_loader: Callable[[str, str], Any] | None = None,
        window_size: int = 500,
        window_seconds: float | None = None,
        persistence: int = 2,
        task_of: Callable[[str, str], str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.predictions = predictions
        self.metrics_sink = metrics_sink
        self.anomalies_sink = anomalies_sink
        self.profile_loader = profile_loader
        self.window_size = window_size
        self.window_seconds = window_seconds
        self.persistence = max(1, int(persistence))
        self._streak: dict[tuple[str, str, str], int] = {}
        self.task_of = task_of
        self.clock = clock
        self._lock = threading.Lock()
        self._buffer: list[PredictionRecord] = []
        self._monitors: dict[tuple[str, str], Any] = {}
        self._no_profile: set[tuple[str, str]] = set()
        self._owner: dict[tuple[str, str], tuple[str, str]] = {}  # (model, request) → version
        self.last_drift: dict[tuple[str, str], dict[str, Any]] = {}

    # -- intake ---------------------------------------------------------------------------
    def on_prediction(
        self,
        model: str,
        version: str,
        request_id: str,
        inputs: Sequence[Mapping[str, Any]],
        outputs: Sequence[Any],
        latency_ms: float,
        variant: str = "champion",
    ) -> None:
        """One served request (possibly several rows); never raises into the request."""
        try:
            self._on_prediction(
                model, str(version), request_id, inputs, outputs, latency_ms, variant
            )
        except Exception:
            log.exception("prediction of %s@%s could not be monitored", model, version)

    def _on_prediction(
        self,
        model: str,
        version: str,
        request_id: str,
        inputs: Sequence[Mapping[str, Any]],
        outputs: Sequence[Any],
        latency_ms: float,
        variant: str,
    ) -> None:
        now = self.clock()
        many = len(inputs) > 1
        records = []
        for i, row in enumerate(inputs):
            rid = f"{request_id}:{i}" if many else request_id
            out = outputs[i] if i < len(outputs) else None
            records.append(
                PredictionRecord(now, model, version, variant, rid, dict(row), out, latency_ms)
            )
        samples: list[Any] = []
        with self._lock:
            self._buffer.extend(records)
            flush = len(self._buffer) >= FLUSH_EVERY
            if variant in ("champion", "canary", "challenger"):
                monitor = self._monitor(model, version)
                for rec in records:
                    if len(self._owner) > 200_000:
                        self._owner.pop(next(iter(self._owner)))
                    self._owner[(model, rec.request_id)] = (version, variant)
                    if monitor is not None:
                        samples += monitor.observe(
                            rec.inputs, _scalar(rec.outputs), request_id=rec.request_id,
                            latency_s=latency_ms / 1000.0, timestamp=now,
                        )  # fmt: skip
        if flush:
            self.flush()
        self._emit(model, version, samples)

    def on_labels(self, model: str, labels: Sequence[tuple[str, Any]]) -> dict[str, int]:
        """Delayed ground truth: stored now (durable on return), then fed to the monitors."""
        self.flush()  # so labels can join predictions written moments ago
        now = self.clock()
        self.predictions.add_labels(model, labels, now)
        known = 0
        by_version: dict[str, list[Any]] = {}
        with self._lock:
            for rid, label in labels:
                owner = self._owner.get((model, rid))
                if owner is None:
                    continue
                known += 1
                monitor = self._monitors.get((model, owner[0]))
                if monitor is not None:
                    by_version.setdefault(owner[0], []).extend(
                        monitor.label(rid, label, timestamp=now)
                    )
        for version, samples in by_version.items():
            self._emit(model, version, samples)
        return {"stored": len(labels), "matched": known}

    def tick(self) -> None:
        """Flush buffered predictions and close time windows (called every few seconds)."""
        self.flush()
        now = self.clock()
        with self._lock:
            items = list(self._monitors.items())
        for (model, version), monitor in items:
            with self._lock:
                samples = monitor.tick(now)
            self._emit(model, version, samples)

    def flush(self) -> None:
        """Write buffered predictions."""
        with self._lock:
            batch, self._buffer = self._buffer, []
        if batch:
            self.predictions.append(batch)

    # -- monitors -------------------------------------------------------------------------
    def _monitor(self, model: str, version: str) -> Any:
        key = (model, version)
        monitor = self._monitors.get(key)
        if monitor is not None or key in self._no_profile or self.profile_loader is None:
            return monitor
        try:
            profile = self.profile_loader(model, version)
        except Exception:
            log.exception("reference profile of %s@%s could not be loaded", model, version)
            profile = None
        if profile is None:
            self._no_profile.add(key)
            log.warning("%s@%s has no reference profile: no drift monitoring", model, version)
            return None
        from opsloop.learn.monitoring import WindowMonitor

        task = self.task_of(model, version) if self.task_of else "classification"
        monitor = WindowMonitor(
            profile, model=model, version=version, task=task,
            window_size=None if self.window_seconds else self.window_size,
            window_seconds=self.window_seconds, clock=self.clock,
        )  # fmt: skip
        self._monitors[key] = monitor
        return monitor

    def forget(self, model: str, version: str | None = None) -> None:
        """Drop monitors (e.g. after a profile was added to a version)."""
        with self._lock:
            for key in list(self._monitors) + list(self._no_profile):
                if key[0] == model and (version is None or key[1] == version):
                    self._monitors.pop(key, None)
                    self._no_profile.discard(key)

    def _emit(self, model: str, version: str, samples: list[Any]) -> None:
        if not samples:
            return
        stored = [
            MetricSample(s.name, float(s.value), float(s.timestamp), dict(s.labels))
            for s in samples
        ]
        if self.metrics_sink is not None:
            try:
                self.metrics_sink(stored)
            except Exception:
                log.exception("model metrics could not be stored")
        anomalies = self._persistent(model, version, samples)
        if anomalies:
            with self._lock:
                for a in anomalies:
                    self.last_drift[(model, a.details["feature"])] = {
                        "version": version, "time": a.time, "evidence": a.evidence,
                    }  # fmt: skip
            if self.anomalies_sink is not None:
                try:
                    self.anomalies_sink(anomalies)
                except Exception:
                    log.exception("drift anomalies could not reach the incident engine")

    def _persistent(self, model: str, version: str, samples: list[Any]) -> list[Anomaly]:
        """Drift anomalies of features drifted in ``persistence`` consecutive windows."""
        # (samples from before model_drift_significant existed carry only the verdict)
        verdict = (
            "model_drift_significant"
            if any(s.name == "model_drift_significant" for s in samples)
            else "model_drift_detected"
        )
        tested = {
            s.labels.get("feature"): s.value >= 1
            for s in samples
            if s.name == verdict and s.labels.get("feature")
        }
        if not tested:
            return []
        keep = set()
        with self._lock:
            for feature, drifted in tested.items():
                key = (model, version, str(feature))
                streak = self._streak.get(key, 0) + 1 if drifted else 0
                self._streak[key] = streak
                if streak >= self.persistence:
                    keep.add(feature)
        return [a for a in drift_anomalies(model, version, samples) if a.details["feature"] in keep]


def _scalar(outputs: Any) -> Any:
    """A prediction as the monitor compares it: the first element of a one-element list."""
    if isinstance(outputs, list | tuple) and len(outputs) == 1:
        return outputs[0]
    if isinstance(outputs, Mapping) and len(outputs) == 1:
        return next(iter(outputs.values()))
    return outputs


def drift_anomalies(model: str, version: str, samples: Sequence[Any]) -> list[Anomaly]:
    """One anomaly per feature whose window drifted (``model_drift_detected == 1``).

    >>> from opsloop.learn.monitoring import MetricSample as S
    >>> lab = {"model": "churn", "version": "3", "feature": "tenure", "method": "ks"}
    >>> out = drift_anomalies("churn", "3", [
    ...     S("model_drift_score", lab, 0.001, 10.0), S("model_drift_detected", lab, 1.0, 10.0)])
    >>> out[0].evidence[0]
    'model churn@3 drifting on feature tenure (ks p-value 0.001)'
    """
    scores: dict[str, tuple[float, str]] = {}
    pvalues: dict[str, float] = {}
    drifted: list[tuple[str, float]] = []
    for s in samples:
        feature = s.labels.get("feature")
        if s.name == "model_drift_score" and feature:
            scores[feature] = (float(s.value), s.labels.get("method", ""))
        elif s.name == "model_drift_pvalue" and feature:
            pvalues[feature] = float(s.value)
        elif s.name == "model_drift_detected" and feature and s.value >= 1:
            drifted.append((feature, float(s.timestamp)))
    out = []
    for feature, ts in drifted:
        value, method = scores.get(feature, (float("nan"), ""))
        what = "p-value" if method in ("ks", "chisquare", "z") else "distance"
        evidence = f"model {model}@{version} drifting on feature {feature} "
        evidence += f"({method} {what} {value:.3g}"
        if what == "distance" and feature in pvalues:
            evidence += f", sampling p {pvalues[feature]:.2g}"
        evidence += ")"
        details = {
            "labels": {"model": model, "feature": feature},
            "model": model,
            "version": version,
            "feature": feature,
            "method": method,
            "statistic": value,
            "pvalue": pvalues.get(feature, value if what == "p-value" else None),
        }
        score = value if what == "distance" else 1.0 - value
        a = Anomaly("models.monitor", "model_drift", score, ts, f"{model}:{feature}")
        out.append(replace(a, evidence=[evidence], details=details))
    return out
