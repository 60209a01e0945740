"""The normalised Alert: fingerprints, severities, and alerts made from opsloop anomalies."""

from __future__ import annotations

import doctest
import json
from datetime import UTC, datetime

import pytest

from opsloop.act.incidents import alert as alert_mod
from opsloop.act.incidents.alert import (
    Alert,
    Severity,
    anomaly_severity,
    from_anomaly,
    label_fingerprint,
    max_severity,
    signal_kind,
)
from opsloop.detect.anomaly import Anomaly


def test_doctests():
    result = doctest.testmod(alert_mod)
    assert result.attempted > 0
    assert result.failed == 0


# -- fingerprint ----------------------------------------------------------------------------------


def test_fingerprint_matches_prometheus_labelset_fingerprint():
    # Vectors from prometheus/common model (LabelSet.Fingerprint, FNV-1a 64 with 0xff separators).
    assert int(label_fingerprint({}), 16) == 14695981039346656037
    labels = {"name": "garland, briggs", "fear": "love is not enough"}
    assert int(label_fingerprint(labels), 16) == 5799056148416392346


def test_fingerprint_is_the_label_set_including_alertname():
    a = Alert(name="Down", severity=Severity.CRITICAL, starts_at=0.0, labels={"host": "db1"})
    assert a.labels == {"host": "db1", "alertname": "Down"}
    assert a.fingerprint == label_fingerprint({"alertname": "Down", "host": "db1"})
    assert len(a.fingerprint) == 16


def test_fingerprint_ignores_times_annotations_and_severity_but_not_labels():
    base = Alert(name="Down", severity=Severity.CRITICAL, starts_at=0.0, labels={"host": "db1"})
    same = Alert(
        name="Down",
        severity=Severity.INFO,
        starts_at=99.0,
        ends_at=120.0,
        labels={"host": "db1"},
        annotations={"summary": "other text"},
    )
    other_host = Alert(
        name="Down", severity=Severity.CRITICAL, starts_at=0.0, labels={"host": "db2"}
    )
    other_name = Alert(name="Up", severity=Severity.CRITICAL, starts_at=0.0, labels={"host": "db1"})
    assert same.fingerprint == base.fingerprint
    assert other_host.fingerprint != base.fingerprint
    assert other_name.fingerprint != base.fingerprint


def test_given_fingerprint_is_kept():
    a = Alert(name="X", severity=Severity.INFO, starts_at=0.0, fingerprint="abc123")
    assert a.fingerprint == "abc123"
    assert a.with_changes(ends_at=5.0).fingerprint == "abc123"


def test_status_and_times():
    a = Alert(name="X", severity=Severity.INFO, starts_at=10.0)
    assert a.status == "firing" and a.firing and a.last_time == 10.0
    r = a.with_changes(ends_at=25.0)
    assert r.status == "resolved" and not r.firing and r.last_time == 25.0


def test_invalid_alerts_are_rejected():
    with pytest.raises(ValueError, match="name"):
        Alert(name="", severity=Severity.INFO, starts_at=0.0)
    with pytest.raises(ValueError, match="finite"):
        Alert(name="X", severity=Severity.INFO, starts_at=float("nan"))
    with pytest.raises(ValueError, match="finite"):
        Alert(name="X", severity=Severity.INFO, starts_at=0.0, ends_at=float("inf"))


def test_round_trip_through_json():
    a = Alert(
        name="X",
        severity=Severity.ERROR,
        starts_at=1.5,
        ends_at=3.0,
        labels={"host": "h"},
        annotations={"summary": "s"},
        source="alertmanager",
        generator_url="http://prom/graph",
        fingerprint="ff",
    )
    assert Alert.from_dict(json.loads(json.dumps(a.to_dict()))) == a


def test_match_labels_add_severity_without_overriding_a_label():
    a = Alert(name="X", severity=Severity.ERROR, starts_at=0.0)
    assert a.match_labels["severity"] == "error"
    b = Alert(name="X", severity=Severity.CRITICAL, starts_at=0.0, labels={"severity": "page"})
    assert b.match_labels["severity"] == "page"
    assert "severity" not in a.labels


# -- severity -------------------------------------------------------------------------------------


def test_severity_order_and_aliases():
    ranks = [s.rank for s in (Severity.CRITICAL, Severity.ERROR, Severity.WARNING, Severity.INFO)]
    assert ranks == sorted(ranks, reverse=True)
    assert Severity.parse(" Warn ") is Severity.WARNING
    assert Severity.parse("none") is Severity.INFO
    assert Severity.parse("high") is Severity.ERROR
    with pytest.raises(ValueError, match="unknown severity"):
        Severity.parse("loud")
    assert Severity.parse("loud", default=Severity.WARNING) is Severity.WARNING


def test_max_severity():
    assert max_severity([]) is Severity.INFO
    assert max_severity([Severity.WARNING, Severity.CRITICAL, Severity.ERROR]) is Severity.CRITICAL


# -- from opsloop anomalies -----------------------------------------------------------------------


def metric_anomaly(t: float, value: float, score: float = 0.9995, host: str = "db1") -> Anomaly:
    labels = {"host": host, "job": "node"}
    key = "node_cpu" + json.dumps(labels, sort_keys=True, separators=(",", ":"))
    return Anomaly(
        "metrics.detector",
        "metric_anomaly",
        score,
        t,
        key,
        [f"node_cpu = {value:g} is unusual for this series (score {score:.3f})"],
        {"name": "node_cpu", "labels": labels, "value": value},
    )


def test_from_metric_anomaly():
    a = from_anomaly(metric_anomaly(1000.0, 97.0))
    assert a.name == "metrics.detector.metric_anomaly"
    assert a.labels == {
        "alertname": "metrics.detector.metric_anomaly",
        "host": "db1",
        "job": "node",
        "metric": "node_cpu",
    }
    assert a.source == "opsloop:metrics.detector"
    assert a.starts_at == 1000.0 and a.firing
    assert a.severity is Severity.WARNING
    assert a.annotations["summary"].startswith("node_cpu = 97")
    assert a.annotations["kind"] == "metric_anomaly"
    assert a.annotations["score"] == "0.9995"


def test_repeated_anomalies_on_one_series_share_a_fingerprint():
    a, b = from_anomaly(metric_anomaly(1000.0, 97.0)), from_anomaly(metric_anomaly(1600.0, 99.0))
    c = from_anomaly(metric_anomaly(1000.0, 97.0, host="db2"))
    assert a.fingerprint == b.fingerprint
    assert a.fingerprint != c.fingerprint


def test_from_log_burst_with_template_and_host():
    an = Anomaly(
        "logs.frequency",
        "burst",
        12.5,
        datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
        "17",
        ["17: 300 lines in the window, baseline 4.00 +/- 2.00", "template: Connection reset <*>"],
        {"count": 300.0, "z": 12.5, "template": "Connection reset <*>", "host": "db1"},
    )
    a = from_anomaly(an)
    assert a.name == "logs.frequency.burst"
    assert a.labels["key"] == "17" and a.labels["host"] == "db1"
    assert "metric" not in a.labels
    assert a.severity is Severity.ERROR  # z >= 10
    assert a.starts_at == datetime(2024, 5, 1, 10, 0, tzinfo=UTC).timestamp()
    assert a.annotations["template"] == "Connection reset <*>"
    assert a.annotations["description"].count("\n") == 1
    assert signal_kind(a) == "logs.frequency.burst:17"


def test_label_values_from_details_are_strings_and_booleans_are_skipped():
    an = Anomaly("x", "y", 1.0, 0.0, "k", details={"host": 7, "service": True, "labels": {"n": 3}})
    a = from_anomaly(an)
    assert a.labels["host"] == "7" and a.labels["n"] == "3"
    assert "service" not in a.labels


@pytest.mark.parametrize(
    ("kind", "score", "expected"),
    [
        ("new_template", 1.0, Severity.INFO),
        ("rare_template", 0.9, Severity.INFO),
        ("burst", 4.5, Severity.WARNING),
        ("burst", 10.0, Severity.ERROR),
        ("silence", 2.0, Severity.WARNING),
        ("session", 30.0, Severity.WARNING),
        ("session_order", 5.0, Severity.WARNING),
        ("metric_anomaly", 0.9995, Severity.WARNING),
        ("metric_anomaly", 0.999995, Severity.ERROR),
        ("exhaustion_forecast", 0.5, Severity.WARNING),
        ("exhaustion_forecast", 0.8, Severity.ERROR),
        ("data_drift", 3.0, Severity.WARNING),
    ],
)
def test_anomaly_severity_table(kind, score, expected):
    assert anomaly_severity(Anomaly("src", kind, score, 0.0, "k")) is expected


def test_detector_given_severity_wins():
    an = Anomaly("models.monitor", "accuracy_drop", 0.1, 0.0, "m", details={"severity": "crit"})
    assert anomaly_severity(an) is Severity.CRITICAL
    odd = Anomaly("models.monitor", "accuracy_drop", 0.1, 0.0, "m", details={"severity": "??"})
    assert anomaly_severity(odd) is Severity.WARNING


def test_signal_kind():
    session = from_anomaly(Anomaly("logs.sessions", "session", 30.0, 0.0, "blk_123"))
    assert signal_kind(session) == "logs.sessions.session"
    metric = from_anomaly(metric_anomaly(0.0, 1.0))
    assert signal_kind(metric) == "metrics.detector.metric_anomaly:node_cpu"
    external = Alert(name="HighCPU", severity=Severity.INFO, starts_at=0.0, labels={"key": "x"})
    assert signal_kind(external) == "HighCPU"
