"""Streaming trend + seasonality forecasting and time-to-threshold, next to Prometheus' baseline."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from opsloop.detect.metrics.eta import ETA
from opsloop.detect.metrics.recent_trend import RecentTrend
from opsloop.detect.metrics.seasonal import DAY, SeasonalProfile

__all__ = [
    "ETA",
    "TrendForecaster",
    "predict_linear",
    "predict_linear_eta",
]


def _least_squares(ts: Sequence[float], xs: Sequence[float], t_ref: float) -> tuple[float, float]:
    n = len(ts)
    if n < 2:
        raise ValueError("need at least two samples")
    sx = sy = sxy = sxx = 0.0
    for t, x in zip(ts, xs, strict=True):
        u = t - t_ref
        sx += u
        sy += x
        sxy += u * x
        sxx += u * u
    cov = sxy - sx * sy / n
    var = sxx - sx * sx / n
    slope = cov / var if var > 0 else 0.0
    return slope, sy / n - slope * sx / n


def predict_linear(ts: Sequence[float], xs: Sequence[float], now: float, horizon: float) -> float:
    """Prometheus ``predict_linear(v[range], horizon)`` evaluated at ``now``, faithfully.

    Ordinary least squares of the range's samples against ``t - now`` (Prometheus'
    ``linearRegression(samples, interceptTime=now)``), then ``slope * horizon + intercept``.

    >>> predict_linear([0.0, 60.0, 120.0], [1.0, 2.0, 3.0], now=120.0, horizon=60.0)
    4.0
    """
    slope, intercept = _least_squares(ts, xs, now)
    return slope * horizon + intercept


def predict_linear_eta(
    ts: Sequence[float], xs: Sequence[float], now: float, threshold: float
) -> float:
    """Seconds until ``predict_linear`` reaches ``threshold`` (``inf`` if it never does).

    >>> predict_linear_eta([0.0, 60.0, 120.0], [1.0, 2.0, 3.0], now=120.0, threshold=5.0)
    120.0
    """
    slope, intercept = _least_squares(ts, xs, now)
    if intercept >= threshold:
        return 0.0
    return (threshold - intercept) / slope if slope > 0 else math.inf


#: Horizons (seconds) at which the forecaster checks its own forecasts, for its intervals.
CAL_HORIZONS: tuple[float, ...] = (3600.0, 4 * 3600.0, 16 * 3600.0)
#: Forecasts issued per horizon length (one every h / 12), errors kept per horizon, and the
#: fewest errors a horizon needs before it enters the error model.
_ISSUE_PER_HORIZON, _CAL_KEEP, _CAL_MIN = 12, 120, 12
#: Two-sided coverage of the ETA interval.
COVERAGE = 0.9
#: ETAs beyond this (seconds, ~100 years) are "never".
_MAX_ETA = 3.2e9


def conformal_bounds(errors: Sequence[float], coverage: float = COVERAGE) -> tuple[float, float]:
    """Split-conformal lower and upper quantiles of ``errors`` for a two-sided ``coverage``.

    With ``n`` errors sorted ``e_(1) <= ... <= e_(n)`` and ``a = (1 - coverage) / 2``, the
    bounds are ``e_(floor((n + 1) a))`` and ``e_(ceil((n + 1) (1 - a)))`` (``-inf``/``inf``
    when the rank falls outside ``1..n``): a new exchangeable error lies between them with
    probability at least ``coverage``.

    >>> conformal_bounds([float(i) for i in range(1, 100)], 0.9)
    (5.0, 95.0)
    >>> conformal_bounds([1.0, 2.0], 0.9)
    (-inf, inf)
    """
    e = sorted(errors)
    n = len(e)
    a = (1.0 - coverage) / 2.0
    lo_rank = math.floor((n + 1) * a + 1e-9)  # (the slack absorbs rounding in a)
    hi_rank = math.ceil((n + 1) * (1.0 - a) - 1e-9)
    lo = e[lo_rank - 1] if lo_rank >= 1 else -math.inf
    hi = e[hi_rank - 1] if hi_rank <= n else math.inf
    return lo, hi


_PROFILE_STEP = 300.0  # the sampling interval at which a point moves a profile bin by gamma


class TrendForecaster:
    """Streaming forecaster: exponentially weighted least-squares trend + daily profile + resets.

    The deseasonalised value ``y = x - S(t)`` is regressed on time with weights
    ``exp(-(t_now - t_i) / tau)`` (running sums, O(1) per point), giving ``y ~ a + b (t - t_c)``.
    ``S`` is a :class:`SeasonalProfile` (daily, 48 bins) learning ``x - (a + b t)`` at a rate
    per unit of time (10 % per 5 minutes, whatever the sampling interval). The robust residual
    spread ``s`` is an EW mean absolute deviation. A clean-up (log rotation, cache purge) is a
    drop ``r < -max(drop_k s, drop_frac |level|)``, or a smaller step that persists: a one-sided
    CUSUM ``g <- max(0, g - r / s - drop_k / 4)`` reaching ``drop_k``, whose run holds a fall of
    at least ``drop_k / 2`` spreads from one point to the next (a step, not the falling half of a
    cycle the profile has not learnt yet), whose last three points are all down by ``drop_k / 4``
    spreads (not a one-point dip) and which averages at least ``drop_frac |level|``. Then the
    regression restarts at the new level and keeps the old slope (from before the drop) as a
    prior on the slope alone, worth what the old fit knew of it (its ``sum w (u - mean u)^2``),
    so growth resumes at once and a few hours of new points do not override days of them.

    Forecast: ``x_hat(t) = a + b (t - t_c) + S(t)``. ``time_to_threshold`` is the first ``t``
    with ``x_hat(t) >= thr`` (at the time of day the cycle peaks), or sooner if the pace of the
    last hour says so (:class:`~opsloop.detect.metrics.recent_trend.RecentTrend`, restarted
    when the pace changes, consulted only for crossings within 4 hours): a fit with three
    days' memory takes hours to see a disk that started filling in minutes.

    Its intervals are calibrated on the forecaster's own record on the series (split
    conformal). Every ``h / 12`` seconds it issues a forecast for each horizon ``h`` in
    :data:`CAL_HORIZONS` (1 h, 4 h, 16 h); when the series gets there, the error
    ``e = x - x_hat - b (t - t_target)`` is kept, the last 120 per horizon issued within
    ``tau`` (the record of the model as it is now, not of its warm-up). Forecasts spanning a
    clean-up reset are dropped: the ETA is the crossing if the series goes on as it is, so
    errors are measured on stretches without clean-ups. An error model
    ``E[e(h)^2] = sd_l^2 + sd_b^2 h^2`` (level error, slope error growing with the horizon) is
    fitted by least squares to the horizons' mean squared errors, and ``[r_lo, r_hi]`` are the
    conformal 90 % bounds of ``e / sd(h)``, ``sd(h) = sqrt(sd_l^2 + sd_b^2 h^2)``. The band at
    ``h`` ahead is the wider of ``x_hat + [r_lo, r_hi] sd(h)`` and the model's own
    ``x_hat -+ 1.645 sqrt(s^2 pi / 2 + var_b h^2)`` (residual spread, regression slope
    variance; alone until two horizons have 12 errors each). The ETA interval runs from the
    first crossing of the band's upper edge to the first crossing of its lower edge (``inf``
    when the lower edge never gets there).

    >>> f = TrendForecaster()
    >>> for i in range(3 * 288):  # three days, 5-minute samples, +10 per day
    ...     _ = f.update(300.0 * i, 50.0 + 10.0 * i / 288)
    >>> eta = f.time_to_threshold(100.0)
    >>> round(eta.seconds / DAY, 1)
    2.0
    """

    def __init__(
        self,
        tau: float = 3 * DAY,
        season_bins: int = 48,
        drop_k: float = 8.0,
        drop_frac: float = 0.05,
        falling: bool = False,
    ) -> None:
        self.tau = tau
        self.drop_k, self.drop_frac = drop_k, drop_frac
        # a resource used up as the value falls (free bytes, certificate days left): the
        # model runs on -x, so a refill (a renewal, a clean-up) is its "drop"
        self.falling = falling
        self._sign = -1.0 if falling else 1.0
        self.profile = SeasonalProfile(DAY, season_bins, gamma=0.1)
        # the pace of the last hour (a fill that starts fast is seen in minutes, not days)
        self.recent = RecentTrend()
        self.t_c = math.nan
        self.t_last = math.nan
        self.sw = self.st = self.sy = self.stt = self.sty = 0.0
        self.spread = 0.0
        self.n = 0
        self.resets = 0
        # CUSUM of drops: statistic, run length, run's summed drop and largest one-point fall;
        # the last residual
        self.drop_g, self.drop_run, self.drop_sum, self.drop_jump = 0.0, 0, 0.0, 0.0
        self.prev_r = 0.0
        self.low_streak = 0
        self.run_slope = 0.0  # the fit's slope when the run started
        # self-calibration: pending forecasts [target t, mean, slope], errors [issued t, e]
        self.pending: list[list[list[float]]] = [[] for _ in CAL_HORIZONS]
        self.next_issue = [-math.inf for _ in CAL_HORIZONS]
        self.errors: list[list[list[float]]] = [[] for _ in CAL_HORIZONS]  # [issued, error]
        self._fit_memo: tuple[int, tuple[float, float, float, float] | None] | None = None

    # -- regression --------------------------------------------------------------------------
    def _coef(self) -> tuple[float, float, float]:
        """``(a, b, var_b)`` of the weighted fit; ``b`` per second."""
        if self.sw <= 0:
            return 0.0, 0.0, math.inf
        mt, my = self.st / self.sw, self.sy / self.sw
        vt = self.stt / self.sw - mt * mt
        b = (self.sty / self.sw - mt * my) / vt if vt > 1e-9 else 0.0
        a = my - b * mt
        n_eff = max(self.sw, 1.0)
        var_b = (self.spread**2 * math.pi / 2) / (n_eff * vt) if vt > 1e-9 else math.inf
        return a, b, var_b

    def _add(self, u: float, y: float, w: float) -> None:
        self.sw += w
        self.st += w * u
        self.sy += w * y
        self.stt += w * u * u
        self.sty += w * u * y

    def _level(self, t: float) -> float:
        a, b, _ = self._coef()
        return a + b * (t - self.t_c)

    def _slope(self) -> float:
        return self._coef()[1]

    def level(self, t: float) -> float:
        """Deseasonalised trend line at ``t``."""
        return self._sign * self._level(t)

    def slope(self) -> float:
        """Current trend, per second."""
        return self._sign * self._slope()

    def update(self, t: float, x: float) -> bool:
        """Learn one point; returns ``True`` if it was taken as a clean-up drop (a reset)."""
        if not (math.isfinite(t) and math.isfinite(x)):
            return False
        x = self._sign * x
        self.recent.update(t, x)
        reset = False
        if self.n == 0:
            self.t_c = t
        else:
            decay = math.exp(-max(t - self.t_last, 0.0) / self.tau)
            for name in ("sw", "st", "sy", "stt", "sty"):
                setattr(self, name, getattr(self, name) * decay)
        y = x - self.profile.value(t)
        if self.n >= 10:
            lvl = self._level(t)
            r = y - lvl
            # a smaller drop that persists and came at once (a step, not the falling half of a
            # cycle not learnt yet): one-sided CUSUM of -r / s with reference drop_k / 4 whose
            # run holds a fall of drop_k / 2 spreads from one point to the next, and whose last
            # three points are all down by drop_k / 4 spreads or more (not a one-point dip)
            s = max(self.spread, 1e-12)
            self.low_streak = self.low_streak + 1 if -r >= 0.25 * self.drop_k * s else 0
            self.drop_g = max(0.0, self.drop_g - r / s - self.drop_k / 4)
            if self.drop_g > 0.0:
                if not self.drop_run:
                    self.run_slope = self._slope()  # before the run's points enter the fit
                self.drop_run += 1
                self.drop_sum -= r
                self.drop_jump = max(self.drop_jump, self.prev_r - r)
            else:
                self.drop_run, self.drop_sum, self.drop_jump = 0, 0.0, 0.0
            self.prev_r = r
            mean = self.drop_sum / self.drop_run if self.drop_run else 0.0
            persistent = (
                self.drop_g >= self.drop_k
                and mean >= self.drop_frac * abs(lvl)
                and self.drop_jump >= 0.5 * self.drop_k * s
                and self.low_streak >= 3
            )
            if persistent or r < -max(self.drop_k * self.spread, self.drop_frac * abs(lvl)):
                # the slope from before the drop (the run's points already lean on it)
                b = self.run_slope if self.drop_run else self._slope()
                self.drop_g, self.drop_run, self.drop_sum, self.drop_jump = 0.0, 0, 0.0, 0.0
                self.prev_r, self.low_streak = 0.0, 0
                # the old slope as a prior on the slope alone, as well known as the old fit knew
                # it: its information sum w (u - mean u)^2 joins stt, b times it joins sty (the
                # penalised least squares of b; the level comes from the new points only)
                info = self.stt - self.st * self.st / self.sw if self.sw > 0 else 0.0
                self.sw = self.st = self.sy = self.stt = self.sty = 0.0
                self.t_c = t
                self.stt, self.sty = info, b * info
                reset = True
                self.resets += 1
        if self.n >= 1 and not reset:
            r = y - self._level(t)
            d = max(0.01, 1.0 / self.n)
            self.spread += d * (abs(r) - self.spread)
        self._add(t - self.t_c, y, 1.0)
        if self.n >= 2:
            self.profile.update(
                t, (x - self._level(t)) - self.profile.value(t), self._profile_rate(t)
            )
        self.t_last = t
        self.n += 1
        self._calibrate(t, x, reset)
        return reset

    def _profile_rate(self, t: float) -> float:
        """The profile's rate for a point ``dt = t - t_last`` after the last one:
        ``1 - (1 - gamma) ** (dt / 300)`` (``dt`` at most a bin), so that a bin learns as
        much from an hour of 15-second samples as from an hour of 5-minute ones."""
        dt = min(max(t - self.t_last, 0.0), self.profile.period / self.profile.bins)
        return 1.0 - (1.0 - self.profile.gamma) ** (dt / _PROFILE_STEP)

    def _calibrate(self, t: float, x: float, reset: bool) -> None:
        """Score the forecasts that have come due against ``x``, then issue new ones."""
        for k, h in enumerate(CAL_HORIZONS):
            due = self.pending[k]
            if reset:
                due.clear()  # the forecasts were for the regime before the clean-up
            errs = self.errors[k]
            while due and due[0][0] <= t:
                target, mean, b = due.pop(0)
                errs.append([target - h, x - mean - b * (t - target)])
            # the record of the model as it is now: the last 120, issued within tau
            while errs and (len(errs) > _CAL_KEEP or errs[0][0] < t - self.tau):
                del errs[0]
            if self.n >= 10 and t >= self.next_issue[k]:
                mean = self._mean(t + h)
                if math.isfinite(mean):
                    due.append([t + h, mean, self._slope()])
                self.next_issue[k] = t + h / _ISSUE_PER_HORIZON

    def error_model(self) -> tuple[float, float, float, float] | None:
        """``(sd_level, sd_slope, r_lo, r_hi)`` fitted on the forecaster's own errors.

        ``E[e(h)^2] = sd_level^2 + sd_slope^2 h^2`` fitted by least squares (coefficients
        kept >= 0) to the mean squared errors of the horizons with enough of them, then
        ``[r_lo, r_hi]`` the conformal bounds of the errors divided by that ``sd(h)``.
        ``None`` until two horizons have their minimum of errors.
        """
        pts = [
            (h * h, e) for h, e in zip(CAL_HORIZONS, self.errors, strict=True) if len(e) >= _CAL_MIN
        ]
        if len(pts) < 2:
            return None
        xs = [h2 for h2, _ in pts]
        ys = [math.fsum(v * v for _, v in e) / len(e) for _, e in pts]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        sxx = sum((x - mx) ** 2 for x in xs)
        slope_var = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
        level_var = my - slope_var * mx
        if slope_var < 0.0:
            slope_var, level_var = 0.0, my
        elif level_var < 0.0:
            level_var = 0.0
            slope_var = sum(x * y for x, y in zip(xs, ys, strict=True)) / sum(x * x for x in xs)
        if not level_var + slope_var > 0.0:
            return None  # errors all zero
        r = [v / math.sqrt(level_var + slope_var * h2) for h2, e in pts for _, v in e]
        r_lo, r_hi = conformal_bounds(r)
        return math.sqrt(level_var), math.sqrt(slope_var), r_lo, r_hi

    def _offsets(self, band_only: bool = False) -> Callable[[float], tuple[float, float]]:
        """``h -> (low, high)``: the 90 % band around the forecast ``h`` seconds ahead.

        The wider of the calibrated band ``[r_lo, r_hi] sd(h)`` (when there is one) and the
        model's own ``-+1.645 sqrt(s^2 pi / 2 + var_b h^2)``: the self-calibration may widen
        the regression's band, never make it narrower than its standard errors. (While the
        slope's variance is unknown the model band is infinite; ``band_only`` drops that
        slope term instead, for a drawable band.)
        """
        if self._fit_memo is not None and self._fit_memo[0] == self.n:
            fit = self._fit_memo[1]
        else:
            fit = self.error_model()
            self._fit_memo = (self.n, fit)
        _, _, var_b = self._coef()
        level_var = self.spread**2 * math.pi / 2
        if not math.isfinite(var_b):
            var_b = 0.0 if band_only else math.inf

        def offsets(h: float) -> tuple[float, float]:
            sd = math.sqrt(level_var + var_b * h * h) if math.isfinite(var_b) else math.inf
            lo, hi = -1.645 * sd, 1.645 * sd
            if fit is not None:
                sd_l, sd_b, r_lo, r_hi = fit
                sd = math.sqrt(sd_l * sd_l + (sd_b * h) ** 2)
                lo, hi = min(lo, r_lo * sd), max(hi, r_hi * sd)
            return lo, hi

        return offsets

    def _mean(self, t: float) -> float:
        """Point forecast ``a + b (t - t_c) + S(t)``."""
        a, b, _ = self._coef()
        return a + b * (t - self.t_c) + self.profile.value(t)

    def forecast(self, t: float) -> tuple[float, float, float]:
        """``(mean, low, high)``: point forecast at ``t`` and its calibrated 90 % band."""
        mean = self._mean(t)
        lo, hi = self._offsets(band_only=True)(t - self.t_last)
        if self.falling:
            return -mean, -(mean + hi), -(mean + lo)
        return mean, mean + lo, mean + hi

    def recent_forecast(self, t: float) -> tuple[float, float, float] | None:
        """``(mean, low, high)`` at ``t`` at the pace of the last hour
        (:meth:`RecentTrend.forecast`), the band :meth:`time_to_threshold` read when its ETA's
        ``source`` is ``"recent"``; ``None`` while that fit does not stand."""
        out = self.recent.forecast(t)
        if out is None or not self.falling:
            return out
        mean, low, high = out
        return -mean, -high, -low

    def time_to_threshold(self, threshold: float, now: float | None = None) -> ETA:
        """Seconds from ``now`` (default: the last point) until the series reaches ``threshold``.

        The first ``h >= 0`` with ``a + b (now + h - t_c) + S(now + h) >= threshold``: the
        forecast itself, daily cycle and all, so a crossing lands at the time of day the cycle
        peaks, not wherever the trend alone meets ``threshold - max S``. That trend-only time
        is a lower bound (``S <= max S``); from it the phase-aware crossing is searched over
        the next period in steps of a quarter profile bin, then bisected. The interval's ends
        are the same crossings of the band's edges (the upper edge gives the early end).
        """
        now = self.t_last if now is None else now
        threshold = self._sign * threshold  # falling: -x rising to -threshold
        a, b, _ = self._coef()
        prof = self.profile
        seasonal = any(prof.count)
        top = max(prof.s) if seasonal else 0.0
        level = a + b * (now - self.t_c)
        offsets = self._offsets()
        step = prof.period / (4 * prof.bins)

        def first_crossing(edge: int | None) -> float:
            """First ``h >= 0`` where the forecast (``None``) or the band's ``edge`` (0 low,
            1 high) reaches ``threshold``; ``inf`` when it never does."""

            def off(h: float) -> float:
                return 0.0 if edge is None else offsets(h)[edge]

            def above(h: float) -> bool:  # (an infinite edge: at once, or never)
                return level + b * h + prof.value(now + h) + off(h) >= threshold

            def bound(h: float) -> bool:  # the same with the cycle at its peak
                return level + b * h + top + off(h) >= threshold

            if above(0.0):
                return 0.0
            lo, hi = 0.0, 60.0
            while not bound(hi):
                lo, hi = hi, 2.0 * hi
                if hi > _MAX_ETA:
                    return math.inf
            for _ in range(40):  # bisection to well under a second
                mid = 0.5 * (lo + hi)
                lo, hi = (lo, mid) if bound(mid) else (mid, hi)
            if not seasonal:
                return hi
            h = max(hi - step, 0.0)  # the phase-aware crossing is no earlier
            for _ in range(8 * prof.bins + 1):  # two periods
                nxt = h + step
                if above(nxt):
                    lo, hi = h, nxt
                    for _ in range(30):
                        mid = 0.5 * (lo + hi)
                        lo, hi = (lo, mid) if above(mid) else (mid, hi)
                    return hi
                h = nxt
            return math.inf  # the edge falls away faster than the trend brings it up

        point = first_crossing(None) if b > 0 or seasonal else math.inf
        eta = ETA(point, min(first_crossing(1), point), max(first_crossing(0), point))
        fast = self.recent.eta(threshold, now)
        return fast if fast is not None and fast.seconds < eta.seconds else eta

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "tau": self.tau,
            "drop_k": self.drop_k,
            "drop_frac": self.drop_frac,
            "falling": self.falling,
            "profile": self.profile.to_dict(),
            "t_c": self.t_c,
            "t_last": self.t_last,
            "sums": [self.sw, self.st, self.sy, self.stt, self.sty],
            "spread": self.spread,
            "n": self.n,
            "resets": self.resets,
            "drop": [
                self.drop_g,
                self.drop_run,
                self.drop_sum,
                self.drop_jump,
                self.prev_r,
                self.low_streak,
                self.run_slope,
            ],
            "recent": self.recent.to_dict(),
            "pending": [[list(p) for p in due] for due in self.pending],
            "next_issue": list(self.next_issue),
            "errors": [[list(p) for p in e] for e in self.errors],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrendForecaster:
        """Inverse of :meth:`to_dict`."""
        obj = cls(
            d["tau"], drop_k=d["drop_k"], drop_frac=d["drop_frac"], falling=d.get("falling", False)
        )
        obj.profile = SeasonalProfile.from_dict(d["profile"])
        obj.t_c, obj.t_last = float(d["t_c"]), float(d["t_last"])
        obj.sw, obj.st, obj.sy, obj.stt, obj.sty = (float(v) for v in d["sums"])
        obj.spread, obj.n, obj.resets = float(d["spread"]), int(d["n"]), int(d["resets"])
        if "drop" in d:  # (snapshots from before the drop CUSUM start it at zero)
            g, run, total, jump, prev, streak, run_slope = d["drop"]
            obj.run_slope = float(run_slope)
            obj.drop_g, obj.drop_run, obj.low_streak = float(g), int(run), int(streak)
            obj.drop_sum, obj.drop_jump, obj.prev_r = float(total), float(jump), float(prev)
        if "recent" in d:  # (older snapshots learn the recent pace again)
            obj.recent = RecentTrend.from_dict(d["recent"])
        if "errors" in d:  # snapshots before the self-calibration start with an empty record
            obj.pending = [[[float(v) for v in p] for p in due] for due in d["pending"]]
            obj.next_issue = [float(v) for v in d["next_issue"]]
            obj.errors = [[[float(a), float(v)] for a, v in e] for e in d["errors"]]
        return obj
