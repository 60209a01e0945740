"""The pace of the last hour, restarted when the pace changes (a disk that starts filling fast)."""

from __future__ import annotations

import math
from typing import Any

from opsloop.detect.metrics.eta import ETA

__all__ = ["RecentTrend"]


class RecentTrend:
    """Exponentially weighted least-squares trend of the last ``tau`` seconds, with restarts.

    The fit is ``x ~ a + b (t - t_ref)`` with weights ``exp(-(t_now - t_i) / tau)`` (running
    sums, O(1) per point). Each new point's residual against the fit's prediction,
    ``r = x - (a + b (t - t_ref))``, feeds a one-sided CUSUM ``g <- max(0, g + r / s - k / 4)``
    with ``s`` the fit's mean absolute residual (memory ``tau``, not updated inside a run). When
    ``g >= k`` after at least four points of run, the last three of them ``k / 4`` spreads up or
    more, the fit restarts on the run's points alone: the pace before a change says nothing
    about the pace after it, and a fit with an hour's memory would otherwise take most of an
    hour to see that a disk now fills in minutes.

    ``eta(threshold, now)`` is the crossing if the pace goes on, ``(threshold - level) / b``,
    with the interval of ``b -+ 1.645 sd(b)`` (``sd(b)^2 = s^2 (pi / 2) / (sum w var(u))``,
    open at the far end when ``b`` is not significantly positive). It answers only when the
    crossing comes within ``reach * tau`` (an hour's pace says little about days ahead) and
    ``None`` otherwise, or before ten points' weight, or when the fit does not rise.

    >>> rt = RecentTrend(tau=600.0)
    >>> for i in range(360):  # an hour flat at 60 %, 10-second samples
    ...     rt.update(10.0 * i, 60.0 + 0.01 * (i % 3))
    >>> rt.eta(95.0, 3590.0) is None
    True
    >>> for i in range(360, 390):  # then 2.5 % a minute for five minutes
    ...     rt.update(10.0 * i, 60.0 + 2.5 * (i - 359) / 6)
    >>> rt.restarts
    1
    >>> round(rt.eta(95.0, 3890.0).seconds / 60, 1)  # 72.5 % now: 9 minutes to 95 %
    9.0
    """

    def __init__(self, tau: float = 3600.0, k: float = 8.0, reach: float = 4.0) -> None:
        if not (tau > 0.0 and k > 0.0 and reach > 0.0):
            raise ValueError("need tau, k and reach > 0")
        self.tau, self.k, self.reach = tau, k, reach
        self.t_ref = math.nan
        self.t_last = math.nan
        self.sums = [0.0] * 5  # [w, u, x, uu, ux], u = t - t_ref
        self.spread = 0.0
        self.n = 0
        self.g = 0.0
        self.streak = 0
        self.run = [0.0] * 5  # the run's own (unweighted) sums
        self.restarts = 0
        self._last_x = 0.0

    def _fit(self) -> tuple[float, float, float, float] | None:
        """``(a, b, w, var_u)`` of the weighted fit, ``None`` while it is degenerate."""
        w, su, sx, suu, sux = self.sums
        if w <= 0.0:
            return None
        mu, mx = su / w, sx / w
        vu = suu / w - mu * mu
        if vu <= 1e-9:
            return None
        b = (sux / w - mu * mx) / vu
        return mx - b * mu, b, w, vu

    def update(self, t: float, x: float) -> None:
        """Learn one point (non-finite ignored)."""
        if not (math.isfinite(t) and math.isfinite(x)):
            return
        if self.n == 0:
            self.t_ref = t
        else:
            decay = math.exp(-max(t - self.t_last, 0.0) / self.tau)
            self.sums = [v * decay for v in self.sums]
        u = t - self.t_ref
        restarted = False
        fit = self._fit() if self.n >= 10 else None
        if fit is not None:
            a, b, _, _ = fit
            r = x - (a + b * u)
            s = max(self.spread, 1e-9 * (abs(x) + 1.0))
            self.streak = self.streak + 1 if r >= 0.25 * self.k * s else 0
            self.g = max(0.0, self.g + r / s - self.k / 4)
            if self.g > 0.0:
                for i, v in enumerate((1.0, u, x, u * u, u * x)):
                    self.run[i] += v
            else:
                self.run = [0.0] * 5
                alpha = max(1.0 - math.exp(-max(t - self.t_last, 0.0) / self.tau), 0.01)
                self.spread += alpha * (abs(r) - self.spread)
            if self.g >= self.k and self.run[0] >= 4 and self.streak >= 3:
                self.sums = list(self.run)  # (this point is among them)
                self.g, self.streak, self.run = 0.0, 0, [0.0] * 5
                self.restarts += 1
                restarted = True
        elif self.n >= 1:
            # warm-up: the spread of first differences, a stand-in until the fit stands
            alpha = 1.0 / (self.n + 1)
            self.spread += alpha * (abs(x - self._last_x) - self.spread)
        if not restarted:
            for i, v in enumerate((1.0, u, x, u * u, u * x)):
                self.sums[i] += v
        self._last_x = x
        self.t_last = t
        self.n += 1

    def _standing_fit(self) -> tuple[float, float, float] | None:
        """``(a, b, var_b)``, ``var_b = s^2 (pi / 2) / (sum w var(u))``; ``None`` while the
        fit is degenerate or has under ten points' weight."""
        fit = self._fit()
        if fit is None or fit[2] < 10.0:
            return None
        a, b, w, vu = fit
        return a, b, self.spread**2 * math.pi / 2 / (w * vu)

    def eta(self, threshold: float, now: float) -> ETA | None:
        """:class:`~opsloop.detect.metrics.eta.ETA` of the crossing at this pace (see the
        class), or ``None``."""
        fit = self._standing_fit()
        if fit is None:
            return None
        a, b, var_b = fit
        if not b > 0.0:
            return None
        gap = threshold - (a + b * (now - self.t_ref))
        if gap <= 0.0:
            return ETA(0.0, 0.0, 0.0, "recent")
        point = gap / b
        if point > self.reach * self.tau:
            return None
        sd_b = math.sqrt(var_b)
        slow = b - 1.645 * sd_b
        high = gap / slow if slow > 0.0 else math.inf
        return ETA(point, gap / (b + 1.645 * sd_b), high, "recent")

    def forecast(self, t: float) -> tuple[float, float, float] | None:
        """``(mean, low, high)`` at ``t`` if the pace goes on: ``a + b (t - t_ref)`` and its
        90 % band ``-+1.645 sqrt(s^2 pi / 2 + sd(b)^2 h^2)``, ``h = t - t_last`` (a point's
        scatter and the slope's error, the two parts of :meth:`eta`'s interval); ``None``
        while the fit is degenerate or has under ten points' weight."""
        fit = self._standing_fit()
        if fit is None:
            return None
        a, b, var_b = fit
        mean = a + b * (t - self.t_ref)
        h = max(t - self.t_last, 0.0)
        half = 1.645 * math.sqrt(self.spread**2 * math.pi / 2 + var_b * h * h)
        return mean, mean - half, mean + half

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "tau": self.tau,
            "k": self.k,
            "reach": self.reach,
            "t_ref": self.t_ref,
            "t_last": self.t_last,
            "sums": list(self.sums),
            "spread": self.spread,
            "n": self.n,
            "g": self.g,
            "streak": self.streak,
            "run": list(self.run),
            "restarts": self.restarts,
            "last_x": self._last_x,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RecentTrend:
        """Inverse of :meth:`to_dict`."""
        obj = cls(d["tau"], d["k"], d["reach"])
        obj.t_ref, obj.t_last = float(d["t_ref"]), float(d["t_last"])
        obj.sums = [float(v) for v in d["sums"]]
        obj.spread, obj.n, obj.g = float(d["spread"]), int(d["n"]), float(d["g"])
        obj.streak, obj.restarts = int(d["streak"]), int(d["restarts"])
        obj.run = [float(v) for v in d["run"]]
        obj._last_x = float(d["last_x"])
        return obj
