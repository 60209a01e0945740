"""A backfill through the detector's batch path gives what point-by-point ingestion gives."""

from __future__ import annotations

import math
import random
import time

from opsloop.detect.metrics import steady
from opsloop.services import metric_ingest
from opsloop.services.metric_ingest import MetricIngest
from opsloop.store.telemetry import TelemetryStore
from opsloop.store.telemetry.metrics import MetricSample


def _samples(n: int) -> list[MetricSample]:
    rng = random.Random(5)
    t0 = time.time() - n * 60
    out = []
    for i in range(n):
        for host in ("a", "b"):
            x = 50 + 10 * math.sin(i / 50) + rng.gauss(0, 1) + (25 if i in (400, 600) else 0)
            out.append(MetricSample("cpu", x, t0 + 60 * i, {"host": host}))
        out.append(MetricSample("disk_used", 40 + i * 0.01 + rng.gauss(0, 0.1), t0 + 60 * i))
    return out


def test_a_backfill_in_one_call_equals_point_by_point(tmp_path, monkeypatch):
    steady.warm()  # loaded: groups of BATCH_MIN samples or more take the batch path
    samples = _samples(700)
    runs = {}
    for mode in ("batch", "point"):
        store = TelemetryStore(tmp_path / f"{mode}.duckdb")
        ingest = MetricIngest(store, None, capacity=[("^disk_used$", 95.0)])
        calls = []
        real = ingest._detector

        def spy(key, real=real, calls=calls):
            det = real(key)
            calls.append(key)
            return det

        monkeypatch.setattr(ingest, "_detector", spy)
        if mode == "batch":
            result = ingest.ingest(samples)
            anomalies = result.anomalies
            assert len(calls) == 3  # one call per series: its whole group at once
        else:
            anomalies = []
            for s in samples:
                anomalies += ingest.ingest([s]).anomalies
        runs[mode] = (
            [(a.kind, a.key, a.time, a.score) for a in anomalies],
            {k: d.to_dict() for k, d in ingest.detectors.items()},
        )
        store.close()
    assert runs["batch"] == runs["point"]
    # an alarm's record holds its own strength: at least the alarm's threshold (1 - 1e-3),
    # never the gate's damped output
    assert all(sc >= 1 - 1e-3 for k, _, _, sc in runs["batch"][0] if k == "metric_anomaly")
    kinds = {k for k, *_ in runs["batch"][0]}
    assert "metric_anomaly" in kinds and "exhaustion_forecast" in kinds
    assert metric_ingest.BATCH_MIN <= 700


def test_an_alarm_after_a_weaker_edge_keeps_its_strength(tmp_path):
    # row 241 of this series alarms (p < 1e-3) while the gate, opened by a weaker edge, damps
    # the emitted score to half: the anomaly record says 0.9996, not 0.4998
    rng = random.Random(6)
    t0 = time.time() - 3000 * 60
    samples = [MetricSample("q", 50 + rng.gauss(0, 1), t0 + 60 * i) for i in range(300)]
    for batched in (True, False):
        store = TelemetryStore(tmp_path / f"{batched}.duckdb")
        ingest = MetricIngest(store, None)
        if batched:
            steady.warm()
            found = ingest.ingest(samples).anomalies
        else:
            found = [a for s in samples for a in ingest.ingest([s]).anomalies]
        damped = [a for a in found if a.time == samples[241].ts]
        assert len(damped) == 1 and damped[0].score > 0.999
        store.close()
