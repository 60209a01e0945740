import math
from datetime import UTC, datetime, timedelta

from opsloop.store.telemetry import MetricSample, TelemetryStore


def test_append_query_and_bucket(tmp_path):
    store = TelemetryStore(tmp_path / "t.duckdb")
    t0 = 1_800_000_000.0  # aligned to a minute
    samples = [MetricSample("cpu", float(i), t0 + i * 10, {"host": "a"}) for i in range(12)]
    samples += [MetricSample("cpu", 50.0, t0, {"host": "b"})]
    assert store.append_metrics(samples) == 13
    series = store.query_metrics("cpu", t0, t0 + 200, step=60)
    by_host = {s.labels["host"]: s.points for s in series}
    assert by_host["a"] == [(t0, 2.5), (t0 + 60, 8.5)]
    assert by_host["b"] == [(t0, 50.0)]
    only_b = store.query_metrics("cpu", t0, t0 + 200, step=60, labels={"host": "b"})
    assert [s.labels for s in only_b] == [{"host": "b"}]
    assert store.metric_names() == ["cpu"]
    store.close()


def test_nan_and_inf_are_never_stored(tmp_path):
    store = TelemetryStore(tmp_path / "t.duckdb")
    n = store.append_metrics(
        [
            MetricSample("m", math.nan, 1e9),
            MetricSample("m", math.inf, 1e9),
            MetricSample("m", 1.0, math.nan),
            MetricSample("m", 2.0, 1e9),
        ]
    )
    assert n == 1 and store.count_metrics() == 1
    store.close()


def test_retention_drops_whole_old_days(tmp_path):
    store = TelemetryStore(tmp_path / "t.duckdb")
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    old = (now - timedelta(days=10)).timestamp()
    recent = (now - timedelta(hours=1)).timestamp()
    store.append_metrics([MetricSample("m", 1.0, old), MetricSample("m", 2.0, recent)])
    assert store.drop_older_than(7, now=now) == 1
    assert store.count_metrics() == 1
    store.close()


def test_data_survives_reopen(tmp_path):
    path = tmp_path / "t.duckdb"
    store = TelemetryStore(path)
    store.append_metrics([MetricSample("m", 1.0, 1e9)])
    store.close()
    again = TelemetryStore(path)
    assert again.count_metrics() == 1
    again.close()


def test_old_days_are_downsampled_once(tmp_path):
    store = TelemetryStore(tmp_path / "t.duckdb")
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    old_day = datetime(2026, 11, 10, tzinfo=UTC).timestamp()
    raw = [MetricSample("cpu", float(i % 10), old_day + i * 10, {"h": "a"}) for i in range(8640)]
    recent = [MetricSample("cpu", 5.0, now.timestamp() - 60 * i, {"h": "a"}) for i in range(10)]
    store.append_metrics(raw + recent)
    assert store.downsample_older_than(7, now=now) == 1
    assert store.count_metrics() == 288 + 10  # one day of 5-minute buckets + the recent rows
    series = store.query_metrics("cpu", old_day, old_day + 599, step=300)
    assert [p[1] for p in series[0].points] == [4.5, 4.5]
    assert store.downsample_older_than(7, now=now) == 0  # idempotent
    assert store.count_metrics() == 298
    store.close()
