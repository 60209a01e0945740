"""The familiar-move floor: MoveFrequency alone and inside the default metric detector."""

from __future__ import annotations

import itertools
import json
import math
import random

import numpy as np
import pytest

from opsloop.detect.metrics import DefaultMetricDetector, MoveFrequency

STEP = 300.0


def _brute(xs: list[float], prev: float, x: float, up: bool) -> int:
    pairs = list(itertools.pairwise(xs))
    if up:
        return sum(1 for a, b in pairs if a >= prev and b >= x)
    return sum(1 for a, b in pairs if a <= prev and b <= x)


def _learned(xs: list[float], k: int) -> MoveFrequency:
    mf = MoveFrequency(k)
    for a, b in itertools.pairwise(xs):
        mf.learn_one(a, b)
    return mf


def test_counts_are_exact_while_every_move_is_kept():
    rng = random.Random(1)
    xs = [round(rng.gauss(0, 1), 1) for _ in range(300)]
    mf = _learned(xs, k=400)
    for _ in range(200):
        prev, x, up = rng.gauss(0, 1.5), rng.gauss(0, 1.5), rng.random() < 0.5
        c = _brute(xs, prev, x, up)
        assert mf.count(prev, x, up) == c
        assert mf.floor(prev, x, up) == (c / 300 if c else 0.0)


def test_bounded_memory_exact_in_the_tail_and_a_lower_bound_below_it():
    rng = random.Random(2)
    xs = [rng.expovariate(1.0) for _ in range(5000)]
    mf = _learned(xs, k=32)
    assert mf.b.shape == mf.a.shape == (2, 32) and mf.m == 4999
    kept_min = float(mf.b[0].min())
    for _ in range(300):
        prev, x = rng.uniform(0, 3), rng.uniform(0, 8)
        c, got = _brute(xs, prev, x, True), mf.count(prev, x, True)
        if x >= kept_min:
            assert got == c  # every move at least this high is kept
        else:
            assert got <= c
    # downward: the 32 lowest moves
    assert all(mf.count(p, 0.0, False) == _brute(xs, p, 0.0, False) for p in (0.1, 1.0, 5.0))


def test_round_trip_and_malformed_state():
    xs = [float(i % 7) for i in range(100)]
    mf = _learned(xs, k=16)
    back = MoveFrequency.from_dict(json.loads(json.dumps(mf.to_dict())))
    for prev, x in [(0.0, 6.0), (5.0, 6.0), (3.0, 0.0), (6.0, 0.0)]:
        for up in (True, False):
            assert back.count(prev, x, up) == mf.count(prev, x, up)
    back.learn_one(6.0, 9.0)
    assert back.count(0.0, 9.0, True) == 1
    bad = mf.to_dict()
    bad["up"] = [[1.0], [1.0, 2.0]]
    with pytest.raises(ValueError):
        MoveFrequency.from_dict(bad)
    with pytest.raises(ValueError):
        MoveFrequency(0)


def _spiky(seed: int, n: int = 4000) -> list[float]:
    """Noise around 10 with a spike of +20 every 150 points."""
    rng = random.Random(seed)
    return [rng.gauss(10.0, 1.0) + (20.0 if i % 150 == 75 else 0.0) for i in range(n)]


def _edges(xs: list[float], floor: bool) -> tuple[DefaultMetricDetector, int]:
    det = DefaultMetricDetector()
    scores = []
    for i, x in enumerate(xs):
        if not floor:
            det.moves = MoveFrequency(64)  # an empty memory of moves: no floor
        scores.append(det.update(i * STEP, x))
    return det, sum(s >= 0.99 for s in scores[1000:])


def test_a_recurring_spike_is_floored_a_new_height_and_a_shift_are_not():
    det, _ = _edges(_spiky(0), floor=True)
    assert det.active == "none"
    t = 4000 * STEP
    blind = DefaultMetricDetector.from_dict(det.to_dict())
    blind.moves = MoveFrequency(64)
    # a spike to the familiar height: no rarer than its share of the moves so far
    assert det.moves.floor(det.x_last, 30.0, True) > 0.002
    assert det.calibrated_score(t, 30.0) <= blind.calibrated_score(t, 30.0)
    # higher than ever: no past move matches, the model's p stands (past the gate)
    assert det.moves.count(det.x_last, 60.0, True) == 0
    assert det.calibrated_score(t, 60.0) == blind.calibrated_score(t, 60.0) > 0.99
    assert det.calibrated_score(t, 60.0) > det.calibrated_score(t, 30.0)
    # a shift to the familiar height: from its second row on no past move matches
    shift, fired = DefaultMetricDetector.from_dict(det.to_dict()), []
    for i in range(4000, 4004):
        shift.update(i * STEP, 30.0)
        fired.append(shift.last_alarm)
    assert fired[1]


def test_the_floor_takes_out_edges_at_recurring_spikes():
    pairs = [(_edges(_spiky(s), True)[1], _edges(_spiky(s), False)[1]) for s in (0, 1)]
    assert all(f <= b for f, b in pairs)
    assert sum(f for f, _ in pairs) < sum(b for _, b in pairs)


def test_the_floor_is_the_same_in_the_compiled_loop_and_the_per_point_calls(monkeypatch):
    from opsloop.detect.metrics import steady

    rng = np.random.default_rng(5)
    n = 6000
    ts = [i * STEP for i in range(n)]
    # bursty counts: a Poisson base with recurring bursts of a few heights, then a shift
    xs = rng.poisson(20.0, n).astype(float)
    xs[rng.choice(n, 60, replace=False)] += rng.choice([30.0, 45.0, 60.0], 60)
    xs[5000:] += 25.0
    xs = xs.tolist()
    stream = DefaultMetricDetector()
    expected = [stream.update(t, x) for t, x in zip(ts, xs, strict=True)]
    assert stream.moves.m == n - 1 and stream.moves.size == [64, 64]
    fast = DefaultMetricDetector()
    assert fast.score_many(xs, ts) == expected
    assert json.dumps(fast.to_dict()) == json.dumps(stream.to_dict())
    monkeypatch.setattr(steady, "run_steady", steady.run_steady.py_func)
    assert DefaultMetricDetector().score_many(xs, ts) == expected
    # and the floor did act on this series: without it some scores differ
    plain = DefaultMetricDetector()
    scores = []
    for t, x in zip(ts, xs, strict=True):
        plain.moves = MoveFrequency(64)
        scores.append(plain.update(t, x))
    assert scores != expected


def test_a_snapshot_from_before_the_floor_loads_and_starts_learning_moves():
    det, _ = _edges(_spiky(3, n=800), floor=True)
    d = json.loads(json.dumps(det.to_dict()))
    del d["moves"], d["x_last"]
    old = DefaultMetricDetector.from_dict(d)
    assert old.moves.m == 0 and math.isnan(old.x_last)
    old.update(800 * STEP, 0.0)
    old.update(801 * STEP, 20.0)
    assert old.moves.m == 1
