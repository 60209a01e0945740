"""Streaming trend + seasonality forecasting and time-to-threshold, next to Prometheus' baseline."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class ETA:
    """Time to threshold in seconds: point estimate and an approximate 90 % interval."""

    seconds: float
    low: float
    high: float


class TrendForecaster:
    """Streaming forecaster: exponentially weighted least-squares trend + daily profile + resets.

    The deseasonalised value ``y = x - S(t)`` is regressed on time with weights
    ``exp(-(t_now - t_i) / tau)`` (running sums, O(1) per point), giving ``y ~ a + b (t - t_c)``.
    ``S`` is a :class:`SeasonalProfile` (daily) learning ``x - (a + b t)``. The robust residual
    spread ``s`` is an EW mean absolute deviation. A clean-up (log rotation, cache purge) is a
    drop ``r < -max(drop_k s, drop_frac |level|)``: the regression restarts at the new level and
    keeps the old slope as a prior worth ``prior_weight`` points, so growth resumes at once.

    Forecast: ``x_hat(t) = a + b (t - t_c) + S(t)`` with a prediction band from the regression's
    standard errors and ``s``. ``time_to_threshold`` solves ``a + b (t - t_c) + max S = thr``
    (the first crossing, at the daily peak) and brackets it with the slope's 90 % interval.

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
        prior_weight: float = 50.0,
    ) -> None:
        self.tau = tau
        self.drop_k, self.drop_frac, self.prior_weight = drop_k, drop_frac, prior_weight
        self.profile = SeasonalProfile(DAY, season_bins, gamma=0.1)
        self.t_c = math.nan
        self.t_last = math.nan
        self.sw = self.st = self.sy = self.stt = self.sty = 0.0
        self.spread = 0.0
        self.n = 0
        self.resets = 0

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

    def level(self, t: float) -> float:
        """Deseasonalised trend line at ``t``."""
        a, b, _ = self._coef()
        return a + b * (t - self.t_c)

    def slope(self) -> float:
        """Current trend, per second."""
        return self._coef()[1]

    def update(self, t: float, x: float) -> bool:
        """Learn one point; returns ``True`` if it was taken as a clean-up drop (a reset)."""
        if not (math.isfinite(t) and math.isfinite(x)):
            return False
        reset = False
        if self.n == 0:
            self.t_c = t
        else:
            decay = math.exp(-max(t - self.t_last, 0.0) / self.tau)
            for name in ("sw", "st", "sy", "stt", "sty"):
                setattr(self, name, getattr(self, name) * decay)
        y = x - self.profile.value(t)
        if self.n >= 10:
            lvl = self.level(t)
            r = y - lvl
            if r < -max(self.drop_k * self.spread, self.drop_frac * abs(lvl)):
                b = self.slope()
                self.sw = self.st = self.sy = self.stt = self.sty = 0.0
                self.t_c = t
                # the old slope as a prior: pseudo-points on a line through the new level
                for k in range(-2, 3):
                    u = k * self.tau / 10
                    self._add(u, y + b * u, self.prior_weight / 5)
                reset = True
                self.resets += 1
        if self.n >= 1 and not reset:
            r = y - self.level(t)
            d = max(0.01, 1.0 / self.n)
            self.spread += d * (abs(r) - self.spread)
        self._add(t - self.t_c, y, 1.0)
        if self.n >= 2:
            self.profile.update(t, (x - self.level(t)) - self.profile.value(t))
        self.t_last = t
        self.n += 1
        return reset

    def forecast(self, t: float) -> tuple[float, float, float]:
        """``(mean, low, high)``: point forecast at ``t`` and an approximate 90 % band."""
        a, b, var_b = self._coef()
        mean = a + b * (t - self.t_c) + self.profile.value(t)
        h = t - self.t_last
        sd = math.sqrt(
            self.spread**2 * math.pi / 2 + (var_b * h * h if math.isfinite(var_b) else 0)
        )
        return mean, mean - 1.645 * sd, mean + 1.645 * sd

    def time_to_threshold(self, threshold: float, now: float | None = None) -> ETA:
        """Seconds from ``now`` (default: the last point) until the series reaches ``threshold``."""
        now = self.t_last if now is None else now
        a, b, var_b = self._coef()
        peak = max(self.profile.s) if self.profile.count[0] or any(self.profile.count) else 0.0
        gap = threshold - (a + b * (now - self.t_c) + max(peak, 0.0))
        if gap <= 0:
            return ETA(0.0, 0.0, 0.0)
        se = math.sqrt(var_b) if math.isfinite(var_b) else math.inf
        # where the series sits now is uncertain too (noise around the fitted line): the
        # crossing can come earlier or later by that much headroom
        level_sd = self.spread * math.sqrt(math.pi / 2)
        near, far = max(gap - 1.645 * level_sd, 0.0), gap + 1.645 * level_sd

        def eta(g: float, slope: float) -> float:
            return g / slope if slope > 0 else math.inf

        return ETA(eta(gap, b), eta(near, b + 1.645 * se), eta(far, b - 1.645 * se))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "tau": self.tau,
            "drop_k": self.drop_k,
            "drop_frac": self.drop_frac,
            "prior_weight": self.prior_weight,
            "profile": self.profile.to_dict(),
            "t_c": self.t_c,
            "t_last": self.t_last,
            "sums": [self.sw, self.st, self.sy, self.stt, self.sty],
            "spread": self.spread,
            "n": self.n,
            "resets": self.resets,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrendForecaster:
        """Inverse of :meth:`to_dict`."""
        obj = cls(d["tau"], drop_k=d["drop_k"], drop_frac=d["drop_frac"])
        obj.prior_weight = d["prior_weight"]
        obj.profile = SeasonalProfile.from_dict(d["profile"])
        obj.t_c, obj.t_last = float(d["t_c"]), float(d["t_last"])
        obj.sw, obj.st, obj.sy, obj.stt, obj.sty = (float(v) for v in d["sums"])
        obj.spread, obj.n, obj.resets = float(d["spread"]), int(d["n"]), int(d["resets"])
        return obj
