"""Tail calibration: any raw anomaly statistic to a tail probability (peaks over threshold)."""

from __future__ import annotations

import math
from typing import Any

from opsloop.detect.metrics.quantile import P2Quantile

__all__ = ["TailCalibrator", "gpd_pvalue"]


def gpd_pvalue(a: float, u: float, tail: float, m: float, v: float) -> float:
    """``tail (1 + xi (a - u) / sigma)^(-1 / xi)``: the fitted tail above ``u`` (``a > u``).

    ``xi`` and ``sigma`` by the method of moments from the exceedances' mean ``m`` and variance
    ``v`` (see :class:`TailCalibrator`); ``xi < 1e-6`` is the exponential limit.
    """
    if v <= 0.0 or m <= 0.0:
        xi, sigma = 0.0, max(m, 1e-12)
    else:
        r = m * m / v
        xi = min(max(0.5 * (1.0 - r), 0.0), 0.5)
        sigma = max(0.5 * m * (r + 1.0) if xi > 0.0 else m, 1e-12)
    y = (a - u) / sigma
    logp = -y if xi < 1e-6 else -math.log1p(xi * y) / xi
    return max(tail * math.exp(logp), 1e-300)


class TailCalibrator:
    """Streaming, forgetting ``P(A >= a)`` for a raw statistic ``A``, extrapolated past the data.

    Peaks over threshold (as in SPOT, Siffer et al. 2017). ``u`` tracks the ``q``-quantile of
    ``A`` and ``med`` its median: P-square over the first ``init`` values, then stochastic
    approximation with a step proportional to the running spread ``d`` of ``A`` around ``u``::

        u <- u + rho d (1[a > u] - (1 - q))        med <- med + rho d (1[a > med] - 1/2)

    Exceedances ``y = a - u`` feed exponentially weighted (rate ``lam``) mean ``m`` and variance
    ``v``, from which a generalised Pareto tail is fitted by the method of moments (shape clipped
    to ``[0, 0.5]``)::

        xi = (1 - m^2 / v) / 2        sigma = m (m^2 / v + 1) / 2
        P(A >= a) = (1 - q) (1 + xi (a - u) / sigma)^(-1 / xi)      for a > u

    Below ``u`` the probability is interpolated between ``med`` (``1/2``) and ``u`` (``1 - q``).
    Until ``min_exceedances`` exceedances have been seen, ``pvalue`` returns 1. Memory O(1).

    Stale quantiles. The step above moves ``u`` down by only ``rho d (1 - q)`` per value, so an
    ``u`` inflated by a wild start (a model still converging, a transient) would take about
    ``1 / (rho (1 - q))`` values (5,000 at ``q = 0.99``) per e-fold to come down, blind to
    everything below it meanwhile. A right ``q``-quantile goes ``m`` values unexceeded with
    probability ``q^m``; after ``m = ceil(5 / (1 - q))`` of them (``q^m ~ e^-5 ~ 0.7 %``) ``u``
    is taken as stale and reset to the largest value seen since the last exceedance (an upper
    estimate of the quantile, so the reset errs on the quiet side)::

        u <- max(a since the last a > u)        med <- min(med, u)

    The fitted tail (``m``, ``v``) is kept.

    >>> import random
    >>> rng = random.Random(1)
    >>> c = TailCalibrator()
    >>> for _ in range(20000):
    ...     c.update(rng.expovariate(1.0))
    >>> p = c.pvalue(math.log(1000.0))  # exact: 1e-3
    >>> 3e-4 < p < 3e-3, c.pvalue(0.0) == 1.0
    (True, True)
    """

    def __init__(
        self,
        q: float = 0.95,
        min_exceedances: int = 10,
        init: int = 100,
        rho: float = 0.02,
        lam: float = 0.01,
    ) -> None:
        self.q = q
        self.min_exceedances = min_exceedances
        self.init = init
        self.rho = rho
        self.lam = lam
        self.p2_upper: P2Quantile | None = P2Quantile(q)
        self.p2_median: P2Quantile | None = P2Quantile(0.5)
        self.u = math.nan
        self.med = math.nan
        self.d = 0.0
        self.n = 0
        self.ne = 0
        self.mean = 0.0
        self.var = 0.0
        self.stale = 0  # values since the last exceedance (after the P-square start)
        self.stale_max = -math.inf  # the largest of them
        self.stale_after = math.ceil(5.0 / (1.0 - q))

    def pvalue(self, a: float) -> float:
        """Estimated ``P(A >= a)`` in ``(0, 1]``."""
        if not math.isfinite(a) or self.ne < self.min_exceedances:
            return 1.0
        u, med = self.u, self.med
        tail = 1.0 - self.q
        if a <= u:
            if a <= med or u <= med:
                return 1.0 if a <= med else tail
            return 0.5 + (tail - 0.5) * (a - med) / (u - med)
        return gpd_pvalue(a, u, tail, self.mean, self.var)

    def update(self, a: float) -> None:
        """Learn one value of the statistic (non-finite ignored)."""
        if not math.isfinite(a):
            return
        self.n += 1
        if self.p2_upper is not None and self.p2_median is not None:
            self.p2_upper.update(a)
            self.p2_median.update(a)
            self.u, self.med = self.p2_upper.value, self.p2_median.value
            if self.n >= self.init:
                self.p2_upper = self.p2_median = None
        else:
            step = self.rho * self.d
            self.u += step * ((1.0 if a > self.u else 0.0) - (1.0 - self.q))
            self.med += step * ((1.0 if a > self.med else 0.0) - 0.5)
        self.d = abs(a - self.u) if self.n == 1 else self.d + 0.01 * (abs(a - self.u) - self.d)
        if self.n >= 5 and a > self.u:
            y = a - self.u
            self.ne += 1
            w = max(self.lam, 1.0 / self.ne)
            diff = y - self.mean
            self.mean += w * diff
            self.var = (1.0 - w) * (self.var + w * diff * diff)
        if self.p2_upper is None:
            if a > self.u:
                self.stale, self.stale_max = 0, -math.inf
            else:
                self.stale += 1
                if a > self.stale_max:
                    self.stale_max = a
                if self.stale >= self.stale_after:
                    self.u = self.stale_max
                    if self.med > self.u:
                        self.med = self.u
                    self.stale, self.stale_max = 0, -math.inf

    def state(self) -> tuple[float, float, float, int, int, float, float, int, float]:
        """``(u, med, d, n, ne, mean, var, stale, stale_max)``: the learnt state, for inlined
        loops (``DefaultMetricDetector.score_many``); :meth:`set_state` puts it back."""
        return (self.u, self.med, self.d, self.n, self.ne, self.mean, self.var, self.stale,
                self.stale_max)  # fmt: skip

    def set_state(self, s: tuple[float, float, float, int, int, float, float, int, float]) -> None:
        """Inverse of :meth:`state`."""
        (self.u, self.med, self.d, self.n, self.ne, self.mean, self.var, self.stale,
         self.stale_max) = s  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "q": self.q,
            "min_exceedances": self.min_exceedances,
            "init": self.init,
            "rho": self.rho,
            "lam": self.lam,
            "p2_upper": self.p2_upper.to_dict() if self.p2_upper is not None else None,
            "p2_median": self.p2_median.to_dict() if self.p2_median is not None else None,
            "u": self.u,
            "med": self.med,
            "d": self.d,
            "n": self.n,
            "ne": self.ne,
            "mean": self.mean,
            "var": self.var,
            "stale": self.stale,
            "stale_max": self.stale_max if math.isfinite(self.stale_max) else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TailCalibrator:
        """Inverse of :meth:`to_dict`."""
        obj = cls(d["q"], d["min_exceedances"], d["init"], d["rho"], d["lam"])
        obj.p2_upper = P2Quantile.from_dict(d["p2_upper"]) if d["p2_upper"] else None
        obj.p2_median = P2Quantile.from_dict(d["p2_median"]) if d["p2_median"] else None
        obj.u, obj.med, obj.d = float(d["u"]), float(d["med"]), float(d["d"])
        obj.n, obj.ne = int(d["n"]), int(d["ne"])
        obj.mean, obj.var = float(d["mean"]), float(d["var"])
        obj.stale = int(d.get("stale", 0))  # (absent from snapshots before stale resets)
        m = d.get("stale_max")
        obj.stale_max = -math.inf if m is None else float(m)
        return obj
