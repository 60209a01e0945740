"""Sample validation before storage: every rejection reason, limits, order and normalisation."""

from __future__ import annotations

import math

import pytest

from opsloop.observe.sample_check import Rejection, SampleLimits, check_sample, check_samples
from opsloop.store.telemetry.metrics import MetricSample

NOW = 1_700_000_000.0


def s(name="m", value=1.0, ts=NOW, labels=None):
    return MetricSample(name, value, ts, labels or {})


def reason(sample, **kw):
    return check_sample(sample, now=NOW, **kw)


def test_good_samples_pass_in_order_and_ints_become_floats():
    good = [s("a"), s("b:c_d", 2, NOW - 60, {"x": "1", "_y": ""}), s("_z", -3.5, NOW + 599)]
    ok, bad = check_samples(good, now=NOW)
    assert bad == []
    assert [x.name for x in ok] == ["a", "b:c_d", "_z"]
    assert type(ok[1].value) is float and ok[1].value == 2.0
    assert ok[0] is good[0]  # untouched samples are passed through as they are


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (math.nan, "value is NaN"),
        (math.inf, "value is +Inf"),
        (-math.inf, "value is -Inf"),
        ("1.0", "value is not a number (str)"),
        (None, "value is not a number (NoneType)"),
        (True, "value is not a number (bool)"),
    ],
)
def test_bad_values(value, expected):
    assert reason(s(value=value)) == expected


def test_timestamps():
    assert "in the future" in reason(s(ts=NOW + 601))
    assert reason(s(ts=NOW + 300)) is None
    assert "in the future" in reason(s(ts=NOW + 301), limits=SampleLimits(max_future_s=300))
    assert "retention horizon" in reason(s(ts=NOW - 31 * 86400))
    assert reason(s(ts=NOW - 29 * 86400)) is None
    assert reason(s(ts=0.0), limits=SampleLimits(retention_s=None)) is None
    assert reason(s(ts=math.nan)) == "timestamp is NaN"
    assert reason(s(ts="now")) == "timestamp is not a number (str)"


@pytest.mark.parametrize("name", ["", "1abc", "a-b", "a b", "é", "a.b"])
def test_bad_metric_names(name):
    assert reason(s(name=name)).startswith("invalid metric name")


def test_long_metric_name():
    assert "longer than" in reason(s(name="a" * 256))
    assert reason(s(name="a" * 255)) is None


def test_labels():
    assert reason(s(labels={"1x": "v"})) == "invalid label name '1x'"
    assert reason(s(labels={"a-b": "v"})) == "invalid label name 'a-b'"
    assert reason(s(labels={"ok": "v", "__name__": "m"})).startswith("label name '__name__'")
    assert "reserved" in reason(s(labels={"__meta": "x"}))
    assert reason(s(labels={"k": 5})) == "label 'k' value is not a string (int)"
    many = {f"l{i}": "v" for i in range(33)}
    assert reason(s(labels=many)) == "too many labels: 33 (limit 32)"
    assert reason(s(labels=dict(list(many.items())[:32]))) is None
    assert reason(s(labels={"k": "x" * 2049})).startswith("label 'k' value too long: 2049")
    assert (
        reason(s(labels={"k": "x" * 2049}), limits=SampleLimits(max_label_value_len=4096)) is None
    )
    assert "too many labels" in reason(
        s(labels={"a": "1", "b": "2"}), limits=SampleLimits(max_labels=1)
    )


def test_mixed_batch_returns_rejections_with_reprs():
    batch = [
        s("ok"),
        s("bad name"),
        "not a sample",
        s("nan", math.nan, labels={"h": "x"}),
        s("ok2"),
    ]
    ok, bad = check_samples(batch, now=NOW)
    assert [x.name for x in ok] == ["ok", "ok2"]
    assert [r.reason for r in bad] == [
        "invalid metric name 'bad name'",
        "not a MetricSample (str)",
        "value is NaN",
    ]
    assert all(isinstance(r, Rejection) for r in bad)
    assert bad[2].sample_repr == f"nan{{h='x'}} nan @{NOW!r}"
    assert bad[1].sample_repr == "'not a sample'"


def test_repr_is_capped():
    _, bad = check_samples([s(value=math.nan, labels={"k": "v" * 1000})], now=NOW)
    assert len(bad[0].sample_repr) == 200 and bad[0].sample_repr.endswith("…")


def test_default_now_is_current_time():
    import time

    ok, bad = check_samples([MetricSample("m", 1.0, time.time())])
    assert len(ok) == 1 and bad == []
    _, bad = check_samples([MetricSample("m", 1.0, time.time() + 3600)])
    assert "future" in bad[0].reason
