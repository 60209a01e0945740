"""RecentTrend: the pace of the last hour, restarted when the pace changes."""

from __future__ import annotations

import doctest
import json
import math
import random

import pytest

from opsloop.detect.metrics import recent_trend
from opsloop.detect.metrics.recent_trend import RecentTrend


def test_doctests():
    result = doctest.testmod(recent_trend)
    assert result.failed == 0 and result.attempted > 0


def _noisy(rt: RecentTrend, t: float, x: float, rng: random.Random, noise: float) -> None:
    rt.update(t, x + rng.gauss(0.0, noise))


def test_a_fill_that_starts_fast_is_timed_within_minutes():
    rng = random.Random(1)
    rt = RecentTrend()
    t, x = 0.0, 50.0
    for _ in range(8640):  # a day at 10 s, +0.5 %/day: nothing within reach
        t += 10.0
        x += 0.5 / 8640
        _noisy(rt, t, x, rng, 0.05)
    assert rt.eta(95.0, t) is None and rt.restarts == 0
    for _ in range(18):  # three minutes of +2 %/minute
        t += 10.0
        x += 2.0 / 6
        _noisy(rt, t, x, rng, 0.05)
    assert rt.restarts == 1
    eta = rt.eta(95.0, t)
    truth = (95.0 - x) / (2.0 / 60)
    assert eta is not None and eta.seconds == pytest.approx(truth, rel=0.15)
    assert eta.source == "recent"
    assert eta.low <= eta.seconds <= eta.high < 1.5 * truth
    back = RecentTrend.from_dict(json.loads(json.dumps(rt.to_dict())))
    assert back.eta(95.0, t) == eta
    for _ in range(720):  # the fill stops: within two hours the pace is slow again
        t += 10.0
        _noisy(rt, t, x, rng, 0.05)
    assert rt.eta(95.0, t) is None


def test_noise_and_slow_cycles_give_no_answer_far_from_the_threshold():
    rng = random.Random(2)
    rt = RecentTrend()
    for i in range(3 * 288):  # three days of 5-minute samples, a 10 % daily cycle at 40 %
        t = 300.0 * i
        _noisy(rt, t, 40.0 + 10.0 * math.sin(2 * math.pi * t / 86400.0), rng, 1.0)
        assert rt.eta(95.0, t) is None  # 4 h at the cycle's steepest (~2.6 %/h) is 10 %


def test_flat_and_falling_series_and_bad_input():
    rt = RecentTrend(tau=600.0)
    for i in range(100):
        rt.update(10.0 * i, 7.0)
    assert rt.eta(95.0, 990.0) is None  # flat: no slope
    rt.update(math.nan, 1.0)
    rt.update(1000.0, math.inf)
    assert rt.n == 100
    down = RecentTrend(tau=600.0)
    for i in range(100):
        down.update(10.0 * i, 90.0 - 0.1 * i)
    assert down.eta(95.0, 990.0) is None
    assert down.eta(50.0, 990.0) is None  # (below the level: falling away, never)
    with pytest.raises(ValueError):
        RecentTrend(tau=0.0)


def test_already_past_the_threshold_is_now():
    rt = RecentTrend(tau=600.0)
    for i in range(100):
        rt.update(10.0 * i, 90.0 + 0.1 * i)
    eta = rt.eta(95.0, 990.0)
    assert eta is not None and eta.seconds == 0.0
