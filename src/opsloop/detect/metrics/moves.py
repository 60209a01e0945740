"""How often a series has made a move at least as extreme as this one: an empirical floor."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["MoveFrequency"]


class MoveFrequency:
    """Empirical frequency of a series' extreme moves (``prev -> x``), in bounded memory.

    A move is a pair of consecutive values ``(a, b)``. Upward, the move ``(prev, x)`` is matched
    by every past move with ``a >= prev`` and ``b >= x`` (it started at least as high and went
    at least as high); downward, by every past move with ``a <= prev`` and ``b <= x``. With
    ``c`` the number of past moves that match and ``m`` the number of moves learned,
    :meth:`floor` is ``c / (m + 1)``, or 0 when none matches (a move beyond all the series has
    done keeps whatever the model says of it).

    That is the empirical (conformal) tail frequency of the move, and it bounds how small a
    p-value for it can honestly be: a spike to a height the series has reached from a level
    as high as this one c times in m steps is at most about c/m rare, however many standard
    deviations it is from the model's prediction. Its use in
    :class:`~opsloop.detect.metrics.DefaultMetricDetector`: the recurring spikes of a bursty
    series (a job every few hours, tweet volumes) stop alarming once they have recurred,
    while a level shift is matched by no past move from its second row on (both values of
    the pair are high), so it keeps its evidence.

    Memory: per direction, the ``k`` moves with the most extreme ``b`` (a new move replaces
    the least extreme one when it is more extreme). For ``x`` at least as extreme as the
    least extreme kept ``b`` the count is exact; below that it is a lower bound (a floor that
    is too low lets the model's p-value stand: the safe side). O(k) per point.

    >>> mf = MoveFrequency(k=8)
    >>> xs = [0.0] * 5 + [20.0] + [0.0] * 5 + [20.0] + [0.0] * 5
    >>> for a, b in zip(xs, xs[1:]):
    ...     mf.learn_one(a, b)
    >>> mf.m, mf.count(0.0, 20.0, up=True), round(mf.floor(0.0, 20.0, up=True), 4)
    (16, 2, 0.1176)
    >>> mf.count(20.0, 20.0, up=True), mf.floor(0.0, 25.0, up=True)
    (0, 0.0)
    >>> mf.count(0.0, -5.0, up=False)
    0
    """

    def __init__(self, k: int = 64) -> None:
        if k < 1:
            raise ValueError("k must be >= 1")
        self.k = k
        # row 0: upward moves (a, b); row 1: downward moves stored negated (-a, -b), so that
        # both rows keep their largest b and match with >=
        self.b = np.zeros((2, k))
        self.a = np.zeros((2, k))
        self.size = [0, 0]
        self.m = 0
        self._least = [-1, -1]  # per full row, the first index of its least extreme b

    def bound(self) -> float:
        """The largest value :meth:`floor` can take now, ``k / (m + 1)``."""
        return self.k / (self.m + 1)

    def count(self, prev: float, x: float, up: bool) -> int:
        """Number of kept past moves at least as extreme as ``prev -> x`` in that direction."""
        d, s = (0, 1.0) if up else (1, -1.0)
        used = self.size[d]
        return int(np.count_nonzero((self.b[d, :used] >= s * x) & (self.a[d, :used] >= s * prev)))

    def floor(self, prev: float, x: float, up: bool) -> float:
        """``c / (m + 1)`` (0 when no past move matches): the move's empirical frequency."""
        c = self.count(prev, x, up)
        return c / (self.m + 1) if c > 0 else 0.0

    def learn_one(self, prev: float, x: float) -> None:
        """Learn the move ``prev -> x`` (both finite)."""
        for d, s in ((0, 1.0), (1, -1.0)):
            used = self.size[d]
            if used < self.k:
                self.b[d, used], self.a[d, used] = s * x, s * prev
                self.size[d] = used + 1
            else:
                i = self._least[d]
                if i < 0:
                    i = self._least[d] = int(np.argmin(self.b[d]))
                if s * x > self.b[d, i]:
                    self.b[d, i], self.a[d, i] = s * x, s * prev
                    self._least[d] = -1  # found again when next needed
        self.m += 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "k": self.k,
            "m": self.m,
            "up": [self.a[0, : self.size[0]].tolist(), self.b[0, : self.size[0]].tolist()],
            "down": [self.a[1, : self.size[1]].tolist(), self.b[1, : self.size[1]].tolist()],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MoveFrequency:
        """Inverse of :meth:`to_dict`."""
        obj = cls(int(d["k"]))
        obj.m = int(d["m"])
        for row, key in ((0, "up"), (1, "down")):
            a, b = d[key]
            if len(a) != len(b) or len(a) > obj.k:
                raise ValueError("malformed MoveFrequency state")
            obj.a[row, : len(a)], obj.b[row, : len(b)] = a, b
            obj.size[row] = len(a)
        return obj
