"""Learned state survives restarts; unusable state files are set aside, never trusted."""

import stat

from opsloop.services.metric_ingest import MetricIngest
from opsloop.services.state_file import load_state, save_state
from opsloop.store.telemetry import MetricSample, TelemetryStore


def test_save_load_and_set_aside(tmp_path):
    path = tmp_path / "s.json"
    save_state(path, {"version": 2, "x": 1})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_state(path, 2) == {"version": 2, "x": 1}
    assert load_state(path, 3) is None  # foreign version: moved aside
    assert not path.exists() and (tmp_path / "s.corrupt").exists()
    path.write_text("{truncated")
    assert load_state(path, 2) is None
    assert load_state(tmp_path / "missing.json", 2) is None


def test_metric_detectors_survive_a_restart(tmp_path):
    store = TelemetryStore(tmp_path / "t.duckdb")
    state = tmp_path / "metric_state.json"
    first = MetricIngest(store, state)
    samples = [MetricSample("lat", 10.0 + (i % 4), 1_800_000_000 + 10 * i) for i in range(500)]
    first.ingest(samples, now=1_800_010_000)
    assert first.snapshot() is True
    assert first.snapshot() is False  # nothing changed since
    again = MetricIngest(store, state)
    key = next(iter(first.detectors))
    probe = (1_800_005_010, 10.5)
    assert again.detectors[key].score_one(*probe) == first.detectors[key].score_one(*probe)
    state.write_text('{"version": 1, "detectors": {"x": "not a dict"}, "forecasters": {}}')
    fresh = MetricIngest(store, state)
    assert fresh.detectors == {} and (tmp_path / "metric_state.corrupt").exists()
    store.close()
