"""Streaming quantile estimation with the P-square algorithm (Jain & Chlamtac, 1985)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["P2Quantile"]


class P2Quantile:
    """The ``p``-quantile of a stream in O(1) memory (five markers) and O(1) time per value.

    Five markers hold the minimum, the ``p/2``, ``p`` and ``(1+p)/2`` quantiles and the maximum.
    Marker ``i`` has actual position ``n_i`` and desired position ``n'_i`` (which grows by
    ``dn_i = (0, p/2, p, (1+p)/2, 1)_i`` per value); when they are at least 1 apart the marker moves
    one step, its height adjusted by the piecewise-parabolic (P-square) formula::

        q_i += d / (n_{i+1} - n_{i-1}) * ((n_i - n_{i-1} + d) (q_{i+1} - q_i) / (n_{i+1} - n_i)
                                         + (n_{i+1} - n_i - d) (q_i - q_{i-1}) / (n_i - n_{i-1}))

    (linear interpolation if that leaves the neighbours' range). Non-finite values are ignored.

    >>> q = P2Quantile(0.9)
    >>> for i in range(1000):
    ...     q.update(float((i * 7919) % 1000))
    >>> abs(q.value - 900) < 15
    True
    >>> P2Quantile.from_dict(q.to_dict()).value == q.value
    True
    """

    def __init__(self, p: float) -> None:
        if not 0.0 < p < 1.0:
            raise ValueError("p must be in (0, 1)")
        self.p = p
        self.q: list[float] = []
        self.pos = [1.0, 2.0, 3.0, 4.0, 5.0]
        self.want = [1.0, 1.0 + 2 * p, 1.0 + 4 * p, 3.0 + 2 * p, 5.0]
        self.dn = [0.0, p / 2, p, (1 + p) / 2, 1.0]
        self.n = 0

    @property
    def value(self) -> float:
        """Current estimate (exact order statistic for fewer than five values; NaN if none)."""
        if self.n >= 5:
            return self.q[2]
        if not self.q:
            return math.nan
        s = sorted(self.q)
        return s[min(len(s) - 1, int(self.p * len(s)))]

    def update(self, x: float) -> None:
        """Add one value."""
        if not math.isfinite(x):
            return
        self.n += 1
        q = self.q
        if self.n <= 5:
            q.append(x)
            if self.n == 5:
                q.sort()
            return
        if x < q[0]:
            q[0] = x
            k = 0
        elif x >= q[4]:
            q[4] = x
            k = 3
        else:
            k = 0
            while x >= q[k + 1]:
                k += 1
        pos, want = self.pos, self.want
        for i in range(k + 1, 5):
            pos[i] += 1.0
        for i in range(5):
            want[i] += self.dn[i]
        for i in (1, 2, 3):
            d = want[i] - pos[i]
            if (d >= 1.0 and pos[i + 1] - pos[i] > 1.0) or (
                d <= -1.0 and pos[i - 1] - pos[i] < -1.0
            ):
                s = 1.0 if d > 0 else -1.0
                qp = q[i] + s / (pos[i + 1] - pos[i - 1]) * (
                    (pos[i] - pos[i - 1] + s) * (q[i + 1] - q[i]) / (pos[i + 1] - pos[i])
                    + (pos[i + 1] - pos[i] - s) * (q[i] - q[i - 1]) / (pos[i] - pos[i - 1])
                )
                if not q[i - 1] < qp < q[i + 1]:
                    j = i + int(s)
                    qp = q[i] + s * (q[j] - q[i]) / (pos[j] - pos[i])
                q[i] = qp
                pos[i] += s

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "p": self.p,
            "q": list(self.q),
            "pos": list(self.pos),
            "want": list(self.want),
            "n": self.n,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> P2Quantile:
        """Inverse of :meth:`to_dict`."""
        obj = cls(d["p"])
        obj.q = [float(v) for v in d["q"]]
        obj.pos = [float(v) for v in d["pos"]]
        obj.want = [float(v) for v in d["want"]]
        obj.n = int(d["n"])
        return obj
