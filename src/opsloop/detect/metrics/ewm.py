"""Robust exponentially weighted level and spread (Huber-clipped EWM, EW mean abs deviation)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["RobustEWM"]

#: sigma = sqrt(pi / 2) * E|x - mu| for a Gaussian.
MAD_TO_SIGMA = math.sqrt(math.pi / 2.0)


class RobustEWM:
    """Streaming robust level ``m`` and spread ``s`` of a series, O(1) time and memory.

    With the residual ``r = x - m`` clipped to ``c = clip(r, -k s, k s)``::

        m <- m + alpha * c
        s <- (1 - beta) * s + beta * sqrt(pi / 2) * |c|

    so single outliers move neither estimate by more than ``alpha k s`` (Huber), while a lasting
    shift makes ``s`` grow geometrically and the level follows. For the first ``1 / alpha``
    (resp. ``1 / beta``) points the weights are ``1 / n``: an ordinary running mean, so the start
    is not biased towards the first value. Non-finite inputs are ignored.

    >>> e = RobustEWM(alpha=0.1, beta=0.1)
    >>> for x in [10.0, 12.0, 8.0, 11.0, 9.0] * 20:
    ...     e.update(x)
    >>> abs(e.level - 10.0) < 0.5, 1.0 < e.spread < 2.5
    (True, True)
    >>> e.update(float("nan")); e.n
    100
    >>> RobustEWM.from_dict(e.to_dict()).to_dict() == e.to_dict()
    True
    """

    def __init__(self, alpha: float = 0.05, beta: float = 0.02, k: float = 3.0) -> None:
        if not (0.0 < alpha <= 1.0 and 0.0 < beta <= 1.0 and k > 0.0):
            raise ValueError("need 0 < alpha, beta <= 1 and k > 0")
        self.alpha = alpha
        self.beta = beta
        self.k = k
        self.level = 0.0
        self.spread = 0.0
        self.n = 0

    def residual(self, x: float) -> float:
        """``x - level`` (the level is 0 before the first update)."""
        return x - self.level

    def update(self, x: float) -> None:
        """Learn one value; NaN/inf are ignored."""
        if not math.isfinite(x):
            return
        self.n += 1
        if self.n == 1:
            self.level = x
            return
        r = x - self.level
        if self.spread > 0.0 and self.n > 3:
            lim = self.k * self.spread
            c = min(max(r, -lim), lim)
        else:
            c = r
        a = max(self.alpha, 1.0 / self.n)
        b = max(self.beta, 1.0 / (self.n - 1))
        self.level += a * c
        self.spread = (1.0 - b) * self.spread + b * MAD_TO_SIGMA * abs(c)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "alpha": self.alpha,
            "beta": self.beta,
            "k": self.k,
            "level": self.level,
            "spread": self.spread,
            "n": self.n,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RobustEWM:
        """Inverse of :meth:`to_dict`."""
        obj = cls(alpha=d["alpha"], beta=d["beta"], k=d["k"])
        obj.level, obj.spread, obj.n = float(d["level"]), float(d["spread"]), int(d["n"])
        return obj
