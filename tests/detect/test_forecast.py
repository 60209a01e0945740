"""Forecasting and time-to-threshold (synthetic only)."""

from __future__ import annotations

import doctest
import json
import math
import random

import pytest

from opsloop.detect.metrics import forecast
from opsloop.detect.metrics.forecast import TrendForecaster, predict_linear, predict_linear_eta

DAY = 86400.0
STEP = 300.0


def test_doctests():
    result = doctest.testmod(forecast)
    assert result.failed == 0 and result.attempted > 0


def test_predict_linear_matches_least_squares():
    ts = [0.0, 10.0, 20.0, 30.0]
    xs = [1.0, 3.0, 2.0, 6.0]
    # slope = cov/var = 1.3/10 ... computed by hand: mean t 15, mean x 3
    slope = sum((t - 15) * (x - 3) for t, x in zip(ts, xs, strict=True)) / sum(
        (t - 15) ** 2 for t in ts
    )
    assert predict_linear(ts, xs, now=30.0, horizon=0.0) == pytest.approx(3 + slope * 15)
    assert predict_linear(ts, xs, now=30.0, horizon=100.0) == pytest.approx(3 + slope * 115)
    assert predict_linear_eta([0.0, 1.0], [5.0, 4.0], 1.0, 10.0) == math.inf


def _disk(
    days: float,
    rate: float,
    amp: float,
    seed: int,
    cut_at: float | None = None,
    step: float = STEP,
):
    rng = random.Random(seed)
    out = []
    offset = 0.0
    for i in range(int(days * DAY / step)):
        t = i * step
        if cut_at is not None and abs(t - cut_at) < step / 2:
            offset -= 0.5 * (20.0 + rate * t + offset)
        x = 20.0 + rate * t + offset + amp * math.sin(2 * math.pi * t / DAY) + rng.gauss(0, 0.3)
        out.append((t, x))
    return out


def test_eta_on_linear_growth_with_daily_cycle():
    rate = 5.0 / DAY
    f = TrendForecaster()
    pts = _disk(6, rate, 2.0, seed=1)
    for t, x in pts:
        f.update(t, x)
    t_end, _ = pts[-1]
    truth = (100.0 - (20.0 + rate * t_end) - 2.0) / rate  # first crossing, near the daily peak
    eta = f.time_to_threshold(100.0)
    assert abs(eta.seconds - truth) < 0.5 * DAY
    assert eta.low <= eta.seconds <= eta.high


def test_cleanup_drop_restarts_level_but_keeps_growth():
    rate = 5.0 / DAY
    f = TrendForecaster()
    pts = _disk(6, rate, 0.0, seed=2, cut_at=5.5 * DAY)
    resets = sum(f.update(t, x) for t, x in pts)
    assert resets == 1
    assert f.slope() == pytest.approx(rate, rel=0.2)
    t_end, x_end = pts[-1]
    assert f.level(t_end) == pytest.approx(x_end, abs=2.0)
    # predict_linear over the last day is fooled by the drop
    day = [(t, x) for t, x in pts if t > t_end - DAY]
    pl = predict_linear_eta([t for t, _ in day], [x for _, x in day], t_end, 100.0)
    truth = (100.0 - f.level(t_end)) / rate
    assert abs(f.time_to_threshold(100.0).seconds - truth) < abs(pl - truth)


def test_forecast_band_contains_the_mean_and_nan_is_ignored():
    f = TrendForecaster()
    for t, x in _disk(3, 2.0 / DAY, 1.0, seed=3):
        f.update(t, x)
        f.update(t, float("nan"))
    mean, lo, hi = f.forecast(f.t_last + 3600.0)
    assert lo < mean < hi
    assert all(math.isfinite(v) for v in (mean, lo, hi))


def test_forecaster_round_trip():
    f = TrendForecaster()
    pts = _disk(3, 2.0 / DAY, 1.0, seed=4)
    for t, x in pts[:500]:
        f.update(t, x)
    g = TrendForecaster.from_dict(json.loads(json.dumps(f.to_dict())))
    for t, x in pts[500:]:
        f.update(t, x)
        g.update(t, x)
    assert f.time_to_threshold(100.0) == g.time_to_threshold(100.0)


def test_conformal_bounds_ranks():
    errors = [float(i) for i in range(1, 20)]  # n = 19: ranks floor(20 * 0.05) = 1, 19
    assert forecast.conformal_bounds(errors) == (1.0, 19.0)
    assert forecast.conformal_bounds(errors[:10]) == (-math.inf, math.inf)


def test_interval_is_calibrated_on_its_own_errors():
    f = TrendForecaster()
    assert f.error_model() is None
    pts = _disk(4, 4.0 / DAY, 2.0, seed=5)
    for t, x in pts:
        f.update(t, x)
    fit = f.error_model()
    assert fit is not None
    sd_l, sd_b, r_lo, r_hi = fit
    assert sd_l >= 0.0 and sd_b >= 0.0 and r_lo < 0.0 < r_hi
    # the band at 1 h ahead is of the order of the noise (0.3) and level error, not wider
    mean, lo, hi = f.forecast(f.t_last + 3600.0)
    assert lo < mean < hi and hi - lo < 5.0
    eta = f.time_to_threshold(100.0)
    assert eta.low <= eta.seconds <= eta.high


def test_interval_covers_the_truth_on_most_synthetic_series():
    # 40 clean disk series: the previous (uncalibrated) interval covered 25, this one 31
    covered, widths = 0, []
    for seed in range(40):
        rng = random.Random(100 + seed)
        rate, days, amp = rng.uniform(3.0, 8.0) / DAY, rng.uniform(4, 7), rng.uniform(0.0, 2.0)
        f = TrendForecaster()
        pts = _disk(days, rate, amp, seed=200 + seed)
        for t, x in pts:
            f.update(t, x)
        t_end = t = pts[-1][0]
        while 20.0 + rate * t + amp * math.sin(2 * math.pi * t / DAY) < 100.0:
            t += 60.0  # the noiseless signal's first crossing
        eta = f.time_to_threshold(100.0)
        covered += eta.low <= t - t_end <= eta.high
        widths.append((eta.high - eta.low) / (t - t_end))
    assert covered >= 28  # nominal 90 %
    assert sorted(widths)[20] < 0.25  # and it stays narrow on clean series


def test_the_daily_profile_learns_per_unit_of_time_at_15_second_samples():
    # Prometheus' usual scrape: a 30-minute bin sees 120 points a visit. Learning 10 % of
    # the error per point, the profile was the last visit's noise and drift: on these series
    # the ETA's median error was 16 % (a day and more) and the median interval 0.92x the
    # truth wide; at 10 % per 5 minutes, 0.1 % and 0.46x
    errors, widths, covered = [], [], 0
    for seed in range(8):
        rng = random.Random(300 + seed)
        rate, days, amp = rng.uniform(3.0, 8.0) / DAY, rng.uniform(3, 4), rng.uniform(0.0, 2.0)
        f = TrendForecaster()
        pts = _disk(days, rate, amp, seed=400 + seed, step=15.0)
        for t, x in pts:
            f.update(t, x)
        t_end = t = pts[-1][0]
        while 20.0 + rate * t + amp * math.sin(2 * math.pi * t / DAY) < 100.0:
            t += 60.0
        eta = f.time_to_threshold(100.0)
        errors.append(abs(eta.seconds - (t - t_end)) / (t - t_end))
        widths.append((eta.high - eta.low) / (t - t_end))
        covered += eta.low <= t - t_end <= eta.high
    assert sorted(errors)[4] < 0.05
    assert sorted(widths)[4] < 0.7
    assert covered >= 6


def test_snapshots_without_the_calibration_record_still_load():
    f = TrendForecaster()
    for t, x in _disk(3, 2.0 / DAY, 1.0, seed=6):
        f.update(t, x)
    d = json.loads(json.dumps(f.to_dict()))
    for key in ("pending", "next_issue", "errors"):
        del d[key]
    g = TrendForecaster.from_dict(d)
    assert g.error_model() is None  # starts a fresh record
    assert g.time_to_threshold(100.0).seconds == f.time_to_threshold(100.0).seconds


def _noiseless_crossing(t_end: float, rate: float, amp: float, thr: float) -> float:
    """Seconds after ``t_end`` until ``20 + rate t + amp sin(2 pi t / DAY)`` first reaches thr."""
    t = t_end
    while 20.0 + rate * t + amp * math.sin(2 * math.pi * t / DAY) < thr:
        t += 60.0
    return t - t_end


def test_eta_lands_at_the_time_of_day_the_cycle_peaks():
    rate, amp = 4.0 / DAY, 5.0  # a wide cycle: the trend alone would meet thr - 5 hours early
    f = TrendForecaster()
    pts = _disk(7, rate, amp, seed=3)
    for t, x in pts:
        f.update(t, x)
    t_end = pts[-1][0]
    truth = _noiseless_crossing(t_end, rate, amp, 100.0)
    eta = f.time_to_threshold(100.0)
    assert abs(eta.seconds - truth) < 2 * 3600  # within two hours, on a ~13-day horizon
    phase = ((t_end + eta.seconds) % DAY) / DAY  # the sine peaks at a quarter day
    assert abs(phase - 0.25) < 0.1
    assert eta.low <= truth <= eta.high


def test_a_flat_series_whose_daily_peak_reaches_the_threshold_crosses_within_a_day():
    f = TrendForecaster()
    for t, x in _disk(4, 0.0, 10.0, seed=4):
        f.update(t, x)
    eta = f.time_to_threshold(29.0)  # level 20, peak 30: crossed at today's peak
    assert 0.0 < eta.seconds <= DAY
    assert f.time_to_threshold(45.0).seconds == math.inf  # never above 30


def _noisy_disk(days: float, rate: float, sd: float, seed: int, cut: float, dip: float):
    """Growth with noise ``sd``; a persistent step down of ``cut`` at day 3.5 and a one-point
    dip of ``dip`` at day 2.5 (it recovers at once)."""
    rng = random.Random(seed)
    out = []
    for i in range(int(days * DAY / STEP)):
        t = i * STEP
        x = 20.0 + rate * t + rng.gauss(0, sd) - (cut if t >= 3.5 * DAY else 0.0)
        out.append((t, x - (dip if i == int(2.5 * DAY / STEP) else 0.0)))
    return out


@pytest.mark.parametrize("seed", [1, 2, 4])
def test_a_persistent_step_below_the_single_point_rule_is_a_cleanup(seed):
    rate, cut = 2.0 / DAY, 4.5
    pts = _noisy_disk(5, rate, 0.8, seed, cut=cut, dip=3.0)
    f = TrendForecaster()
    resets = [i for i, (t, x) in enumerate(pts) if f.update(t, x)]
    step = int(3.5 * DAY / STEP)
    # the step (about 6 spreads: under the 8 of the one-point rule) is found within a few
    # points; a one-point dip of about 4 spreads is not a clean-up
    assert len(resets) == 1 and step <= resets[0] <= step + 12
    assert f.slope() == pytest.approx(rate, rel=0.25)
    t_end = pts[-1][0]
    truth = (100.0 - (20.0 + rate * t_end - cut)) / rate
    assert abs(f.time_to_threshold(100.0).seconds - truth) < 0.1 * truth


def test_the_drop_cusum_survives_a_snapshot():
    pts = _noisy_disk(5, 2.0 / DAY, 0.8, 4, cut=4.5, dip=0.0)
    f = TrendForecaster()
    split = int(3.5 * DAY / STEP) + 2  # inside the run of the step
    for t, x in pts[:split]:
        f.update(t, x)
    g = TrendForecaster.from_dict(json.loads(json.dumps(f.to_dict())))
    old = f.to_dict()
    del old["drop"]  # a snapshot from before the CUSUM loads (its run starts afresh)
    TrendForecaster.from_dict(old)
    assert [f.update(t, x) for t, x in pts[split:]] == [g.update(t, x) for t, x in pts[split:]]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_after_a_cleanup_the_old_slope_is_kept_as_well_as_it_was_known(seed):
    # five and a half days of growth under noise and a daily cycle, a clean-up of half the
    # usage, twelve hours more: the slope still holds what days of points said, not what
    # half a day of noisy points after the drop suggests
    rng = random.Random(seed)
    rate, offset = 5.0 / DAY, 0.0
    f = TrendForecaster()
    for i in range(int(6 * DAY / STEP)):
        t = i * STEP
        if abs(t - 5.5 * DAY) < STEP / 2:
            offset -= 0.5 * (20.0 + rate * t + offset)
        x = 20.0 + rate * t + offset + 2.0 * math.sin(2 * math.pi * t / DAY) + rng.gauss(0, 1)
        f.update(t, x)
    assert f.resets == 1
    assert f.slope() == pytest.approx(rate, rel=0.05)


def test_a_falling_resource_certificate_days_left_with_renewals():
    # days left on a certificate: falls one a day, renewed to 90 every 60 days (a refill is
    # the falling series' clean-up); hourly samples, 100 days
    f = TrendForecaster(falling=True)
    resets = 0
    for i in range(100 * 24):
        t = i * 3600.0
        resets += f.update(t, 90.0 - math.fmod(t, 60 * DAY) / DAY)
    assert resets == 1  # the renewal on day 60
    assert f.slope() == pytest.approx(-1.0 / DAY, rel=0.02)
    t_end = f.t_last
    assert f.level(t_end) == pytest.approx(90.0 - math.fmod(t_end, 60 * DAY) / DAY, abs=0.5)
    eta = f.time_to_threshold(7.0)  # 50.04 days left at the end: 43 days to go
    assert eta.seconds / DAY == pytest.approx(43.0, abs=0.5)
    assert eta.low <= eta.seconds <= eta.high
    mean, low, high = f.forecast(t_end + 10 * DAY)
    assert low <= mean <= high and mean == pytest.approx(40.0, abs=0.5)
    # the same series read as rising is "already past 7" (50 >= 7): the direction matters
    up = TrendForecaster()
    for i in range(100 * 24):
        up.update(i * 3600.0, 90.0 - math.fmod(i * 3600.0, 60 * DAY) / DAY)
    assert up.time_to_threshold(7.0).seconds == 0.0
    g = TrendForecaster.from_dict(json.loads(json.dumps(f.to_dict())))
    assert g.falling and g.time_to_threshold(7.0) == eta


@pytest.mark.parametrize("falling", [False, True])
def test_a_sudden_fast_fill_is_forecast_in_minutes_not_days(falling):
    # a day of slow growth (0.5 %/day, 10-second samples), then the disk fills 2.5 % a
    # minute: the 3-day fit would take hours to see it; the recent pace sees it in minutes
    # (falling: free space, the mirror image)
    rng = random.Random(5)
    sign = -1.0 if falling else 1.0
    f = TrendForecaster(falling=falling)
    t, used = 0.0, 60.0
    for _ in range(8640):
        t += 10.0
        used += 0.5 / 8640
        f.update(t, sign * (used + rng.gauss(0.0, 0.05)))
    threshold = sign * 95.0
    assert f.time_to_threshold(threshold).seconds > 3 * DAY
    for _ in range(18):  # three minutes of the fill
        t += 10.0
        used += 2.5 / 6
        f.update(t, sign * (used + rng.gauss(0.0, 0.05)))
    truth = (95.0 - used) / (2.5 / 60)
    eta = f.time_to_threshold(threshold)
    assert eta.seconds == pytest.approx(truth, rel=0.15)
    assert eta.low <= eta.seconds <= eta.high < 2 * truth
    g = TrendForecaster.from_dict(json.loads(json.dumps(f.to_dict())))
    assert g.time_to_threshold(threshold) == eta
    # the band that ETA was read from (the series page draws it): it reaches the threshold
    # at the ETA, holds the interval (its slope term is the interval's), widens with time
    mean, low, high = f.recent_forecast(t + eta.seconds)
    assert mean == pytest.approx(threshold, abs=0.5)
    assert low < mean < high
    near = f.recent_forecast(t + 10.0)
    assert near[2] - near[1] < high - low
    early, late = f.recent_forecast(t + eta.low), f.recent_forecast(t + eta.high)
    if falling:
        assert early[1] <= threshold <= late[2]
    else:
        assert early[2] >= threshold >= late[1]
    assert TrendForecaster().recent_forecast(0.0) is None
