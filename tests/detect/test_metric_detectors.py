"""Streaming metric detectors: synthetic data only."""

from __future__ import annotations

import doctest
import json
import math
import random

import numpy as np
import pytest

from opsloop.detect.metrics import (
    DefaultMetricDetector,
    EdgeAlarm,
    P2Quantile,
    RobustEWM,
    SeasonalModel,
    ShapeNovelty,
    TailCalibrator,
    alarm,
    calibrate,
    default,
    ewm,
    moves,
    quantile,
    seasonal,
    shape,
)

STEP = 300.0


def _series(n: int, seed: int = 0, season: float = 0.0):
    rng = random.Random(seed)
    for i in range(n):
        t = i * STEP
        yield t, 50.0 + season * math.sin(2 * math.pi * t / 86400.0) + rng.gauss(0, 1.0)


def _run(det: DefaultMetricDetector, points) -> list[float]:
    return [det.update(t, x) for t, x in points]


@pytest.mark.parametrize(
    "module", [alarm, calibrate, default, ewm, moves, quantile, seasonal, shape]
)
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.failed == 0 and result.attempted > 0


def test_spike_is_flagged_and_steady_series_is_quiet():
    det = DefaultMetricDetector()
    scores = _run(det, _series(3000))
    assert sum(s >= 0.999 for s in scores[500:]) <= 3  # p < 1e-3: a handful by chance at most
    spike = det.score_one(3000 * STEP, 50.0 + 15.0)
    assert spike > 0.99999
    assert spike > max(scores[500:])


def test_steady_series_raises_no_alarm():
    det = DefaultMetricDetector()
    alarms = 0
    for t, x in _series(4000, seed=3):
        det.update(t, x)
        alarms += det.last_alarm
    assert alarms <= 1


def test_alarms_are_edge_triggered():
    det = DefaultMetricDetector()
    pts = list(_series(2000, seed=1))
    _run(det, pts)
    fired = 0
    high = 0
    for i in range(50):  # a lasting level shift: one alarm, not fifty
        s = det.update((2000 + i) * STEP, 90.0)
        fired += det.last_alarm
        high += s >= 0.999
    assert fired == 1
    assert high == 1


def test_nan_and_inf_do_not_poison_state():
    a, b = DefaultMetricDetector(), DefaultMetricDetector()
    pts = list(_series(1500, seed=2))
    for i, (t, x) in enumerate(pts):
        a.update(t, x)
        b.update(t, x)
        if i % 100 == 0:
            assert b.update(t, float("nan")) == 0.0
            b.update(t, float("inf"))
            b.update(float("nan"), 1.0)
    assert a.to_dict() == b.to_dict()
    assert math.isfinite(b.score_one(1500 * STEP, 50.0))


def test_daily_seasonality_is_learned():
    det = DefaultMetricDetector()
    _run(det, _series(288 * 6, season=20.0))
    assert det.active in ("day", "week")
    # the expected daily peak is normal, the same value at the trough is not
    t_peak = 288 * 6 * STEP + 86400.0 / 4 - (288 * 6 * STEP) % 86400.0
    peak = 50.0 + 20.0 * math.sin(2 * math.pi * t_peak / 86400.0)
    assert det.calibrated_score(t_peak, peak) < 0.99
    assert det.calibrated_score(t_peak + 43200.0, peak) > 0.999


@pytest.mark.parametrize("step", [15.0, 300.0])
def test_a_daily_bin_learns_the_same_share_per_day_at_any_sampling_interval(step):
    # a square daily cycle of +-5 for four days, then +-7: after one day of the new cycle
    # the daily profile has moved a fraction of the way (at most 20 %: the level takes part),
    # sampled every 15 s (20 points a 5-minute bin) as every 5 minutes (one point); learning
    # 20 % per point moved it all the way at 15 s (and past it: 1.2)
    rng = random.Random(3)
    det = DefaultMetricDetector()

    def day_of(amp: float, start: float) -> None:
        for i in range(round(86400.0 / step)):
            t = start + i * step
            det.learn_one(t, 50.0 + (amp if (t % 86400.0) < 43200.0 else -amp) + rng.gauss(0, 1))

    def half_gap() -> float:
        s = det.models["day"].profile.s
        half = len(s) // 2  # bins at the edges of each half mix both halves: leave them out
        return (sum(s[2 : half - 2]) - sum(s[half + 2 : -2])) / (2 * (half - 4))

    for d in range(4):
        day_of(5.0, d * 86400.0)
    before = half_gap()
    day_of(7.0, 4 * 86400.0)
    moved = (half_gap() - before) / 2.0
    assert 4.0 < before < 5.5
    assert 0.05 < moved < 0.35


def test_to_dict_round_trip_gives_identical_scores():
    det = DefaultMetricDetector()
    pts = list(_series(2500, seed=4, season=5.0))
    _run(det, pts[:2000])
    clone = DefaultMetricDetector.from_dict(json.loads(json.dumps(det.to_dict())))
    assert _run(det, pts[2000:]) == _run(clone, pts[2000:])


def test_scores_are_in_unit_interval():
    det = DefaultMetricDetector()
    rng = random.Random(5)
    for i in range(3000):
        x = rng.paretovariate(1.5) if i % 97 else 1e6
        s = det.update(i * 60.0, x)
        assert 0.0 <= s <= 1.0


def test_components_round_trip():
    e = RobustEWM()
    q = P2Quantile(0.9)
    c = TailCalibrator()
    m = SeasonalModel(86400.0, bins=24)
    a = EdgeAlarm()
    sh = ShapeNovelty(window=8, memory=100)
    for i in range(500):
        x = math.sin(i / 7.0) + (i % 13) / 13.0
        e.update(x)
        q.update(x)
        c.update(abs(x))
        m.update(i * 3600.0, x)
        a.step(c.pvalue(abs(x)))
        sh.update(x)
    for obj in (e, q, c, m, a, sh):
        assert type(obj).from_dict(json.loads(json.dumps(obj.to_dict()))).to_dict() == obj.to_dict()


def test_tail_calibrator_is_roughly_calibrated():
    rng = random.Random(9)
    c = TailCalibrator()
    for _ in range(20000):
        c.update(abs(rng.gauss(0, 1)))
    # P(|N(0,1)| >= 3) = 0.0027
    assert 0.0005 < c.pvalue(3.0) < 0.01


def test_robust_ewm_ignores_outlier():
    e = RobustEWM()
    for i in range(200):
        e.update(10.0 + (i % 2))
    before = e.level
    e.update(1e9)
    assert abs(e.level - before) < 1.0


def _shape_stream(n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [math.sin(2 * math.pi * i / 48.0) + rng.gauss(0, 0.05) for i in range(n)]


def test_shape_novelty_flags_a_new_shape_not_a_repeated_one():
    s = ShapeNovelty(window=16, memory=500)
    xs = _shape_stream(1000, seed=11)
    scores = []
    for x in xs:
        scores.append(s.score(x))
        s.update(x)
    usual = max(v for v in scores[600:] if math.isfinite(v))
    # a flat stretch where the sine should go on: a shape never seen before
    flat = [s.score(0.0)]
    for _ in range(24):
        s.update(0.0)
        flat.append(s.score(0.0))
    assert max(flat) > 1.5 * usual
    # state stays bounded: the memory never holds more than `memory` windows
    assert len(s.to_dict()["bank"]) == 500


def test_shape_novelty_round_trip_and_warmup():
    s = ShapeNovelty(window=8, memory=64)
    assert math.isnan(s.score(1.0))
    for x in _shape_stream(300, seed=12):
        s.update(x)
    clone = ShapeNovelty.from_dict(json.loads(json.dumps(s.to_dict())))
    for x in _shape_stream(50, seed=13):
        assert clone.score(x) == s.score(x)
        s.update(x)
        clone.update(x)
    with pytest.raises(ValueError):
        ShapeNovelty(window=8, memory=10)


def test_detector_catches_a_shape_change_without_a_level_change():
    det = DefaultMetricDetector()
    rng = random.Random(21)
    fired_before = 0
    for i in range(3000):  # a daily sine at 5-minute sampling
        t = i * STEP
        det.update(t, 50.0 + 10.0 * math.sin(2 * math.pi * t / 86400.0) + rng.gauss(0, 0.3))
        fired_before += det.last_alarm and i >= 1500
    scores = []
    for i in range(3000, 3100):  # the series goes flat at its mean: no spike, no level shift
        scores.append(det.update(i * STEP, 50.0 + rng.gauss(0, 0.3)))
    assert max(scores) > 0.999
    assert fired_before <= 2


def test_alpha_spending_makes_late_alarms_rarer():
    early = DefaultMetricDetector(spend=0.0)
    spent = DefaultMetricDetector(spend=1000.0)
    pts = list(_series(6000, seed=7))
    _run(early, pts)
    _run(spent, pts)
    t, x = 6000 * STEP, 54.0
    assert spent.calibrated_score(t, x) <= early.calibrated_score(t, x)


def _messy_series(n: int, seed: int) -> tuple[list[float], list[float]]:
    """Daily cycle, spikes, a level shift, a flat stretch, NaN/inf values and timestamps."""
    rng = random.Random(seed)
    ts, xs = [], []
    t = 1_400_000_000.0
    for i in range(n):
        t += STEP if rng.random() > 0.05 else STEP * rng.choice([0.5, 3.0, -2.0])
        x = 50.0 + 10.0 * math.sin(2 * math.pi * t / 86400.0) + rng.gauss(0, 1.0)
        x += 30.0 if rng.random() < 0.005 else 0.0
        x += 20.0 if i > n // 2 else 0.0
        if n // 3 < i < n // 3 + 60:
            x = 42.0
        r = rng.random()
        if r < 0.01:
            x = math.nan
        elif r < 0.015:
            x = math.inf
        elif r < 0.02:
            ts.append(math.nan)
            xs.append(x)
            continue
        ts.append(t)
        xs.append(x)
    return ts, xs


def _stream(det: DefaultMetricDetector, ts, xs) -> tuple[list[float], list[bool]]:
    scores, alarms = [], []
    for t, x in zip(ts, xs, strict=True):
        scores.append(det.score_one(t, x))
        det.learn_one(t, x)
        alarms.append(det.last_alarm)
    return scores, alarms


@pytest.mark.parametrize("seed", [1, 2])
def test_score_many_is_bit_identical_to_streaming(seed):
    ts, xs = _messy_series(4000, seed)
    stream = DefaultMetricDetector()
    expected, alarms = _stream(stream, ts, xs)
    assert any(alarms)
    batch = DefaultMetricDetector()
    got = []
    for a, b in [(0, 7), (7, 300), (300, 2500), (2500, 2501), (2501, 4000)]:
        got += batch.score_many(xs[a:b], ts[a:b])
        assert batch.last_alarm == alarms[b - 1]
    assert got == expected  # exact: the same doubles, not approximately
    assert json.dumps(batch.to_dict()) == json.dumps(stream.to_dict())
    # the alarm of every point, from one batch call
    scores, fired, raw = DefaultMetricDetector().score_and_alarm_many(xs, ts)
    finite = [math.isfinite(t) and math.isfinite(x) for t, x in zip(ts, xs, strict=True)]
    assert scores == expected
    assert fired == [a and f for a, f in zip(alarms, finite, strict=True)]
    assert sum(fired) >= 2
    # and the un-gated score of every point, as calibrated_score gives it before learn_one
    again, calibrated = DefaultMetricDetector(), []
    for t, x in zip(ts, xs, strict=True):
        calibrated.append(again.calibrated_score(t, x) if finite[len(calibrated)] else 0.0)
        again.score_one(t, x)
        again.learn_one(t, x)
    assert raw == calibrated
    assert all(r >= s for r, s in zip(raw, scores, strict=True))  # the gate only damps


def test_score_many_mixes_with_streaming_and_snapshots():
    ts, xs = _messy_series(3000, seed=3)
    expected, _ = _stream(DefaultMetricDetector(spend=0.0, refractory=5), ts, xs)
    det = DefaultMetricDetector(spend=0.0, refractory=5)
    got = det.score_many(xs[:1000], ts[:1000])
    det = DefaultMetricDetector.from_dict(json.loads(json.dumps(det.to_dict())))
    got += _stream(det, ts[1000:1010], xs[1000:1010])[0]
    det = DefaultMetricDetector.from_dict(json.loads(json.dumps(det.to_dict())))
    got += det.score_many(xs[1010:], ts[1010:])
    assert got == expected


def test_score_many_edge_cases():
    det = DefaultMetricDetector()
    assert det.score_many([], []) == []
    assert det.score_many([1.0, math.nan], [0.0, 60.0]) == [0.0, 0.0]
    with pytest.raises(ValueError):
        det.score_many([1.0], [])
    # constant timestamps: the sampling interval is never known, every point streams
    flat = DefaultMetricDetector()
    same = DefaultMetricDetector()
    xs = [float(i % 5) for i in range(200)]
    assert flat.score_many(xs, [0.0] * 200) == _stream(same, [0.0] * 200, xs)[0]


@pytest.mark.parametrize(
    ("window", "memory", "level", "chunk", "loop_sums"),
    [(16, 1000, 0.0, 4096, False), (8, 100, 0.5, 37, False), (4, 9, 0.0, 5, True)],
)
def test_shape_score_many_is_bit_identical_to_streaming(
    monkeypatch, window, memory, level, chunk, loop_sums
):
    monkeypatch.setattr(shape, "_CHUNK", chunk)
    if loop_sums:  # the streaming sums of Python versions whose sum() compensates
        monkeypatch.setattr(shape, "_PLAIN_SUM", False)
    xs = [1.0] * 40 + _shape_stream(1500, seed=14)  # a constant start: spread 0, no windows
    xs[700] = math.nan
    xs[900:960] = [0.0] * 60
    a = ShapeNovelty(window, memory, level=level)
    expected = []
    for x in xs:
        expected.append(a.score(x))
        a.update(x)
    b = ShapeNovelty(window, memory, level=level)
    got = b.score_many(xs[:800])
    b = ShapeNovelty.from_dict(json.loads(json.dumps(b.to_dict())))
    got += b.score_many(xs[800:])
    assert len(got) == len(expected)
    assert all(
        g == e or (math.isnan(g) and math.isnan(e)) for g, e in zip(got, expected, strict=True)
    )
    assert b.to_dict() == a.to_dict()


def _counts(n: int, rate: float, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    return [float(v) for v in rng.poisson(rate, n)]


@pytest.mark.parametrize("chunk", [4096, 53])
def test_shape_score_many_is_bit_identical_on_counts(monkeypatch, chunk):
    # integer counts: the quantum (smallest step) is 2 first, then 1 (odd counts come later)
    monkeypatch.setattr(shape, "_CHUNK", chunk)
    xs = [2.0 * v for v in _counts(400, 0.4, 21)] + _counts(1200, 0.4, 22)
    xs[500:540] = [0.0] * 40
    xs[610] = math.inf
    a = ShapeNovelty(16, 300)
    expected = []
    for x in xs:
        expected.append(a.score(x))
        a.update(x)
    b = ShapeNovelty(16, 300)
    got = b.score_many(xs[:450])
    b = ShapeNovelty.from_dict(json.loads(json.dumps(b.to_dict())))
    got += b.score_many(xs[450:])
    assert all(
        g == e or (math.isnan(g) and math.isnan(e)) for g, e in zip(got, expected, strict=True)
    )
    assert b.to_dict() == a.to_dict() and a.quantum == 1.0


def test_a_flat_stretch_is_new_in_a_busy_series_not_in_sparse_counts():
    # a low-count series (mostly zeros, now and then a 1 or 2): windows differ by a count or
    # two, which z-normalising would blow up to whole shapes; the spread is floored at one
    # quantum (one count), so 16 zeros in a row are close to what the series always does
    sparse = ShapeNovelty(16, 1000)
    for x in _counts(1500, 0.3, 23):
        sparse.update(x)
    assert sparse.quantum == 1.0
    for _ in range(15):
        sparse.update(0.0)
    assert sparse.score(0.0) < 0.5
    busy = ShapeNovelty(16, 1000)
    for x in _counts(1500, 40.0, 24):
        busy.update(x)
    for _ in range(15):
        busy.update(0.0)
    assert busy.score(0.0) > 0.9  # a count of 40 a row dropping to nothing is a new shape


def test_shape_snapshot_from_before_the_quantum_loads():
    s = ShapeNovelty(window=8, memory=64)
    for x in _counts(300, 0.5, 25):
        s.update(x)
    d = s.to_dict()
    del d["quantum"]
    old = ShapeNovelty.from_dict(d)
    assert old.quantum == 0.0
    old.update(1.0), old.update(0.0)
    assert old.quantum == 1.0


def test_shape_vectors_are_on_the_grid_and_distances_exact():
    s = ShapeNovelty(window=16, memory=200)
    for x in _shape_stream(600, seed=15):
        s.update(x)
    bank = s.bank[: min(s.count, s.memory)]
    assert (bank * shape.GRID == (bank * shape.GRID).round()).all()
    # every dot product is exact, so the order of summation does not matter
    v = bank[-1]
    by_blas = bank @ v
    by_python = [
        math.fsum(float(a) * float(b) for a, b in zip(row, v, strict=True)) for row in bank
    ]
    assert by_blas.tolist() == by_python


def test_old_shape_snapshot_is_rounded_to_the_grid():
    s = ShapeNovelty(window=8, memory=64)
    for x in _shape_stream(300, seed=16):
        s.update(x)
    d = s.to_dict()
    d["bank"] = [[v + 1e-9 for v in row] for row in d["bank"]]  # as an older version stored
    old = ShapeNovelty.from_dict(d)
    assert old.to_dict()["bank"] == s.to_dict()["bank"]
    assert old.score(0.3) == s.score(0.3)


# -- stale quantiles and escalation ------------------------------------------------------------
def _reset_or_escalation_series(kind: str, n: int, seed: int) -> tuple[list[float], list[float]]:
    """``"wild"``: a square wave for the first 300 points (jumps the models cannot predict
    inflate the calibrators' quantiles, later reset as stale); ``"pairs"``: quiet noise with
    spikes in pairs 30 points apart (inside the refractory period), the second far larger."""
    rng = random.Random(seed)
    ts, xs = [], []
    for i in range(n):
        x = 50.0 + rng.gauss(0, 1.0)
        if kind == "wild" and i < 300:
            x += 30.0 * ((i // 40) % 2)
        if kind == "pairs" and i % 700 == 400:
            x += 6.0
        if kind == "pairs" and i % 700 == 430:
            x += 60.0
        ts.append(1_500_000_000.0 + STEP * i)
        xs.append(x)
    return ts, xs


def test_tail_calibrator_recovers_from_an_inflated_start():
    rng = random.Random(4)
    c = TailCalibrator(q=0.99, lam=0.002)
    for _ in range(150):
        c.update(rng.expovariate(1.0) * 100.0)  # a wild start: 100x the later scale
    assert c.u > 100.0
    # the first reset lands on the largest value since the last exceedance, which may still be
    # a wild one; the second on the quiet ones
    for _ in range(2 * c.stale_after + 50):
        c.update(rng.expovariate(1.0))
    # without resets u would still be above 70 (it falls by ~0.02 % a value)
    assert c.u < 12.0
    assert c.pvalue(15.0) < 0.01  # a 15 is rare again (true tail e^-15)


def test_tail_calibrator_keeps_a_right_quantile():
    rng = random.Random(5)
    c = TailCalibrator(q=0.99, lam=0.002)
    resets = 0
    for _ in range(30000):
        before = c.u
        c.update(rng.expovariate(1.0))
        resets += c.p2_upper is None and c.u < 0.8 * before
    assert resets <= 3  # 0.99^500: a right quantile is reset rarely
    assert 3.5 < c.u < 6.0  # the 99 % quantile is ln 100 = 4.6


def test_tail_calibrator_snapshot_without_stale_fields_loads():
    c = TailCalibrator(q=0.99)
    for i in range(300):
        c.update(float(i % 17))
    d = c.to_dict()
    assert json.loads(json.dumps(d)) == d  # no infinities in the snapshot
    del d["stale"], d["stale_max"]
    old = TailCalibrator.from_dict(d)
    assert old.stale == 0 and old.stale_max == -math.inf
    old.update(3.0)


def test_edge_alarm_escalates_only_for_a_far_stronger_score():
    a = EdgeAlarm(on=0.99, off=0.9, refractory=100, clear=10, escalate=10.0)
    assert a.step(0.992)  # p = 0.008
    assert a.gate(0.995) == 0.5 * 0.995 and not a.step(0.995)  # p 0.005: the same incident
    assert a.passes(0.9993) and a.gate(0.9993) == 0.9993  # p 0.0007: over 10x smaller
    assert a.step(0.9993)
    assert not a.armed and a.since == 0
    assert not a.step(0.9995)  # measured against the new edge now
    off = EdgeAlarm(on=0.99, refractory=100, escalate=0.0)
    assert off.step(0.992) and not off.step(1.0)
    with pytest.raises(ValueError):
        EdgeAlarm(escalate=0.5)
    restored = EdgeAlarm.from_dict(json.loads(json.dumps(a.to_dict())))
    assert restored.to_dict() == a.to_dict()


def test_an_outage_after_a_noise_alarm_still_alarms():
    det = DefaultMetricDetector()
    ts, xs = [STEP * i for i in range(3000)], []
    rng = random.Random(6)
    for i in range(3000):
        xs.append(
            50.0 + rng.gauss(0, 1.0) + (6.0 if i == 2000 else 0.0) + (60.0 if i == 2030 else 0)
        )
    fired = []
    for t, x in zip(ts, xs, strict=True):
        det.score_one(t, x)
        det.learn_one(t, x)
        fired.append(det.last_alarm)
    assert fired[2030]  # 30 points after the first alarm, inside its refractory period
    assert fired[2000]  # the first, weaker one
    quiet = DefaultMetricDetector(escalate=0.0)
    silenced = [quiet.update(t, x) for t, x in zip(ts, xs, strict=True)]
    assert silenced[2000] > 0.999
    assert silenced[2030] <= 0.5  # without escalation the gate damps it


@pytest.mark.parametrize(("kind", "seed"), [("wild", 7), ("wild", 8), ("pairs", 2), ("pairs", 8)])
def test_score_many_is_bit_identical_with_resets_and_escalations(kind, seed):
    ts, xs = _reset_or_escalation_series(kind, 4000, seed)
    stream = DefaultMetricDetector()
    expected, alarms, resets, escalations = [], [], 0, 0
    for t, x in zip(ts, xs, strict=True):
        expected.append(stream.score_one(t, x))
        before = [c.u for c in stream.calibrators]
        was_armed = stream.alarm.armed
        stream.learn_one(t, x)
        resets += sum(
            c.p2_upper is None and c.u < 0.8 * b
            for c, b in zip(stream.calibrators, before, strict=True)
        )
        escalations += stream.last_alarm and not was_armed
        alarms.append(stream.last_alarm)
    assert (resets if kind == "wild" else escalations) > 0  # the path under test is exercised
    batch = DefaultMetricDetector()
    got = []
    for a, b in [(0, 120), (120, 1500), (1500, 4000)]:
        got += batch.score_many(xs[a:b], ts[a:b])
        assert batch.last_alarm == alarms[b - 1]
    assert got == expected
    assert json.dumps(batch.to_dict()) == json.dumps(stream.to_dict())


def test_detector_snapshot_from_before_escalation_loads_with_it():
    det = DefaultMetricDetector()
    for t, x in _series(600, seed=9):
        det.update(t, x)
    d = json.loads(json.dumps(det.to_dict()))
    del d["escalate"]
    for key in ("gate", "alarm"):
        del d[key]["escalate"], d[key]["last_p"]
    for c in d["calibrators"]:
        del c["stale"], c["stale_max"]
    old = DefaultMetricDetector.from_dict(d)
    assert old.escalate == old.gate.escalate == old.alarm.escalate == 10.0
    old.update(600 * STEP, 50.0)


def test_score_many_runs_the_compiled_loop_and_the_plain_one_agrees(monkeypatch):
    from opsloop.detect.metrics import steady

    assert steady.COMPILED  # numba is a dependency: the batch path is the compiled loop
    ts, xs = _messy_series(4000, seed=11)
    calls = []
    compiled = steady.run_steady

    def counting(*args):
        calls.append(len(args[0]))
        return compiled(*args)

    monkeypatch.setattr(steady, "run_steady", counting)
    fast = DefaultMetricDetector().score_many(xs, ts)
    assert calls and sum(calls) > 3500  # all but the start ran compiled
    monkeypatch.setattr(steady, "run_steady", compiled.py_func)
    plain_det = DefaultMetricDetector()
    plain = plain_det.score_many(xs, ts)
    expected, _ = _stream(stream := DefaultMetricDetector(), ts, xs)
    assert fast == plain == expected
    assert json.dumps(plain_det.to_dict()) == json.dumps(stream.to_dict())
    assert steady.warm() < 60.0  # loads (compiled once per install) and returns its time


def test_the_compiled_loop_works_without_a_writable_cache(monkeypatch):
    # numba raises RuntimeError at decoration when no cache location is writable (a
    # read-only install without a home directory): the loop is then compiled uncached
    import numba

    from opsloop.detect.metrics import steady

    real = numba.njit

    def njit(*args, **kw):
        if kw.get("cache"):
            raise RuntimeError("cannot cache function: no locator available")
        return real(*args, **kw)

    monkeypatch.setattr(numba, "njit", njit)
    monkeypatch.setattr(steady, "gpd_pvalue", steady.gpd_pvalue.py_func)
    loop, compiled = steady._compile()
    assert compiled and hasattr(loop, "py_func")
    monkeypatch.setattr(steady, "run_steady", loop)
    ts, xs = _messy_series(2000, seed=12)
    assert DefaultMetricDetector().score_many(xs, ts) == _stream(DefaultMetricDetector(), ts, xs)[0]


def test_without_numba_the_batch_path_runs_point_by_point(monkeypatch):
    from opsloop.detect.metrics import steady

    def fail(*args):
        raise AssertionError("the compiled loop is not there")

    monkeypatch.setattr(steady, "COMPILED", False)
    monkeypatch.setattr(steady, "run_steady", fail)
    ts, xs = _messy_series(1500, seed=13)
    expected, _ = _stream(DefaultMetricDetector(), ts, xs)
    assert DefaultMetricDetector().score_many(xs, ts) == expected
