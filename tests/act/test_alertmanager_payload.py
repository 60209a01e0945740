"""Alertmanager webhook v4 and generic JSON alerts: parsing and precise errors."""

from __future__ import annotations

import copy
import doctest
from datetime import UTC, datetime

import pytest

from opsloop.act.incidents import alertmanager as am_mod
from opsloop.act.incidents.alert import Severity, label_fingerprint
from opsloop.act.incidents.alertmanager import (
    PayloadError,
    parse_alertmanager,
    parse_generic,
    parse_payload,
    parse_time,
)

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC).timestamp()

WEBHOOK = {
    "version": "4",
    "groupKey": '{}/{severity="critical"}:{alertname="InstanceDown"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "opsloop",
    "groupLabels": {"alertname": "InstanceDown"},
    "commonLabels": {"alertname": "InstanceDown", "job": "node"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "InstanceDown",
                "instance": "db1:9100",
                "job": "node",
                "severity": "critical",
            },
            "annotations": {"summary": "db1 down"},
            "startsAt": "2024-05-01T10:00:00.123456789Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=up+%3D%3D+0",
            "fingerprint": "5d2e1c4b0a9f8e7d",
        },
        {
            "status": "resolved",
            "labels": {"alertname": "InstanceDown", "instance": "web1:9100", "job": "node"},
            "annotations": {},
            "startsAt": "2024-05-01T09:50:00Z",
            "endsAt": "2024-05-01T10:00:00Z",
            "generatorURL": "",
            "fingerprint": "0123456789abcdef",
        },
    ],
}


def webhook(**changes):
    d = copy.deepcopy(WEBHOOK)
    d.update(changes)
    return d


def alert0(**changes):
    d = webhook()
    d["alerts"][0].update(changes)
    return d


def error_of(fn, *args, **kwargs) -> PayloadError:
    with pytest.raises(PayloadError) as e:
        fn(*args, **kwargs)
    return e.value


def test_doctests():
    result = doctest.testmod(am_mod)
    assert result.attempted > 0
    assert result.failed == 0


# -- Alertmanager ---------------------------------------------------------------------------------


def test_webhook_metadata_and_alerts():
    b = parse_alertmanager(webhook())
    assert b.receiver == "opsloop" and b.status == "firing"
    assert b.group_key.startswith("{}/")
    assert b.group_labels == {"alertname": "InstanceDown"}
    assert b.common_labels["job"] == "node"
    assert b.external_url == "http://alertmanager:9093"
    firing, resolved = b.alerts
    assert firing.name == "InstanceDown"
    assert firing.severity is Severity.CRITICAL
    assert firing.status == "firing" and firing.ends_at is None
    assert firing.starts_at == pytest.approx(T0 + 0.123456)
    assert firing.fingerprint == "5d2e1c4b0a9f8e7d"
    assert firing.generator_url.startswith("http://prometheus")
    assert firing.source == "alertmanager"
    assert firing.annotations == {"summary": "db1 down"}
    assert resolved.status == "resolved" and resolved.ends_at == T0
    assert resolved.severity is Severity.WARNING  # no severity label


def test_firing_alert_future_ends_at_is_only_the_resolve_timeout():
    b = parse_alertmanager(alert0(endsAt="2024-05-01T10:05:00Z"))
    assert b.alerts[0].ends_at is None


def test_resolved_without_end_uses_now_else_start():
    d = webhook()
    d["alerts"][1]["endsAt"] = "0001-01-01T00:00:00Z"
    assert parse_alertmanager(d, now=T0 + 60).alerts[1].ends_at == T0 + 60
    assert parse_alertmanager(d).alerts[1].ends_at == T0 - 600


def test_alert_status_falls_back_to_the_group_status():
    d = webhook(status="resolved")
    del d["alerts"][1]["status"]
    assert parse_alertmanager(d).alerts[1].status == "resolved"


def test_missing_fingerprint_is_computed_from_labels():
    d = webhook()
    del d["alerts"][0]["fingerprint"]
    a = parse_alertmanager(d).alerts[0]
    assert a.fingerprint == label_fingerprint(WEBHOOK["alerts"][0]["labels"])


def test_unknown_severity_label_is_warning_and_the_label_is_kept():
    d = webhook()
    d["alerts"][0]["labels"]["severity"] = "sev-7"
    a = parse_alertmanager(d).alerts[0]
    assert a.severity is Severity.WARNING and a.labels["severity"] == "sev-7"


def test_numeric_version_four_is_accepted():
    assert len(parse_alertmanager(webhook(version=4)).alerts) == 2


@pytest.mark.parametrize(
    ("payload", "path", "fragment"),
    [
        ([], "", "expected an object, got a list"),
        ({k: v for k, v in WEBHOOK.items() if k != "version"}, "version", "missing"),
        (webhook(version="3"), "version", "unsupported"),
        (webhook(status="broken"), "status", "'firing' or 'resolved'"),
        ({k: v for k, v in WEBHOOK.items() if k != "status"}, "status", "missing"),
        (webhook(alerts={"a": 1}), "alerts", "expected a list, got an object"),
        (webhook(alerts=None), "alerts", "expected a list, got null"),
        (webhook(alerts=[WEBHOOK["alerts"][0], "x"]), "alerts[1]", "expected an object"),
        (webhook(truncatedAlerts=-1), "truncatedAlerts", "non-negative"),
        (webhook(groupLabels=[]), "groupLabels", "expected an object"),
        (webhook(commonLabels={"a": 1}), "commonLabels.a", "expected a string, got a number"),
        (webhook(receiver=5), "receiver", "expected a string"),
        (alert0(status="pending"), "alerts[0].status", "'firing' or 'resolved'"),
        (alert0(labels="x"), "alerts[0].labels", "expected an object, got a string"),
        (alert0(labels={"alertname": "A", "n": 1}), "alerts[0].labels.n", "got a number"),
        (alert0(labels={"job": "node"}), "alerts[0].labels.alertname", "missing"),
        (alert0(labels={"alertname": ""}), "alerts[0].labels.alertname", "missing"),
        (alert0(annotations={"s": None}), "alerts[0].annotations.s", "got null"),
        (alert0(startsAt=None), "alerts[0].startsAt", "missing"),
        (alert0(startsAt="0001-01-01T00:00:00Z"), "alerts[0].startsAt", "missing"),
        (alert0(startsAt="10 o'clock"), "alerts[0].startsAt", "not an RFC 3339 time"),
        (alert0(startsAt=True), "alerts[0].startsAt", "got a boolean"),
        (alert0(endsAt="soon"), "alerts[0].endsAt", "not an RFC 3339 time"),
        (alert0(fingerprint=12), "alerts[0].fingerprint", "expected a string"),
        (alert0(generatorURL=[]), "alerts[0].generatorURL", "expected a string"),
    ],
)
def test_malformed_webhooks_name_the_field(payload, path, fragment):
    e = error_of(parse_alertmanager, payload)
    assert e.path == path
    assert fragment in e.message
    assert str(e).startswith(f"{path}: " if path else fragment[:5])


def test_resolved_alert_ending_before_it_starts_is_an_error():
    d = webhook()
    d["alerts"][1]["endsAt"] = "2024-05-01T09:00:00Z"
    e = error_of(parse_alertmanager, d)
    assert e.path == "alerts[1].endsAt" and "before it starts" in e.message


def test_too_many_alerts(monkeypatch):
    monkeypatch.setattr(am_mod, "MAX_ALERTS", 1)
    assert error_of(parse_alertmanager, webhook()).path == "alerts"


# -- times ----------------------------------------------------------------------------------------


def test_parse_time_forms():
    assert parse_time("2024-05-01T12:00:00+02:00") == T0
    assert parse_time("2024-05-01T10:00:00") == T0  # no offset = UTC
    assert parse_time(T0) == T0
    assert parse_time("") is None
    with pytest.raises(PayloadError, match="finite"):
        parse_time(float("nan"), "t")


# -- generic JSON ---------------------------------------------------------------------------------


def test_generic_minimal_alert_uses_now():
    a = parse_generic({"name": "Backup late"}, now=T0)
    assert a.name == "Backup late" and a.severity is Severity.WARNING
    assert a.starts_at == T0 and a.firing and a.source == "api"
    assert a.labels == {"alertname": "Backup late"}


def test_generic_full_alert():
    a = parse_generic(
        {
            "name": "Backup late",
            "severity": "High",
            "labels": {"host": "nas", "attempt": 3, "ratio": 0.5},
            "annotations": {"runbook": "http://wiki/backup"},
            "summary": "nightly backup did not finish",
            "starts_at": "2024-05-01T10:00:00Z",
            "generator_url": "http://cron",
            "fingerprint": "given-fp",
        }
    )
    assert a.severity is Severity.ERROR
    assert a.labels == {"host": "nas", "attempt": "3", "ratio": "0.5", "alertname": "Backup late"}
    assert a.annotations == {
        "runbook": "http://wiki/backup",
        "summary": "nightly backup did not finish",
    }
    assert a.fingerprint == "given-fp" and a.generator_url == "http://cron"


def test_generic_status_rules():
    assert parse_generic({"name": "x", "starts_at": 0, "ends_at": 10}).status == "resolved"
    firing = parse_generic({"name": "x", "starts_at": 0, "ends_at": 10, "status": "firing"})
    assert firing.status == "firing" and firing.ends_at is None
    late = parse_generic({"name": "x", "starts_at": 0, "status": "resolved"}, now=50)
    assert late.ends_at == 50


@pytest.mark.parametrize(
    ("payload", "path", "fragment"),
    [
        ("alert", "", "expected an object, got a string"),
        ({}, "name", "missing"),
        ({"name": "  "}, "name", "must not be empty"),
        ({"name": 5}, "name", "expected a string, got a number"),
        ({"name": "x", "severity": "loud"}, "severity", "unknown severity 'loud'"),
        ({"name": "x", "labels": {"a": True}}, "labels.a", "got a boolean"),
        ({"name": "x", "labels": {"a": {"b": "c"}}}, "labels.a", "got an object"),
        ({"name": "x", "labels": {"alertname": "y"}}, "labels.alertname", "differs from name"),
        ({"name": "x", "annotations": ["a"]}, "annotations", "expected an object"),
        ({"name": "x", "starts_at": "tomorrow"}, "starts_at", "not an RFC 3339"),
        ({"name": "x", "starts_at": 10, "ends_at": 5}, "ends_at", "before it starts"),
        ({"name": "x", "status": "ok"}, "status", "'firing' or 'resolved'"),
        ({"name": "x", "summary": 1}, "summary", "expected a string"),
    ],
)
def test_malformed_generic_alerts_name_the_field(payload, path, fragment):
    e = error_of(parse_generic, payload, now=0.0)
    assert e.path == path
    assert fragment in e.message


def test_generic_without_start_and_without_now_is_an_error():
    assert error_of(parse_generic, {"name": "x"}).path == "starts_at"


def test_too_many_labels():
    labels = {f"l{i}": "v" for i in range(300)}
    assert error_of(parse_generic, {"name": "x", "labels": labels}, now=0).path == "labels"


# -- any payload ----------------------------------------------------------------------------------


def test_parse_payload_dispatches_on_shape():
    assert [a.source for a in parse_payload(webhook())] == ["alertmanager", "alertmanager"]
    assert [a.name for a in parse_payload({"name": "one"}, now=0)] == ["one"]
    assert [a.name for a in parse_payload([{"name": "a"}, {"name": "b"}], now=0)] == ["a", "b"]
    assert [a.name for a in parse_payload({"alerts": [{"name": "c"}]}, now=0)] == ["c"]


def test_parse_payload_paths_point_into_lists():
    assert error_of(parse_payload, [{"name": "a"}, {"name": ""}], now=0).path == "[1].name"
    e = error_of(parse_payload, {"alerts": [{"name": "a", "labels": {"x": []}}]}, now=0)
    assert e.path == "alerts[0].labels.x"
    assert error_of(parse_payload, {"alerts": "nope"}).path == "alerts"
    assert error_of(parse_payload, 42).path == ""
