"""The streaming window monitor: drift windows, label joins, performance, bounds (synthetic)."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

from opsloop.learn.monitoring import window
from opsloop.learn.monitoring.profile import ReferenceProfile
from opsloop.learn.monitoring.window import MetricSample, WindowMonitor


def test_doctests():
    result = doctest.testmod(window)
    assert result.failed == 0 and result.attempted > 0


def _profile(seed=0, n=2000, prediction=True):
    rng = np.random.default_rng(seed)
    data = {
        "tenure": rng.normal(24, 6, n),
        "plan": rng.choice(["basic", "pro", "team"], n, p=[0.6, 0.3, 0.1]),
    }
    pred = rng.choice([0, 1], n, p=[0.7, 0.3]) if prediction else None
    return ReferenceProfile.from_data(data, prediction=pred)


def _by(samples, name, **labels):
    return [
        s
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def _feed(mon, rng, n, *, shift=0.0, t0=0.0, dt=1.0, start_id=0, plan_p=(0.6, 0.3, 0.1)):
    out = []
    for i in range(n):
        features = {
            "tenure": float(rng.normal(24 + shift, 6)),
            "plan": str(rng.choice(["basic", "pro", "team"], p=list(plan_p))),
        }
        pred = int(rng.random() < 0.3)
        out += mon.observe(
            features,
            pred,
            request_id=f"r{start_id + i}",
            score=0.5,
            latency_s=0.01 * (1 + i % 10),
            timestamp=t0 + i * dt,
        )
    return out


def test_count_window_emits_labelled_samples_and_detects_shift():
    rng = np.random.default_rng(1)
    mon = WindowMonitor(_profile(), model="churn", version=3, window_size=500)
    assert _feed(mon, rng, 499) == []
    calm = _feed(mon, rng, 1, t0=499.0)
    assert all(isinstance(s, MetricSample) for s in calm)
    score = _by(calm, "model_drift_score", feature="tenure")[0]
    assert score.labels == {
        "model": "churn",
        "version": "3",
        "feature": "tenure",
        "method": "wasserstein",
    }
    assert score.timestamp == 499.0
    assert _by(calm, "model_window_rows")[0].value == 500
    assert _by(calm, "model_drift_share")[0].value == 0.0
    assert _by(calm, "model_prediction_drift_detected")[0].value == 0.0
    moved = _feed(mon, rng, 500, shift=6.0, plan_p=(0.2, 0.3, 0.5), t0=1000.0)
    assert _by(moved, "model_drift_detected", feature="tenure")[0].value == 1.0
    assert _by(moved, "model_drift_detected", feature="plan")[0].value == 1.0
    assert _by(moved, "model_dataset_drift")[0].value == 1.0


def test_latency_quantiles_and_error_rate():
    rng = np.random.default_rng(2)
    mon = WindowMonitor(_profile(), model="m", version="1", window_size=100)
    out = []
    for i in range(100):
        feats = {"tenure": float(rng.normal(24, 6)), "plan": "basic"}
        out += mon.observe(feats, 0, latency_s=float(i + 1), error=i % 4 == 0, timestamp=float(i))
    assert _by(out, "model_error_rate")[0].value == 0.25
    p50 = _by(out, "model_latency_seconds", quantile="0.5")[0].value
    assert p50 == pytest.approx(np.quantile(np.arange(1, 101), 0.5))
    assert len(_by(out, "model_latency_seconds")) == 3


def test_time_windows_close_on_aligned_boundaries_and_on_tick():
    rng = np.random.default_rng(3)
    mon = WindowMonitor(_profile(), model="m", version="1", window_size=None, window_seconds=60.0)
    out = _feed(mon, rng, 100, t0=6000.0, dt=0.5)  # 6000 .. 6049.5, one period [6000, 6060)
    assert out == []
    out = mon.observe({"tenure": 24.0, "plan": "pro"}, 0, timestamp=6061.0)
    rows = _by(out, "model_window_rows")
    assert rows[0].value == 100 and rows[0].timestamp == 6060.0
    # an idle period: tick closes the window holding the single record
    assert mon.tick(6100.0) == []
    closed = mon.tick(6120.0)
    assert _by(closed, "model_window_rows")[0].value == 1
    assert _by(closed, "model_window_rows")[0].timestamp == 6120.0
    assert mon.tick(7000.0) == []  # nothing open


def test_window_memory_is_bounded_but_counts_stay_exact():
    rng = np.random.default_rng(4)
    mon = WindowMonitor(
        _profile(),
        model="m",
        version="1",
        window_size=None,
        window_seconds=1e6,
        max_window_rows=1000,
    )
    _feed(mon, rng, 5000, dt=0.01)
    assert len(mon._rows) == 1000
    out = mon.flush(now=100.0)
    assert _by(out, "model_window_rows")[0].value == 5000
    assert _by(out, "model_drift_share")[0].value == 0.0  # a uniform sample still looks alike
    assert len(mon._rows) == 0


def test_missing_features_are_counted_and_untested_when_all_missing():
    mon = WindowMonitor(_profile(), model="m", version="1", window_size=50)
    out = []
    for i in range(50):
        tenure = [None, float("nan"), "n/a", 20.0][i % 4]
        out += mon.observe({"tenure": tenure}, 0, timestamp=float(i))
    assert _by(out, "model_feature_missing_share", feature="tenure")[0].value == 38 / 50
    assert _by(out, "model_feature_missing_share", feature="plan")[0].value == 1.0
    assert _by(out, "model_drift_score", feature="plan") == []
    assert len(_by(out, "model_drift_score", feature="tenure")) == 1
    assert _by(out, "model_drift_share")[0].value == 1.0  # 12 rows of 20.0 vs N(24, 6): drift


def test_labels_join_predictions_and_give_classification_performance():
    mon = WindowMonitor(_profile(), model="m", version="1", window_size=1000, label_window_size=4)
    for i, (pred, score) in enumerate([(1, 0.9), (0, 0.8), (0, 0.6), (1, 0.7)]):
        mon.observe({"tenure": 24.0, "plan": "pro"}, pred, request_id=f"q{i}", score=score)
    assert mon.pending_labels == 4
    out = []
    for i, y in enumerate([1, 0, 1, 1]):
        out += mon.label(f"q{i}", y, timestamp=50.0 + i)
    assert mon.pending_labels == 0
    assert _by(out, "model_accuracy")[0].value == 0.75
    assert _by(out, "model_f1")[0].value == pytest.approx(0.8)
    assert _by(out, "model_roc_auc")[0].value == pytest.approx(
        1 / 3
    )  # positives 0.9, 0.6, 0.7 vs negative 0.8
    assert _by(out, "model_labelled_rows")[0].value == 4
    assert _by(out, "model_accuracy")[0].timestamp == 53.0
    assert mon.label("unknown", 1) == [] and mon.unmatched == 1


def test_regression_performance():
    ref = ReferenceProfile.from_data(
        {"x": np.linspace(0, 1, 100)}, prediction=np.linspace(0, 10, 100)
    )
    mon = WindowMonitor(ref, model="m", version="1", task="regression", label_window_size=3)
    for i, pred in enumerate([1.0, 2.0, 3.0]):
        mon.observe({"x": 0.5}, pred, request_id=str(i), timestamp=1.0)
    out = []
    for i, y in enumerate([1.0, 3.0, 5.0]):
        out += mon.label(str(i), y, timestamp=2.0)
    assert _by(out, "model_mae")[0].value == pytest.approx(1.0)
    assert _by(out, "model_rmse")[0].value == pytest.approx(math.sqrt(5 / 3))


def test_pending_labels_are_bounded_with_eviction_and_ttl():
    mon = WindowMonitor(
        _profile(), model="m", version="1", max_pending_labels=10, label_ttl_s=100.0
    )
    for i in range(25):
        mon.observe({"tenure": 24.0, "plan": "pro"}, 1, request_id=str(i), timestamp=float(i))
    assert mon.pending_labels == 10 and mon.evicted == 15
    assert mon.label("3", 1, timestamp=30.0) == [] and mon.unmatched == 1  # evicted: oldest
    mon.label("20", 1, timestamp=30.0)
    assert mon.pending_labels == 9
    mon.tick(121.5)  # entries observed at 15..21 are older than 100 s
    assert mon.pending_labels == 3 and mon.evicted == 21
    out = mon.flush(now=130.0)
    assert _by(out, "model_labels_evicted_total")[0].value == 21
    assert _by(out, "model_accuracy")[0].value == 1.0


def test_errors_are_not_awaiting_labels_and_arguments_are_checked():
    mon = WindowMonitor(_profile(), model="m", version="1")
    mon.observe({"tenure": 1.0}, None, request_id="a", error=True, timestamp=1.0)
    assert mon.pending_labels == 0
    with pytest.raises(ValueError):
        WindowMonitor(_profile(), model="m", version="1", window_size=None)
    with pytest.raises(ValueError):
        WindowMonitor(_profile(), model="m", version="1", task="ranking")
    with pytest.raises(ValueError):
        WindowMonitor(_profile(), model="m", version="1", window_size=20_000)


def test_profile_without_predictions_skips_prediction_drift():
    rng = np.random.default_rng(5)
    mon = WindowMonitor(_profile(prediction=False), model="m", version="1", window_size=100)
    out = _feed(mon, rng, 100)
    assert _by(out, "model_prediction_drift_score") == []
    assert _by(out, "model_drift_share")


def test_small_windows_of_stable_data_are_not_significant_drift():
    # Evidently's fixed 0.1 distance ignores the window size: on 100-row windows of the very
    # distribution the reference came from, it calls "tenure" drifted most of the time.
    rng = np.random.default_rng(5)
    mon = WindowMonitor(_profile(n=5000), model="churn", version=1, window_size=100)
    out = _feed(mon, rng, 100 * 60)
    verdicts = [s.value for s in _by(out, "model_drift_detected", feature="tenure")]
    significant = [s.value for s in _by(out, "model_drift_significant", feature="tenure")]
    pvalues = [s.value for s in _by(out, "model_drift_pvalue", feature="tenure")]
    assert len(verdicts) == len(significant) == len(pvalues) == 60
    assert sum(verdicts) >= 20  # Evidently's verdict alone: a false alarm factory
    assert sum(significant) <= 3
    assert all(0.0 < p <= 1.0 for p in pvalues)
    plan = [s.value for s in _by(out, "model_drift_significant", feature="plan")]
    assert sum(plan) <= 3
    moved = _feed(mon, rng, 100, shift=6.0, plan_p=(0.2, 0.3, 0.5), t0=1e5, start_id=10**6)
    assert _by(moved, "model_drift_significant", feature="tenure")[0].value == 1.0
    assert _by(moved, "model_drift_significant", feature="plan")[0].value == 1.0
    assert _by(moved, "model_drift_pvalue", feature="tenure")[0].value < 0.01


def test_significance_must_be_a_probability():
    with pytest.raises(ValueError, match="significance"):
        WindowMonitor(_profile(), model="m", version=1, window_size=10, significance=0.0)


def test_significance_doctests():
    from opsloop.learn.monitoring import significance

    result = doctest.testmod(significance)
    assert result.failed == 0 and result.attempted > 0
