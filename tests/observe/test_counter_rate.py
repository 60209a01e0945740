"""Counter → rate conversion: rates, resets, out-of-order samples, gaps, LRU memory cap."""

from __future__ import annotations

import math

import pytest

from opsloop.observe.counter_rate import CounterRate, rate_name, series_key
from opsloop.store.telemetry.metrics import MetricSample


def c(value, ts, name="reqs_total", **labels):
    return MetricSample(name, value, ts, labels)


def test_rate_and_naming():
    cr = CounterRate()
    assert cr.update(c(10, 100.0)) is None  # first sample: nothing to compare with
    r = cr.update(c(40, 110.0, code="200"))
    assert r is None  # another series (labels differ)
    r = cr.update(c(25, 105.0))
    assert r == MetricSample("reqs_per_s", 3.0, 105.0, {})
    assert rate_name("bytes") == "bytes_per_s"
    assert rate_name("a_total_total") == "a_total_per_s"
    assert rate_name("_total") == "_total_per_s"


def test_label_order_does_not_matter():
    cr = CounterRate()
    cr.update(MetricSample("x", 0, 0.0, {"a": "1", "b": "2"}))
    r = cr.update(MetricSample("x", 5, 1.0, {"b": "2", "a": "1"}))
    assert r.value == 5.0 and r.labels == {"b": "2", "a": "1"}
    assert series_key("x", {"a": "1", "b": "2"}) == series_key("x", {"b": "2", "a": "1"})


def test_reset_counts_from_zero():
    cr = CounterRate()
    rates = cr.update_many([c(100, 0.0), c(160, 10.0), c(30, 20.0), c(50, 30.0)])
    assert [r.value for r in rates] == [6.0, 3.0, 2.0]  # the reset gives 30/10, not (30-160)/10
    assert cr.resets == 1
    assert all(r.value >= 0 for r in rates)


def test_reset_to_zero_and_flat_counter():
    cr = CounterRate()
    assert [r.value for r in cr.update_many([c(5, 0.0), c(0, 1.0), c(0, 2.0)])] == [0.0, 0.0]


def test_out_of_order_duplicates_and_nonfinite_are_ignored():
    cr = CounterRate()
    cr.update(c(10, 10.0))
    assert cr.update(c(20, 10.0)) is None  # same timestamp
    assert cr.update(c(5, 5.0)) is None  # older: ignored, not a reset
    assert cr.update(c(math.nan, 15.0)) is None
    assert cr.update(c(math.inf, 15.0)) is None
    assert cr.resets == 0
    r = cr.update(c(30, 20.0))
    assert r.value == 2.0  # still measured from (10, 10.0)


def test_max_gap_restarts_series():
    cr = CounterRate(max_gap_s=60)
    cr.update(c(0, 0.0))
    assert cr.update(c(100, 120.0)) is None
    assert cr.update(c(130, 150.0)).value == 1.0


def test_lru_cap_evicts_least_recently_updated():
    cr = CounterRate(max_series=2)
    cr.update(c(0, 0.0, name="a"))
    cr.update(c(0, 0.0, name="b"))
    cr.update(c(1, 1.0, name="a"))  # a is now the most recent
    cr.update(c(0, 0.0, name="c"))  # evicts b
    assert len(cr) == 2 and cr.evicted == 1
    assert cr.update(c(2, 2.0, name="a")).value == 1.0
    assert cr.update(c(5, 1.0, name="b")) is None  # b was forgotten: starts over
    assert len(cr) == 2


def test_forget_clear_and_validation():
    cr = CounterRate()
    cr.update(c(1, 1.0))
    assert cr.forget("reqs_total", {}) and not cr.forget("reqs_total", {})
    cr.update(c(1, 1.0))
    cr.clear()
    assert len(cr) == 0
    with pytest.raises(ValueError):
        CounterRate(max_series=0)
    with pytest.raises(ValueError):
        CounterRate(max_gap_s=0)


def test_many_series_stay_bounded():
    cr = CounterRate(max_series=100)
    for i in range(1000):
        cr.update(c(i, float(i), shard=str(i)))
    assert len(cr) == 100 and cr.evicted == 900
