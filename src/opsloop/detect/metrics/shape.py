"""Shape novelty: distance of the recent sub-sequence to a bounded memory of earlier ones."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from opsloop.detect.metrics.ewm import RobustEWM

__all__ = ["ShapeNovelty"]


class ShapeNovelty:
    """Left nearest-neighbour distance of the last ``window`` points (a streaming discord score).

    The last ``window`` values ``w`` are centred and scaled,
    ``v = (w - mean(w)) / max(std(w), floor * s)`` with ``s`` the slow robust spread of the
    series (:class:`RobustEWM`), so the shape is compared independently of level and of amplitude
    down to a noise floor (a flat stretch in a busy series is a *new* shape, noise in a flat
    series is not). ``level`` adds the window mean as one more coordinate, ``level *
    (mean(w) - m) / s``. The novelty of the current window is::

        d = min_k ||v - v_k|| / sqrt(window)

    over a FIFO memory of the last ``memory`` windows, excluding the ``window`` most recent
    ones (they overlap the current window: trivial matches), computed as
    ``|v_k|^2 - 2 v_k . v + |v|^2`` with the stored norms (one matrix-vector product). Memory
    is ``O(memory * window)``, time the same per point (a fixed bound, vectorised). Until
    ``2 * window`` windows are stored the score is NaN.

    >>> import math
    >>> s = ShapeNovelty(window=8, memory=200)
    >>> for i in range(400):
    ...     s.update(math.sin(i / 3.0))
    >>> s.score(math.sin(400 / 3.0)) < 0.05
    True
    >>> s.score(5.0) > 0.3
    True
    >>> ShapeNovelty.from_dict(s.to_dict()).score(5.0) == s.score(5.0)
    True
    """

    def __init__(
        self,
        window: int = 16,
        memory: int = 1000,
        floor: float = 0.1,
        level: float = 0.0,
    ) -> None:
        if window < 2 or memory < 2 * window or floor <= 0.0 or level < 0.0:
            raise ValueError("need window >= 2, memory >= 2 * window, floor > 0, level >= 0")
        self.window = int(window)
        self.memory = int(memory)
        self.floor = floor
        self.level = level
        self.scale = RobustEWM(alpha=0.01, beta=0.005)
        self.recent: list[float] = []
        dim = self.window + (1 if level > 0.0 else 0)
        self.bank = np.zeros((self.memory, dim))
        self.norms = np.zeros(self.memory)
        self.head = 0
        self.count = 0
        self._last: tuple[int, float, np.ndarray | None] | None = None

    def _vector(self, w: list[float]) -> np.ndarray | None:
        s = self.scale.spread
        if not s > 0.0:
            return None
        n = len(w)
        mu = math.fsum(w) / n
        var = math.fsum((x - mu) * (x - mu) for x in w) / n  # numpy's std is slow at n = 16
        sd = max(math.sqrt(var), self.floor * s)
        v = (np.asarray(w, dtype=float) - mu) / sd
        if self.level > 0.0:
            v = np.append(v, self.level * (mu - self.scale.level) / s)
        return v

    def score(self, x: float) -> float:
        """Novelty of the window ending with ``x`` (no state change); NaN while warming up."""
        if not math.isfinite(x) or len(self.recent) < self.window - 1:
            return math.nan
        usable = self.count - self.window
        if usable < self.window:
            return math.nan
        v = self._vector([*self.recent[len(self.recent) - self.window + 1 :], x])
        # update(x) stores this same vector (normalised with the spread known when x was
        # scored) instead of building it again
        self._last = (self.count, x, v)
        if v is None:
            return math.nan
        if self.count < self.memory:
            d2 = self.norms[:usable] - 2.0 * (self.bank[:usable] @ v)
        else:
            d2 = self.norms - 2.0 * (self.bank @ v)
            # ring buffer: the `window` most recent entries (trivial matches) end at head - 1
            d2[(self.head - 1 - np.arange(self.window)) % self.memory] = np.inf
        best = max(float(d2.min()) + float(np.dot(v, v)), 0.0)
        return math.sqrt(best / self.window)

    def update(self, x: float) -> None:
        """Learn one value (non-finite ignored)."""
        if not math.isfinite(x):
            return
        self.scale.update(x)
        self.recent.append(x)
        if len(self.recent) > self.window:
            del self.recent[0]
        if len(self.recent) == self.window:
            last = self._last
            same = last is not None and last[0] == self.count and last[1] == x
            v = last[2] if same else self._vector(self.recent)
            if v is not None:
                self.bank[self.head] = v
                self.norms[self.head] = float(np.dot(v, v))
                self.head = (self.head + 1) % self.memory
                self.count += 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state."""
        n = min(self.count, self.memory)
        return {
            "window": self.window,
            "memory": self.memory,
            "floor": self.floor,
            "level": self.level,
            "scale": self.scale.to_dict(),
            "recent": list(self.recent),
            "bank": self.bank[:n].tolist() if self.count < self.memory else self.bank.tolist(),
            "head": self.head,
            "count": self.count,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ShapeNovelty:
        """Inverse of :meth:`to_dict`."""
        obj = cls(d["window"], d["memory"], d["floor"], d["level"])
        obj.scale = RobustEWM.from_dict(d["scale"])
        obj.recent = [float(v) for v in d["recent"]]
        rows = d["bank"]
        if rows:
            obj.bank[: len(rows)] = np.asarray(rows, dtype=float)
            for i in range(len(rows)):
                obj.norms[i] = float(np.dot(obj.bank[i], obj.bank[i]))
        obj.head, obj.count = int(d["head"]), int(d["count"])
        return obj
