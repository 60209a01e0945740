"""Seasonality: a periodic phase profile, and a robust Holt-Winters level + trend + season model."""

from __future__ import annotations

import math
from typing import Any

from opsloop.detect.metrics.ewm import MAD_TO_SIGMA

__all__ = ["DAY", "WEEK", "SeasonalModel", "SeasonalProfile"]

DAY = 86400.0
WEEK = 7 * DAY


class SeasonalProfile:
    """Additive profile ``S(t)`` of period ``P`` seconds over ``B`` phase bins, interpolated.

    With ``phi = B * (t mod P) / P``, ``k = floor(phi) mod B`` and ``f = phi - floor(phi)``::

        S(t) = (1 - f) * s[k] + f * s[k + 1]

    ``update(t, e)`` moves the two bins by ``g_k (1 - f) e`` and ``g_{k+1} f e`` towards the target,
    where ``g = max(gamma, 1 / n_bin)``: each bin starts as the running mean of what it saw and then
    forgets at rate ``gamma``. Memory is ``O(B)``, time ``O(1)`` per point.

    >>> p = SeasonalProfile(period=4.0, bins=4, gamma=0.5)
    >>> for t in range(40):
    ...     p.update(float(t), [0.0, 1.0, 0.0, -1.0][t % 4] - p.value(float(t)))
    >>> [round(p.value(t), 2) for t in (40.0, 41.0, 42.0, 43.0, 43.5)]
    [0.0, 1.0, 0.0, -1.0, -0.5]
    """

    def __init__(self, period: float, bins: int, gamma: float = 0.1) -> None:
        if period <= 0 or bins < 2 or not 0.0 < gamma <= 1.0:
            raise ValueError("need period > 0, bins >= 2, 0 < gamma <= 1")
        self.period = float(period)
        self.bins = int(bins)
        self.gamma = gamma
        self.s = [0.0] * self.bins
        self.count = [0.0] * self.bins

    def _pos(self, t: float) -> tuple[int, int, float]:
        phi = self.bins * math.fmod(t, self.period) / self.period
        if phi < 0:
            phi += self.bins
        k = math.floor(phi)
        f = phi - k
        k %= self.bins
        return k, (k + 1) % self.bins, f

    def value(self, t: float) -> float:
        """Profile value at time ``t``."""
        k0, k1, f = self._pos(t)
        return (1.0 - f) * self.s[k0] + f * self.s[k1]

    def visits(self, t: float) -> float:
        """Interpolated number of updates the bins around ``t`` have had."""
        k0, k1, f = self._pos(t)
        return (1.0 - f) * self.count[k0] + f * self.count[k1]

    def update(self, t: float, err: float, gamma: float | None = None) -> None:
        """Move the profile at ``t`` by the error ``err`` (target minus current value), at
        the rate ``gamma`` (default: the profile's)."""
        k0, k1, f = self._pos(t)
        rate = self.gamma if gamma is None else gamma
        for k, w in ((k0, 1.0 - f), (k1, f)):
            if w <= 0.0:
                continue
            self.count[k] += w
            g = max(rate, w / self.count[k])
            self.s[k] += g * w * err

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "period": self.period,
            "bins": self.bins,
            "gamma": self.gamma,
            "s": list(self.s),
            "count": list(self.count),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SeasonalProfile:
        """Inverse of :meth:`to_dict`."""
        obj = cls(d["period"], d["bins"], d["gamma"])
        obj.s = [float(v) for v in d["s"]]
        obj.count = [float(v) for v in d["count"]]
        return obj


class SeasonalModel:
    """Robust damped-trend Holt-Winters: ``x_hat(t) = L + phi T + S(t)`` with a robust spread.

    With the one-step error ``e = x - x_hat`` clipped to ``c = clip(e, -k s, k s)``::

        L <- L + phi T + alpha c        T <- phi T + alpha beta c
        S(t) <- S(t) + gamma (1 - alpha) c          (when a period is set; e on a first visit)
        s <- (1 - delta) s + delta sqrt(pi/2) |c|   E <- (1 - eta) E + eta |e|

    ``E`` (running mean absolute error) lets a caller compare competing periods. Early weights
    are ``1 / n`` (running means), so the model starts from the data, not from zero; with a period,
    the level is held during the first period so that the profile learns the cycle's shape.

    >>> m = SeasonalModel(period=24.0, bins=24)
    >>> for t in range(24 * 20):
    ...     m.update(float(t), 10.0 + (5.0 if t % 24 < 12 else -5.0))
    >>> round(m.predict(24.0 * 20 + 6.0)), round(m.predict(24.0 * 20 + 18.0))
    (15, 5)
    """

    def __init__(
        self,
        period: float | None = None,
        bins: int = 48,
        alpha: float = 0.05,
        beta: float = 0.05,
        phi: float = 0.98,
        gamma: float = 0.1,
        delta: float = 0.02,
        eta: float = 0.01,
        k: float = 3.0,
    ) -> None:
        self.profile = SeasonalProfile(period, bins, gamma) if period else None
        self.alpha, self.beta, self.phi = alpha, beta, phi
        self.delta, self.eta, self.k = delta, eta, k
        self.level = 0.0
        self.trend = 0.0
        self.spread = 0.0
        self.err = 0.0
        self.n = 0
        self.t_first = math.nan

    def predict(self, t: float, horizon_steps: float = 1.0) -> float:
        """Forecast at ``t``, ``horizon_steps`` updates ahead of the last one (damped trend)."""
        if self.n == 0:
            return 0.0
        damp = (
            self.phi * (1.0 - self.phi**horizon_steps) / (1.0 - self.phi) if self.phi < 1 else 1.0
        )
        season = self.profile.value(t) if self.profile is not None else 0.0
        return self.level + damp * self.trend + season

    def residual(self, t: float, x: float) -> float:
        """One-step error ``x - x_hat(t)``."""
        return x - self.predict(t)

    def update(self, t: float, x: float) -> None:
        """Learn one point; non-finite ``t`` or ``x`` are ignored."""
        if not (math.isfinite(t) and math.isfinite(x)):
            return
        self.n += 1
        if self.n == 1:
            self.level = x - (self.profile.value(t) if self.profile is not None else 0.0)
            self.t_first = t
            return
        # residual(t, x), visits(t) and profile.update(t, .) with the phase computed once
        prof = self.profile
        phi = self.phi
        damp = phi * (1.0 - phi**1.0) / (1.0 - phi) if phi < 1 else 1.0
        if prof is not None:
            k0, k1, f = prof._pos(t)
            g = 1.0 - f
            e = x - (self.level + damp * self.trend + (g * prof.s[k0] + f * prof.s[k1]))
        else:
            e = x - (self.level + damp * self.trend + 0.0)
        if self.spread > 0.0 and self.n > 3:
            lim = self.k * self.spread
            c = min(max(e, -lim), lim)
        else:
            c = e
        a = max(self.alpha, 1.0 / self.n)
        if prof is not None and t - self.t_first < prof.period:
            a = 0.0  # first period: hold the level so the profile learns the cycle's shape
        self.level += phi * self.trend + a * c
        self.trend = phi * self.trend + a * self.beta * c
        if prof is not None:
            # A bin's first visit learns the unclipped error: nothing is known there yet.
            first = g * prof.count[k0] + f * prof.count[k1] < 1.0
            err = (1.0 - a) * (e if first else c)
            for k, w in ((k0, g), (k1, f)):
                if w > 0.0:
                    prof.count[k] += w
                    prof.s[k] += max(prof.gamma, w / prof.count[k]) * w * err
        d = max(self.delta, 1.0 / (self.n - 1))
        self.spread = (1.0 - d) * self.spread + d * MAD_TO_SIGMA * abs(c)
        h = max(self.eta, 1.0 / (self.n - 1))
        self.err = (1.0 - h) * self.err + h * abs(e)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "profile": self.profile.to_dict() if self.profile is not None else None,
            "alpha": self.alpha,
            "beta": self.beta,
            "phi": self.phi,
            "delta": self.delta,
            "eta": self.eta,
            "k": self.k,
            "level": self.level,
            "trend": self.trend,
            "spread": self.spread,
            "err": self.err,
            "n": self.n,
            "t_first": self.t_first,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SeasonalModel:
        """Inverse of :meth:`to_dict`."""
        obj = cls(
            None, alpha=d["alpha"], beta=d["beta"], phi=d["phi"], delta=d["delta"], eta=d["eta"]
        )
        obj.k = d["k"]
        obj.profile = SeasonalProfile.from_dict(d["profile"]) if d["profile"] else None
        obj.level, obj.trend, obj.spread = float(d["level"]), float(d["trend"]), float(d["spread"])
        obj.err, obj.n, obj.t_first = float(d["err"]), int(d["n"]), float(d["t_first"])
        return obj
