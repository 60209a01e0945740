"""Exhaustion warnings: once a day per series, again sooner only when exhaustion came much
closer than the last warning foresaw (a disk suddenly filling after a slow-growth warning) or
became surer (severity info -> warning -> error)."""

from __future__ import annotations

import itertools
import time

from opsloop.services.metric_ingest import MetricIngest
from opsloop.store.telemetry import TelemetryStore
from opsloop.store.telemetry.metrics import MetricSample


def _warnings(result) -> list:
    return [a for a in result.anomalies if a.kind == "exhaustion_forecast"]


def test_a_sudden_fill_warns_again_within_the_day(tmp_path):
    store = TelemetryStore(tmp_path / "t.duckdb")
    ingest = MetricIngest(
        store, tmp_path / "state.json", capacity=[("^disk$", 95.0)], horizon_s=7 * 86400
    )
    t0 = time.time() - 6 * 3600
    warnings = []
    value = 60.0
    for i in range(240):  # 4 h at one sample a minute, growing 0.5 %/h: full in ~70 h
        value += 0.5 / 60
        warnings += _warnings(ingest.ingest([MetricSample("disk", value, t0 + 60 * i)]))
    assert len(warnings) == 1
    first_eta = warnings[0].details["eta_s"]
    for i in range(240, 300):  # 1 h of slow growth more: no repeat
        value += 0.5 / 60
        warnings += _warnings(ingest.ingest([MetricSample("disk", value, t0 + 60 * i)]))
    assert len(warnings) == 1
    for i in range(300, 360):  # then an hour growing 20 %/h
        value += 20 / 60
        warnings += _warnings(ingest.ingest([MetricSample("disk", value, t0 + 60 * i)]))
    assert len(warnings) >= 2  # each halving of the foreseen time left warns again
    ranks = ["info", "warning", "error"]
    for before, after in itertools.pairwise(warnings):
        # (or a rise in severity: the interval's late end came within the horizon / its
        # first quarter)
        foreseen = before.details["eta_s"] - (after.time - before.time)
        surer = ranks.index(after.details["severity"]) > ranks.index(before.details["severity"])
        assert after.details["eta_s"] < 0.5 * foreseen or surer
        # never a storm: a repeat waits a tenth of the time left (at most 30 minutes)
        assert after.time - before.time >= min(1800.0, 0.1 * after.details["eta_s"])
    assert warnings[1].details["eta_s"] < 0.6 * first_eta  # the fill, within 30 minutes
    ingest.snapshot()
    again = MetricIngest(store, tmp_path / "state.json", capacity=[("^disk$", 95.0)])
    assert again._warned_eta == ingest._warned_eta
    store.close()


def test_a_fast_fill_soon_after_a_slow_growth_warning_warns_before_it_is_full(tmp_path):
    # (the demo's disk: a "full in days" warning, ten minutes later the disk fills in 15
    # minutes; the repeat must not wait 30 minutes, by then the disk is full)
    store = TelemetryStore(tmp_path / "t.duckdb")
    ingest = MetricIngest(store, tmp_path / "state.json", capacity=[("^disk$", 95.0)])
    t0 = time.time() - 6 * 3600
    value, first, fill_from, warnings = 60.0, None, 0.0, []
    for i in range(6 * 360):  # 10-second samples
        t = t0 + 10 * i
        if first is None or t < first + 600:
            value += 0.5 / 360  # 0.5 %/h
            fill_from = value
        elif t < first + 600 + 900:
            value += (98.5 - fill_from) / 90  # to 98.5 % in 15 minutes
        else:
            break
        warnings += [
            (t, value, a) for a in _warnings(ingest.ingest([MetricSample("disk", value, t)]))
        ]
        if warnings and first is None:
            first = warnings[0][0]
    assert first is not None and warnings[0][2].details["eta_s"] > 86400
    fill = [(t, v, a) for t, v, a in warnings if t >= first + 600]
    assert fill, "no warning while the disk filled"
    t, v, a = fill[0]
    assert v < 80.0 and a.details["eta_s"] < 3 * 3600
    assert a.details["severity"] == "error"
    assert a.details["eta_source"] == "recent" and "pace of the last hour" in a.evidence[0]
    assert warnings[0][2].details["eta_source"] == "trend"
    assert len(fill) <= 6  # each needs the time left halved: a handful, not a storm
    store.close()


def test_no_warning_while_the_trend_is_not_significant(tmp_path):
    # Noise around 60 % with a faint drift: a point forecast may cross 95 % within the week,
    # but its interval reaches "never"; no early warning until the trend is clear.
    import random

    rng = random.Random(4)
    store = TelemetryStore(tmp_path / "t.duckdb")
    ingest = MetricIngest(
        store, tmp_path / "state.json", capacity=[("^mem$", 95.0)], horizon_s=7 * 86400
    )
    # A fixed phase, not the clock's: the forecaster's daily profile makes the outcome depend
    # on where the series starts within its 30-minute bins. Of 185 start phases spread over
    # a day (7.8 minutes apart), 23 give one "info" warning near the end of the quiet part
    # with the per-time profile rate (decision 0110; slope 0.75 +- 0.45 %/h, just
    # significant); the per-point rate gave none. A known weakness, recorded in 0110.
    t0 = (time.time() - 12 * 3600) // 86400 * 86400  # a UTC midnight 12-36 hours ago
    quiet = []
    for i in range(240):  # 4 h: +0.5 %/h under noise of sd 8
        value = 60.0 + 0.5 * i / 60 + rng.gauss(0.0, 8.0)
        quiet += _warnings(ingest.ingest([MetricSample("mem", value, t0 + 60 * i)]))
    [forecaster] = ingest.forecasters.values()
    eta = forecaster.time_to_threshold(95.0, now=t0 + 60 * 239)
    assert eta.seconds < 7 * 86400 and eta.high == float("inf")  # what used to warn
    assert quiet == []
    loud = []
    for i in range(240, 480):  # then 4 h growing 5 %/h: a clear trend
        value = 61.0 + 5.0 * (i - 240) / 60 + rng.gauss(0.0, 1.0)
        loud += _warnings(ingest.ingest([MetricSample("mem", value, t0 + 60 * i)]))
    assert len(loud) >= 1 and loud[0].details["eta_high_s"] < float("inf")
    store.close()


def test_a_forecast_whose_interval_reaches_past_the_horizon_is_info_only(tmp_path):
    # 40 minutes of a noisy climb (the demo's young series): the point ETA falls within the
    # week, but its 90 % interval runs far past it; that is shown, not paged
    import doctest
    import random

    from opsloop.act.incidents.alert import anomaly_severity
    from opsloop.services import metric_ingest

    assert doctest.testmod(metric_ingest).failed == 0
    rng = random.Random(7)
    store = TelemetryStore(tmp_path / "t.duckdb")
    ingest = MetricIngest(
        store, tmp_path / "state.json", capacity=[("^disk$", 95.0)], horizon_s=7 * 86400
    )
    t0 = time.time() - 3600
    warnings = []
    for i in range(160):  # 15 s samples, +1 %/h under noise of sd 0.3
        value = 50.0 + i * 15 / 3600 + rng.gauss(0, 0.3)
        warnings += _warnings(ingest.ingest([MetricSample("disk", value, t0 + 15 * i)]))
    assert warnings
    first = warnings[0]
    assert first.details["eta_s"] <= 7 * 86400 < first.details["eta_high_s"]
    assert first.details["severity"] == "info"
    assert anomaly_severity(first).value == "info"
    store.close()


def test_a_falling_resource_warns_before_it_runs_out(tmp_path):
    # free space falling 2 GB an hour from 100 GB: under 10 GB in ~45 h; a rule with
    # direction "down" (the configuration's capacity rules carry it)
    from opsloop.config import CapacityRule

    rule = CapacityRule(match="^free_gb$", threshold=10.0, direction="down")
    store = TelemetryStore(tmp_path / "t.duckdb")
    ingest = MetricIngest(
        store, tmp_path / "state.json", capacity=[(rule.match, rule.threshold, rule.direction)]
    )
    t0 = time.time() - 4 * 3600
    warnings = []
    for i in range(240):  # 4 h at one a minute
        value = 100.0 - 2.0 * i / 60
        warnings += _warnings(ingest.ingest([MetricSample("free_gb", value, t0 + 60 * i)]))
    assert warnings
    w = warnings[-1]
    assert w.details["falling"] is True
    assert "free_gb is forecast to fall to 10 in" in w.evidence[0]
    assert 40 * 3600 < w.details["eta_s"] < 46 * 3600
    assert ingest.capacity_rule("free_gb") == (10.0, True)
    ingest.snapshot()
    again = MetricIngest(store, tmp_path / "state.json", capacity=[("^free_gb$", 10.0, "down")])
    assert next(iter(again.forecasters.values())).falling
    store.close()
