"""The correlator, incidents' lifecycle, merge/split and learned co-occurrence."""

from __future__ import annotations

import doctest
import json

import pytest

from opsloop.act.incidents import cooccur as cooccur_mod
from opsloop.act.incidents import correlate as correlate_mod
from opsloop.act.incidents import incident as incident_mod
from opsloop.act.incidents.alert import Alert, Severity, from_anomaly
from opsloop.act.incidents.cooccur import CooccurrenceStats
from opsloop.act.incidents.correlate import Correlator, CorrelatorConfig, group_key
from opsloop.act.incidents.incident import (
    IncidentStatus,
    IncidentView,
    LifecycleError,
    acknowledge,
    add_alert,
    due_for_auto_resolve,
    expire_stale,
    merge,
    new_incident,
    resolve,
    split,
    unacknowledge,
)
from opsloop.detect.anomaly import Anomaly

T = 1_714_557_600.0  # 2024-05-01T10:00:00Z


def am(name, t, severity=Severity.WARNING, ends_at=None, **labels) -> Alert:
    """An alert as Alertmanager would send it."""
    return Alert(name, severity, t, labels, ends_at=ends_at, source="alertmanager")


def log_burst(t, host="db1", template="17", z=6.0, service="postgres") -> Alert:
    """A log burst from the postgres logs of ``host`` (log sources carry a service)."""
    return from_anomaly(
        Anomaly(
            "logs.frequency",
            "burst",
            z,
            t,
            template,
            [f"{template}: 300 lines in the window"],
            {"template": "Connection reset by <*>", "host": host, "service": service},
        )
    )


def cpu_spike(t, host="db1", score=0.99999) -> Alert:
    return from_anomaly(
        Anomaly(
            "metrics.detector",
            "metric_anomaly",
            score,
            t,
            f"cpu|{host}",
            ["cpu = 99 is unusual"],
            {"name": "cpu", "labels": {"host": host}, "value": 99.0},
        )
    )


class Engine:
    """A tiny in-memory store driving the correlator, as the integration will."""

    def __init__(self, correlator: Correlator | None = None) -> None:
        self.c = correlator or Correlator()
        self.incidents: dict[str, IncidentView] = {}
        self.n = 0

    def feed(self, alert: Alert, now: float | None = None):
        self.n += 1
        d = self.c.correlate(
            alert, list(self.incidents.values()), now=alert.starts_at if now is None else now,
            new_id=f"inc-{self.n}",
        )  # fmt: skip
        if d.incident is not None:
            self.incidents[d.incident.id] = d.incident
        return d

    def resolve_all(self, now: float) -> None:
        for k, inc in self.incidents.items():
            self.incidents[k] = resolve(inc, now, "test")


@pytest.mark.parametrize("module", [incident_mod, cooccur_mod, correlate_mod])
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0


# -- dedup ----------------------------------------------------------------------------------------


def test_duplicates_update_the_same_alert_and_make_no_new_incident():
    e = Engine()
    a = am("HighLatency", T, service="api", host="web1")
    d1 = e.feed(a)
    d2 = e.feed(a, now=T + 60)  # Alertmanager re-send
    d3 = e.feed(a.with_changes(annotations={"summary": "p99 2s"}), now=T + 120)
    assert d1.action == "new"
    assert d2.action == d3.action == "dedup"
    assert d2.incident_id == d3.incident_id == d1.incident_id
    assert "same fingerprint" in d2.reason
    assert len(e.incidents) == 1
    entry = e.incidents[d1.incident_id].alerts[a.fingerprint]
    assert entry.count == 3
    assert entry.alert.annotations == {"summary": "p99 2s"}


def test_repeated_anomalies_on_one_series_are_one_alert_with_a_widening_signal_span():
    e = Engine()
    for i in range(4):
        e.feed(cpu_spike(T + 60 * i))
    (inc,) = e.incidents.values()
    (entry,) = inc.alerts.values()
    assert entry.count == 4
    assert (inc.first_signal, inc.last_signal) == (T, T + 180)


def test_resolve_then_auto_resolve_after_quiet_period():
    e = Engine()
    a = am("DiskFull", T, host="db1")
    e.feed(a)
    d = e.feed(a.with_changes(ends_at=T + 600), now=T + 600)
    assert d.action == "dedup" and "resolved" in d.reason
    inc = d.incident
    assert inc.status is IncidentStatus.OPEN  # the incident waits for the quiet period
    assert not due_for_auto_resolve(inc, T + 600 + 299, quiet_s=300)
    assert due_for_auto_resolve(inc, T + 600 + 300, quiet_s=300)
    done = resolve(inc, T + 900, "opsloop", "all alerts resolved")
    assert not due_for_auto_resolve(done, T + 10_000, quiet_s=300)


def test_not_due_while_any_alert_fires():
    e = Engine()
    a, b = am("A", T, host="h"), am("B", T + 1, host="h")
    e.feed(a)
    e.feed(b)
    inc = e.feed(a.with_changes(ends_at=T + 5)).incident
    assert not due_for_auto_resolve(inc, T + 10_000, quiet_s=300)


# -- grouping joins -------------------------------------------------------------------------------


def test_same_service_and_host_within_the_group_window_join():
    e = Engine()
    e.feed(am("HighLatency", T, service="api", host="web1"))
    d = e.feed(am("Errors5xx", T + 120, service="api", host="web1"))
    assert d.action == "join"
    assert d.reason == "service=api, host=web1; group window 10 min, 2 min apart"
    assert d.incident.reasons(d.incident.headline_alert.fingerprint)


def test_two_services_make_two_incidents():
    e = Engine()
    d1 = e.feed(am("HighLatency", T, service="api", host="web1"))
    d2 = e.feed(am("HighLatency", T + 10, service="billing", host="web2"))
    assert d1.action == d2.action == "new"
    assert d1.incident_id != d2.incident_id
    assert d2.reason == "new incident for service=billing, host=web2"


def test_same_service_on_another_host_does_not_group_with_default_group_by():
    e = Engine()
    e.feed(am("A", T, service="api", host="web1"))
    d = e.feed(am("B", T + 10, service="api", host="web2"))
    assert d.action == "new"


def test_configurable_group_by():
    e = Engine(Correlator(CorrelatorConfig(group_by=("service",))))
    e.feed(am("A", T, service="api", host="web1"))
    d = e.feed(am("B", T + 10, service="api", host="web2"))
    assert d.action == "join" and d.reason.startswith("service=api; group window 10 min")


def test_group_window_expires():
    e = Engine()
    e.feed(log_burst(T, template="3", service="api"))
    assert e.feed(log_burst(T + 600, template="4", service="api")).action == "join"
    assert e.feed(log_burst(T + 1201, template="5", service="api")).action == "new"


def test_a_still_firing_alertmanager_alert_keeps_its_group_open():
    e = Engine()
    e.feed(am("HighLatency", T, service="api", host="web1"))
    d = e.feed(am("Errors5xx", T + 3600, service="api", host="web1"))
    assert d.action == "join"
    assert d.reason == "service=api, host=web1; HighLatency still firing"


def test_alerts_without_grouping_labels_stay_alone():
    e = Engine()
    e.feed(am("Watchdog", T, team="x"))
    d = e.feed(am("Other", T + 1, team="x"))
    assert d.action == "new"
    assert d.incident.group_key.startswith("fingerprint=")
    assert group_key(am("X", T)) is None


def test_out_of_order_signal_inside_the_incident_span():
    e = Engine()
    e.feed(am("A", T, service="api"))
    e.feed(am("B", T + 300, service="api"))
    d = e.feed(am("C", T + 100, service="api"), now=T + 400)
    assert d.action == "join" and d.reason.endswith("within the incident")


# -- co-occurrence on a host ----------------------------------------------------------------------


def test_log_burst_and_metric_spike_on_one_host_join_with_a_reason():
    e = Engine()
    d1 = e.feed(log_burst(T))
    d2 = e.feed(cpu_spike(T + 40))
    assert d1.action == "new" and d2.action == "join"
    assert d2.incident_id == d1.incident_id
    assert d2.reason == "same host db1, 40 s apart"
    inc = d2.incident
    assert inc.severity is Severity.ERROR  # the metric spike (p <= 1e-5)
    assert inc.likely_cause.name == "logs.frequency.burst"  # earliest signal
    assert inc.title == "metrics.detector.metric_anomaly on host=db1 (+1 more)"
    assert inc.labels["host"] == ("db1",)
    assert inc.reasons(inc.likely_cause.fingerprint) == [d1.reason]
    assert d1.reason == "new incident for service=postgres, host=db1"


def test_metric_before_log_joins_too():
    e = Engine()
    e.feed(cpu_spike(T))
    d = e.feed(log_burst(T + 90))
    assert d.action == "join" and d.reason == "same host db1, 90 s apart"


def test_signals_on_another_host_or_too_far_apart_do_not_join():
    e = Engine()
    e.feed(log_burst(T))
    assert e.feed(cpu_spike(T + 40, host="db2")).action == "new"
    assert e.feed(cpu_spike(T + 40 + 301)).action == "new"


def test_group_join_is_preferred_over_co_occurrence():
    e = Engine()
    e.feed(am("A", T, service="pg", host="db1"))
    other = e.feed(cpu_spike(T + 5, host="db9"))
    d = e.feed(am("B", T + 30, service="pg", host="db1"))
    assert d.action == "join" and d.reason.startswith("service=pg, host=db1")
    assert d.incident_id != other.incident_id


def train(e: Engine, episodes: int, start: float = T) -> float:
    """``episodes`` separate incidents, each a log burst then a cpu spike 40 s later."""
    t = start
    for _ in range(episodes):
        e.feed(log_burst(t))
        e.feed(cpu_spike(t + 40))
        e.resolve_all(t + 3000)
        t += 10_000
    return t


def test_learned_co_occurrence_joins_beyond_the_short_window_with_a_reason():
    e = Engine()
    t = train(e, 9)
    d1 = e.feed(log_burst(t))
    d2 = e.feed(cpu_spike(t + 540))  # 9 min: past the 5 min co-occurrence window
    assert d2.action == "join" and d2.incident_id == d1.incident_id
    assert d2.reason.startswith(
        "same host db1, 9 min apart; metrics.detector.metric_anomaly:cpu and "
        "logs.frequency.burst:17 co-occurred on one host 9 of the last 9 times"
    )
    # the same series had incidents before; the reason says so
    assert d2.reason.endswith("was resolved")
    assert e.c.stats.support("logs.frequency.burst:17", "metrics.detector.metric_anomaly:cpu") == (
        9,
        10,
    )


def test_without_history_the_same_gap_opens_a_new_incident():
    e = Engine()
    e.feed(log_burst(T))
    assert e.feed(cpu_spike(T + 540)).action == "new"


def test_learned_reason_is_added_to_short_window_joins():
    e = Engine()
    t = train(e, 6)
    e.feed(log_burst(t))
    d = e.feed(cpu_spike(t + 30))
    assert d.reason.startswith("same host db1, 30 s apart; ")
    assert "co-occurred on one host 6 of the last 6 times" in d.reason


def test_weak_history_is_not_a_reason():
    e = Engine()
    t = train(e, 3)  # below learned_min_count = 5
    e.feed(log_burst(t))
    assert e.feed(cpu_spike(t + 540)).action == "new"
    t = train(e, 1, start=t + 10_000)
    e.feed(log_burst(t))
    reason = e.feed(cpu_spike(t + 30)).reason
    assert reason.startswith("same host db1, 30 s apart; re-fired after incident")
    assert "co-occurred" not in reason


def test_learned_join_has_its_own_limit():
    e = Engine()
    t = train(e, 9)
    e.feed(log_burst(t))
    assert e.feed(cpu_spike(t + 901)).action == "new"


def test_stats_survive_persistence():
    e = Engine()
    t = train(e, 9)
    restored = Correlator(
        stats=CooccurrenceStats.from_dict(json.loads(json.dumps(e.c.stats.to_dict())))
    )
    e2 = Engine(restored)
    e2.feed(log_burst(t))
    assert e2.feed(cpu_spike(t + 540)).action == "join"


def test_dedup_does_not_count_as_a_new_occurrence():
    e = Engine()
    e.feed(log_burst(T))
    for i in range(5):
        e.feed(cpu_spike(T + 40 + i))
    kinds = ("logs.frequency.burst:17", "metrics.detector.metric_anomaly:cpu")
    assert e.c.stats.support(*kinds) == (1, 1)
    assert e.c.stats.support(*reversed(kinds)) == (1, 1)


# -- resolved incidents do not reopen -------------------------------------------------------------


def test_resolved_incident_does_not_take_new_alerts():
    e = Engine()
    d1 = e.feed(am("A", T, service="api", host="web1"))
    e.resolve_all(T + 60)
    d2 = e.feed(am("B", T + 120, service="api", host="web1"))
    assert d2.action == "new" and d2.incident_id != d1.incident_id
    assert e.incidents[d1.incident_id].status is IncidentStatus.RESOLVED
    assert len(e.incidents[d1.incident_id].alerts) == 1
    with pytest.raises(LifecycleError, match="resolved"):
        add_alert(e.incidents[d1.incident_id], am("C", T, host="x"), now=T, reason="")


def test_refire_after_resolution_opens_a_new_incident():
    e = Engine()
    a = am("DiskFull", T, host="db1")
    d1 = e.feed(a)
    e.feed(a.with_changes(ends_at=T + 100))
    e.resolve_all(T + 500)
    d2 = e.feed(a.with_changes(starts_at=T + 1000), now=T + 1000)
    assert d2.action == "new" and d2.incident_id != d1.incident_id
    assert d2.reason.endswith(f"re-fired after incident {d1.incident_id} was resolved")


def test_stale_resend_of_a_resolved_episode_is_ignored():
    e = Engine()
    a = am("DiskFull", T, host="db1")
    e.feed(a)
    e.feed(a.with_changes(ends_at=T + 100))
    e.resolve_all(T + 500)
    d = e.feed(a, now=T + 600)  # the old firing notification arrives late
    assert d.action == "ignore" and d.incident is None and "stale" in d.reason
    assert len(e.incidents) == 1


def test_stale_resend_in_an_open_incident_keeps_the_resolved_state():
    e = Engine()
    a = am("DiskFull", T, host="db1")
    e.feed(a)
    e.feed(a.with_changes(ends_at=T + 100))
    inc = e.feed(a, now=T + 200).incident
    assert inc.alerts[a.fingerprint].alert.status == "resolved"


def test_late_resolve_is_recorded_in_the_resolved_incident():
    e = Engine()
    a = am("DiskFull", T, host="db1")
    d1 = e.feed(a)
    e.resolve_all(T + 50)
    d2 = e.feed(a.with_changes(ends_at=T + 100), now=T + 100)
    assert d2.action == "dedup" and d2.incident_id == d1.incident_id
    assert d2.incident.status is IncidentStatus.RESOLVED
    assert d2.incident.alerts[a.fingerprint].alert.ends_at == T + 100


def test_resolved_alert_without_incident_is_ignored():
    d = Correlator().correlate(am("A", T, ends_at=T + 1), [], now=T + 1)
    assert d.action == "ignore" and d.incident_id is None


# -- lifecycle ------------------------------------------------------------------------------------


def test_lifecycle_transitions():
    inc = Engine().feed(am("A", T, host="h")).incident
    acked = acknowledge(inc, T + 10, "ana")
    assert acked.status is IncidentStatus.ACKNOWLEDGED and acked.acknowledged_by == "ana"
    assert acknowledge(acked, T + 20, "bo") is acked
    back = unacknowledge(acked, T + 30)
    assert back.status is IncidentStatus.OPEN and back.acknowledged_at is None
    done = resolve(acked, T + 40, "ana", "fixed")
    assert done.status is IncidentStatus.RESOLVED and done.resolution == "fixed"
    assert resolve(done, T + 50) is done
    for fn in (acknowledge, unacknowledge):
        with pytest.raises(LifecycleError):
            fn(done, T + 60)


def test_acknowledged_incident_still_takes_alerts():
    e = Engine()
    d1 = e.feed(am("A", T, service="api"))
    e.incidents[d1.incident_id] = acknowledge(d1.incident, T + 1, "ana")
    d2 = e.feed(am("B", T + 5, service="api"))
    assert d2.action == "join"
    assert d2.incident.status is IncidentStatus.ACKNOWLEDGED


def test_expire_stale_resolves_quiet_opsloop_alerts_only():
    e = Engine()
    e.feed(cpu_spike(T))
    e.feed(am("Ext", T + 10, host="db1"))
    inc = next(iter(e.incidents.values()))
    assert expire_stale(inc, T + 100, 300) is inc
    aged = expire_stale(inc, T + 400, 300)
    states = {en.alert.name: en.alert.ends_at for en in aged.alerts.values()}
    assert states == {"metrics.detector.metric_anomaly": T + 300, "Ext": None}


def test_title_severity_and_cause():
    e = Engine()
    e.feed(am("SlowQueries", T, Severity.WARNING, service="pg", host="db1"))
    e.feed(am("ReplicaLag", T + 10, Severity.ERROR, service="pg", host="db1"))
    inc = e.feed(am("Down", T + 20, Severity.CRITICAL, service="pg", host="db1")).incident
    assert inc.severity is Severity.CRITICAL
    assert inc.title == "Down on service=pg, host=db1 (+2 more)"
    assert inc.likely_cause.name == "SlowQueries"
    resolved_crit = add_alert(
        inc, am("Down", T + 20, Severity.CRITICAL, ends_at=T + 30, service="pg", host="db1"),
        now=T + 30, reason="",
    )  # fmt: skip
    assert resolved_crit.severity is Severity.CRITICAL  # severity does not drop


def test_incident_round_trips_through_json():
    e = Engine()
    e.feed(log_burst(T))
    inc = e.feed(cpu_spike(T + 40)).incident
    inc = acknowledge(inc, T + 50, "ana")
    back = IncidentView.from_dict(json.loads(json.dumps(inc.to_dict())))
    assert back == inc


# -- merge and split ------------------------------------------------------------------------------


def two_incidents():
    e = Engine()
    a = e.feed(am("A", T, service="api", host="web1")).incident
    b = e.feed(am("B", T + 30, service="db", host="db1")).incident
    return a, b


def test_merge_combines_alerts_and_marks_the_other_as_merged():
    a, b = two_incidents()
    b = acknowledge(b, T + 40, "bo")
    merged, absorbed = merge(a, b, now=T + 100)
    assert merged.id == a.id and merged.fingerprints == a.fingerprints | b.fingerprints
    assert merged.status is IncidentStatus.OPEN
    assert merged.links[-1].reason == f"merged incident {b.id}"
    assert absorbed.status is IncidentStatus.RESOLVED and absorbed.merged_into == a.id
    assert absorbed.resolution == f"merged into {a.id}"
    assert (merged.first_signal, merged.last_signal) == (T, T + 30)


def test_merged_incidents_are_skipped_by_the_correlator():
    a, b = two_incidents()
    merged, absorbed = merge(a, b, now=T + 100)
    alert_b = b.headline_alert
    d = Correlator().correlate(alert_b, [absorbed, merged], now=T + 200)
    assert d.action == "dedup" and d.incident_id == a.id


def test_merge_of_a_shared_alert_keeps_the_latest_state():
    a, b = two_incidents()
    shared = am("S", T, host="z")
    a = add_alert(a, shared, now=T, reason="x")
    b = add_alert(b, shared.with_changes(ends_at=T + 50), now=T + 50, reason="y")
    b = add_alert(b, shared.with_changes(starts_at=T + 60, ends_at=None), now=T + 60, reason="")
    merged, _ = merge(a, b, now=T + 100)
    entry = merged.alerts[shared.fingerprint]
    assert entry.count == 3 and entry.last_seen == T + 60 and entry.alert.firing


def test_merge_errors():
    a, b = two_incidents()
    with pytest.raises(LifecycleError, match="itself"):
        merge(a, a, now=T)
    with pytest.raises(LifecycleError, match="resolved"):
        merge(a, resolve(b, T), now=T)


def test_both_acknowledged_stay_acknowledged():
    a, b = two_incidents()
    merged, _ = merge(acknowledge(a, T, "x"), acknowledge(b, T, "y"), now=T + 1)
    assert merged.status is IncidentStatus.ACKNOWLEDGED


def test_split_moves_alerts_into_a_new_incident():
    e = Engine()
    e.feed(log_burst(T))
    inc = e.feed(cpu_spike(T + 40)).incident
    cpu = cpu_spike(T + 40).fingerprint
    rest, moved = split(inc, [cpu], new_id="inc-new", now=T + 100)
    assert moved.id == "inc-new" and moved.fingerprints == {cpu}
    assert cpu not in rest.alerts and len(rest.alerts) == 1
    assert moved.reasons(cpu)[-1] == f"split from incident {inc.id}"
    assert rest.links[-1].reason == "split off 1 alert(s) into incident inc-new"
    assert moved.status is IncidentStatus.OPEN and moved.group_key == f"split:{inc.id}"


def test_split_errors():
    e = Engine()
    e.feed(log_burst(T))
    inc = e.feed(cpu_spike(T + 40)).incident
    with pytest.raises(LifecycleError, match="nothing"):
        split(inc, [], new_id="n", now=T)
    with pytest.raises(LifecycleError, match="not in incident"):
        split(inc, ["nope"], new_id="n", now=T)
    with pytest.raises(LifecycleError, match="at least one"):
        split(inc, inc.fingerprints, new_id="n", now=T)
    with pytest.raises(LifecycleError, match="resolved"):
        split(resolve(inc, T), [cpu_spike(T).fingerprint], new_id="n", now=T)


def test_new_incident_default_id_is_deterministic():
    a = am("A", T, host="h")
    d = Correlator().correlate(a, [], now=T)
    assert d.incident_id == f"inc-{a.fingerprint}-{int(T)}"
    assert d.incident == new_incident(
        d.incident_id, a, group_key="service=,host=h", now=T, reason=d.reason
    )


# -- co-occurrence statistics ---------------------------------------------------------------------


def test_stats_are_bounded():
    st = CooccurrenceStats(window_s=10, history=3, max_kinds=2, max_hosts=1, max_recent=2)
    for i in range(5):
        st.observe("h", "a", 100.0 * i)
        st.observe("h", "b", 100.0 * i + 1)
    assert st.support("a", "b") == (3, 3)
    st.observe("h", "c", 1000.0)  # a third kind evicts the least recently seen ("a")
    assert st.support("a", "b") == (0, 0)
    assert st.support("b", "a")[1] == 3
    st.observe("other", "b", 2000.0)  # a second host evicts "h"
    assert list(st.to_dict()["recent"]) == ["other"]


def test_stats_window_is_symmetric_and_same_kind_is_not_a_pair():
    st = CooccurrenceStats(window_s=60)
    st.observe("h", "a", 100.0)
    st.observe("h", "a", 110.0)
    st.observe("h", "b", 40.0)  # arrives late but happened 60 s before
    assert st.support("a", "a") == (0, 2)
    assert st.support("a", "b") == (1, 2)
    assert st.support("b", "a") == (1, 1)
    assert st.best(["a"], ["b", "a"]) == ("b", "a", 1, 1)


def test_stats_reject_bad_bounds():
    with pytest.raises(ValueError):
        CooccurrenceStats(window_s=0)
