"""Alertmanager-style group_wait / group_interval / repeat_interval as a pure planner."""

from __future__ import annotations

import dataclasses
import doctest

import pytest

from opsloop.act.incidents import grouping as grouping_mod
from opsloop.act.incidents.grouping import GroupState, NotificationPlanner

P = NotificationPlanner(group_wait=30, group_interval=300, repeat_interval=3600)


def test_doctests():
    result = doctest.testmod(grouping_mod)
    assert result.attempted > 0
    assert result.failed == 0


def test_group_wait_batches_alerts_arriving_together():
    st = P.new_group("inc-1", now=0.0)
    st, n = P.plan(st, {"a"}, set(), 0.0)
    assert n is None
    st, n = P.plan(st, {"a", "b"}, set(), 29.9)
    assert n is None and st.next_flush_at == 30.0
    st, n = P.plan(st, {"a", "b", "c"}, set(), 30.0)
    assert n is not None and n.reason == "initial"
    assert n.firing == ("a", "b", "c") and n.resolved == () and n.group_key == "inc-1"
    assert st.last_notified_at == 30.0 and st.next_flush_at == 330.0


def test_old_alerts_flush_at_once():
    st = P.new_group("g", now=1000.0, oldest_start=900.0)
    assert st.next_flush_at == 1000.0
    _, n = P.plan(st, {"a"}, set(), 1000.0)
    assert n is not None and n.reason == "initial"
    assert P.new_group("g", now=1000.0, oldest_start=990.0).next_flush_at == 1030.0


def first(firing=("a",)):
    st, n = P.plan(P.new_group("g", 0.0), set(firing), set(), 30.0)
    assert n is not None
    return st


def test_new_firing_alert_waits_for_the_group_interval():
    st = first()
    st, n = P.plan(st, {"a", "b"}, set(), 100.0)
    assert n is None  # batched until the next flush
    st, n = P.plan(st, {"a", "b"}, set(), 330.0)
    assert n is not None and n.reason == "new_firing" and n.firing == ("a", "b")
    assert st.next_flush_at == 630.0


def test_nothing_changed_means_no_notification_until_repeat_interval():
    st = first()
    for t in (330.0, 630.0, 930.0, 3300.0):
        st, n = P.plan(st, {"a"}, set(), t)
        assert n is None, t
    st, n = P.plan(st, {"a"}, set(), 3630.0)
    assert n is not None and n.reason == "repeat" and n.firing == ("a",)
    st, n = P.plan(st, {"a"}, set(), 3930.0)
    assert n is None


def test_partial_resolve_is_sent_with_send_resolved():
    st = first(("a", "b"))
    st, n = P.plan(st, {"a"}, {"b"}, 330.0)
    assert n is not None and n.reason == "resolved"
    assert n.firing == ("a",) and n.resolved == ("b",)
    st, n = P.plan(st, {"a"}, {"b"}, 630.0)
    assert n is None  # already reported


def test_partial_resolve_is_silent_without_send_resolved():
    p = dataclasses.replace(P, send_resolved=False)
    st, _ = p.plan(p.new_group("g", 0.0), {"a", "b"}, set(), 30.0)
    st, n = p.plan(st, {"a"}, {"b"}, 330.0)
    assert n is None


def test_all_resolved_notifies_and_closes():
    st = first(("a", "b"))
    st, n = P.plan(st, set(), {"a", "b"}, 330.0)
    assert n is not None and n.reason == "all_resolved"
    assert n.firing == () and n.resolved == ("a", "b")
    assert st.closed
    assert P.plan(st, {"c"}, set(), 10_000.0) == (st, None)  # a closed group stays closed


def test_all_resolved_without_send_resolved_closes_quietly():
    p = dataclasses.replace(P, send_resolved=False)
    st, _ = p.plan(p.new_group("g", 0.0), {"a"}, set(), 30.0)
    st, n = p.plan(st, set(), {"a"}, 330.0)
    assert n is None and st.closed and st.notified_firing == frozenset()


def test_fired_and_resolved_before_the_first_flush_sends_nothing():
    st = P.new_group("g", 0.0)
    st, n = P.plan(st, set(), {"a"}, 30.0)
    assert n is None and st.closed and st.last_notified_at is None


def test_a_resolved_alert_that_fires_again_is_new_firing():
    st = first(("a", "b"))
    st, _ = P.plan(st, {"a"}, {"b"}, 330.0)
    st, n = P.plan(st, {"a", "b"}, set(), 630.0)
    assert n is not None and n.reason == "new_firing"


def test_an_alert_in_both_sets_counts_as_firing():
    st = first()
    st, n = P.plan(st, {"a"}, {"a"}, 330.0)
    assert n is None


def test_late_call_flushes_once():
    st = first()
    st, n = P.plan(st, {"a", "b"}, set(), 5000.0)
    assert n is not None and n.reason == "new_firing"
    assert st.next_flush_at == 5300.0


@pytest.mark.parametrize("now", [0.0, 29.0])
def test_before_the_first_flush_state_is_unchanged(now):
    st = P.new_group("g", 0.0)
    assert P.plan(st, {"a"}, set(), now) == (st, None)


def test_state_is_plain_data():
    st = first()
    d = dataclasses.asdict(st)
    assert GroupState(**d) == st
