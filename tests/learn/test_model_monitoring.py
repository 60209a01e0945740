"""Model monitoring service: predictions and labels stored, windows become metrics, drift an
anomaly naming the feature; the platform wires it to the metric pipeline and incidents."""

from __future__ import annotations

import random

from opsloop.learn.monitoring import ReferenceProfile
from opsloop.services.model_monitoring import ModelMonitoring
from opsloop.store.telemetry import TelemetryStore
from opsloop.store.telemetry.predictions import PredictionTable


def _profile(rng: random.Random) -> ReferenceProfile:
    rows = {
        "tenure": [rng.gauss(24, 6) for _ in range(2000)],
        "plan": [rng.choice(["basic", "pro"]) for _ in range(2000)],
    }
    return ReferenceProfile.from_data(rows, prediction=[rng.random() < 0.3 for _ in range(2000)])


def test_drifted_stream_becomes_an_anomaly_naming_the_feature(tmp_path):
    rng = random.Random(3)
    profile = _profile(rng)
    store = TelemetryStore(tmp_path / "t.duckdb")
    metrics, anomalies = [], []
    clock = [1000.0]
    mon = ModelMonitoring(
        PredictionTable(store),
        metrics_sink=metrics.extend,
        anomalies_sink=anomalies.extend,
        profile_loader=lambda m, v: profile,
        window_size=200,
        clock=lambda: clock[0],
    )
    for i in range(200):  # like the training data: no drift
        row = {"tenure": rng.gauss(24, 6), "plan": rng.choice(["basic", "pro"])}
        mon.on_prediction("churn", "3", f"a{i}", [row], [rng.random() < 0.3], 4.0)
        clock[0] += 1
    assert anomalies == []
    assert any(s.name == "model_drift_share" and s.value == 0 for s in metrics)
    for i in range(200):  # tenure shifted by 3 standard deviations: one window
        row = {"tenure": rng.gauss(42, 6), "plan": rng.choice(["basic", "pro"])}
        mon.on_prediction("churn", "3", f"b{i}", [row], [True], 4.0)
        clock[0] += 1
    assert anomalies == []  # one drifted window is not yet an incident
    for i in range(200):  # the second drifted window in a row
        row = {"tenure": rng.gauss(42, 6), "plan": rng.choice(["basic", "pro"])}
        mon.on_prediction("churn", "3", f"c{i}", [row], [True], 4.0)
        clock[0] += 1
    assert [a.details["feature"] for a in anomalies] == ["tenure"]
    assert anomalies[0].evidence[0].startswith("model churn@3 drifting on feature tenure")
    drift = [
        s for s in metrics if s.name == "model_drift_score" and s.labels["feature"] == "tenure"
    ]
    assert len(drift) == 3 and drift[0].labels["model"] == "churn"
    # labels arrive later and are stored and matched
    got = mon.on_labels("churn", [("a1", True), ("zzz", False)])
    assert got == {"stored": 2, "matched": 1}
    mon.flush()
    counts = PredictionTable(store).counts("churn")
    assert counts == {"predictions": 600, "labels": 2}
    store.close()


def test_a_model_without_profile_is_still_logged(tmp_path):
    store = TelemetryStore(tmp_path / "t.duckdb")
    mon = ModelMonitoring(PredictionTable(store), profile_loader=lambda m, v: None)
    mon.on_prediction("m", "1", "r", [{"x": 1.0}, {"x": float("nan")}], [0, 1], 2.0)
    mon.flush()
    rows = PredictionTable(store).recent("m")
    assert sorted(r["request_id"] for r in rows) == ["r:0", "r:1"]
    assert {r["inputs"]["x"] for r in rows} == {1.0, None}
    store.close()


def test_detector_models_route(client, make_token):
    h = {"Authorization": f"Bearer {make_token('viewer', 'v')}"}
    status = client.get("/api/v1/detector-models", headers=h)
    assert status.status_code == 200 and "loaded" in status.json()
    assert client.post("/api/v1/detector-models/check", headers=h).status_code == 403


def test_serving_policies_come_from_the_settings(tmp_path):
    from opsloop.config import load_settings
    from opsloop.platform import Platform

    cfg = tmp_path / "opsloop.toml"
    cfg.write_text("[models.serving.churn]\ncanary_percent = 10\nshadow = true\n")
    platform = Platform.open(load_settings(cfg, home=tmp_path / "home"))
    try:
        assert platform.serving.policy("churn").canary_percent == 10
        assert platform.serving.policy("churn").shadow is True
        assert platform.serving.policy("other").canary_percent == 0
    finally:
        platform.close()


def test_stable_small_windows_raise_no_drift_incident(tmp_path):
    # 40 windows of 100 predictions like the training data. Evidently's verdict alone calls
    # tenure drifted in most of them (and twice in a row often); none is significant.
    rng = random.Random(11)
    profile = _profile(rng)
    store = TelemetryStore(tmp_path / "t.duckdb")
    metrics, anomalies = [], []
    mon = ModelMonitoring(
        PredictionTable(store), metrics_sink=metrics.extend, anomalies_sink=anomalies.extend,
        profile_loader=lambda m, v: profile, window_size=100, clock=lambda: 1000.0,
    )  # fmt: skip
    for i in range(4000):
        row = {"tenure": rng.gauss(24, 6), "plan": rng.choice(["basic", "pro"])}
        mon.on_prediction("churn", "3", f"a{i}", [row], [rng.random() < 0.3], 4.0)
    verdicts = [s.value for s in metrics if s.name == "model_drift_detected"
                and s.labels["feature"] == "tenure"]  # fmt: skip
    assert len(verdicts) == 40 and sum(verdicts) >= 10
    assert anomalies == []
    for i in range(200):  # then a real shift: two windows, one incident-worthy anomaly
        row = {"tenure": rng.gauss(36, 6), "plan": rng.choice(["basic", "pro"])}
        mon.on_prediction("churn", "3", f"b{i}", [row], [True], 4.0)
    assert [a.details["feature"] for a in anomalies] == ["tenure"]
    assert "sampling p" in anomalies[0].evidence[0] and anomalies[0].details["pvalue"] < 0.01
    store.close()
