"""Frequency anomalies of log templates: bursts and silences per time window.

Math. Time is cut into aligned windows of ``window`` seconds. For each template ``k`` the detector
counts ``x`` lines per window and keeps exponentially weighted statistics of past windows (weight
``alpha``): the mean ``mu``, the variance ``s2`` (``d = x - mu; mu += alpha d;
s2 = (1 - alpha)(s2 + alpha d^2)``) and the presence rate ``q`` (EWMA of ``x > 0``). When a window
closes, after ``min_windows`` windows of history:

* **burst** if ``z = (x - mu) / sqrt(max(s2, mu, var_floor)) >= z_threshold`` and
  ``x - mu >= min_excess``; the variance is floored by the mean (Poisson: var = mean) so a rare
  template needs a real excess; ``score = z``.
* **silence** if ``x = 0`` and the template was regular, recently and in the long run:
  ``q >= regularity`` and ``Q >= long_regularity``, ``Q`` the presence rate at the slow weight
  ``alpha / 10`` (a heartbeat that stops), and its counts make an empty window improbable:
  ``p0 = Phi((0.5 - mu) / sqrt(max(s2', 0.01))) < silence_p`` (normal approximation with the
  template's own variance, ``s2' = s2 / (1 - (1 - alpha)^n)`` corrected for its start at 0
  after ``n`` windows: a heartbeat, one line a window and ``s2`` near 0, has ``p0`` near 0;
  Poisson traffic of 3 lines a window, ``s2`` near 3, has ``p0`` about 0.06, and indeed
  ``e^-3 = 0.05`` of its windows are empty). ``score = -log10(max(p0, 1 - Q, 1e-3))``, the
  surprisal in decades of an empty window. ``q`` alone remembers about ten windows: a template
  missing from one window in twenty is often present ten times in a row, and its expected
  empty windows were alarms; ``Q`` (about a hundred windows) knows it misses 5 %.

Late lines. A line whose window closed at most ``max_lateness`` windows ago is counted in the
open window (a shipper a few seconds behind shifts a count, it loses none); an older one is not
counted at all (``late`` counts it): that window's rate is final, and adding a backlog to the
open window would make a burst out of a delay. The caller's clock for :meth:`advance` must
therefore be the stream's event time - a replay or backfill of old lines must not be advanced by
the wall clock (``LogIngest`` extrapolates the newest event time seen).

The statistics are updated after scoring with ``x`` winsorised at ``mu + z_threshold * sd`` so a
burst does not become the baseline at once. One silence raises one alert: the empty window lowers
``q`` below ``regularity``. Memory: one small record per template; a template whose mean and
presence decay below ``forget_below`` is forgotten.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from opsloop.detect.anomaly import Anomaly, to_epoch

__all__ = ["FrequencyDetector"]

_SOURCE = "logs.frequency"


class FrequencyDetector:
    """Per-template window counts against an EWMA baseline: bursts (z-score) and silences.

    >>> d = FrequencyDetector(window=10.0, min_windows=3)
    >>> out = []
    >>> for w in range(8):
    ...     out += d.learn_one("heartbeat", w * 10.0 + 1)
    ...     if w % 2:
    ...         out += d.learn_one("error", w * 10.0 + 2)
    >>> for _ in range(30):
    ...     out += d.learn_one("error", 85.0)
    >>> out += d.advance(100.0)
    >>> [(a.kind, a.key, a.time) for a in out]
    [('silence', 'heartbeat', 90.0), ('burst', 'error', 90.0)]
    """

    def __init__(
        self,
        window: float = 60.0,
        alpha: float = 0.1,
        z_threshold: float = 4.0,
        min_excess: float = 3.0,
        min_windows: int = 10,
        regularity: float = 0.95,
        long_regularity: float = 0.99,
        silence_p: float = 0.01,
        var_floor: float = 0.25,
        max_gap_windows: int = 10_000,
        forget_below: float = 1e-3,
        max_lateness: int = 2,
    ) -> None:
        if window <= 0 or not 0 < alpha <= 1 or min_windows < 1 or max_lateness < 0:
            raise ValueError(
                "window > 0, 0 < alpha <= 1, min_windows >= 1 and max_lateness >= 0 are required"
            )
        self.window = float(window)
        self.alpha = float(alpha)
        self.z_threshold = float(z_threshold)
        self.min_excess = float(min_excess)
        self.min_windows = int(min_windows)
        self.regularity = float(regularity)
        self.long_regularity = float(long_regularity)
        self.silence_p = float(silence_p)
        self.var_floor = float(var_floor)
        self.max_gap_windows = int(max_gap_windows)
        self.forget_below = float(forget_below)
        self.max_lateness = int(max_lateness)
        self.late = 0  # lines more than max_lateness windows late: not counted
        # template -> [mean, var, presence, windows seen, long-run presence]
        self._stats: dict[str, list[float]] = {}
        self._current: dict[str, int] = {}
        self._index: int | None = None

    def learn_one(self, template_id: str, timestamp: float | datetime) -> list[Anomaly]:
        """Count one line; returns the anomalies of the windows that this time closes."""
        index = math.floor(to_epoch(timestamp) / self.window)
        out: list[Anomaly] = []
        if self._index is None:
            self._index = index
        elif index > self._index:
            out = self._close_until(index)
        elif index < self._index - self.max_lateness:
            self.late += 1  # its window's rate is final
            return out
        # a line at most max_lateness windows late is counted in the open window
        self._current[template_id] = self._current.get(template_id, 0) + 1
        return out

    def advance(self, timestamp: float | datetime) -> list[Anomaly]:
        """Let time pass without lines: closes every window ending at or before ``timestamp``."""
        index = math.floor(to_epoch(timestamp) / self.window)
        if self._index is None or index <= self._index:
            return []
        return self._close_until(index)

    def _close_until(self, index: int) -> list[Anomaly]:
        assert self._index is not None
        out: list[Anomaly] = []
        steps = min(index - self._index, self.max_gap_windows)
        for _ in range(steps):
            out += self._close_window(self._index)
            self._index += 1
        self._index = index
        return out

    def _close_window(self, index: int) -> list[Anomaly]:
        out: list[Anomaly] = []
        counts, self._current = self._current, {}
        for k in counts:
            if k not in self._stats:
                self._stats[k] = [float(counts[k]), 0.0, 1.0, 0.0, 1.0]
        end = (index + 1) * self.window
        forget = []
        for k, st in self._stats.items():
            x = float(counts.get(k, 0))
            mu, s2, q, n, slow = st
            sd = math.sqrt(max(s2, mu, self.var_floor))
            if n >= self.min_windows:
                z = (x - mu) / sd
                details = {
                    "window_start": index * self.window,
                    "window_end": end,
                    "count": x,
                    "mean": mu,
                    "std": sd,
                    "presence": q,
                    "long_presence": slow,
                    "z": z,
                }
                if z >= self.z_threshold and x - mu >= self.min_excess:
                    ev = [f"{k}: {x:.0f} lines in the window, baseline {mu:.2f} +/- {sd:.2f}"]
                    out.append(Anomaly(_SOURCE, "burst", z, end, k, ev, details))
                elif (
                    x == 0
                    and q >= self.regularity
                    and slow >= self.long_regularity
                    and (p0 := _empty_chance(mu, s2 / (1.0 - (1.0 - self.alpha) ** n)))
                    < self.silence_p
                ):
                    score = -math.log10(max(p0, 1.0 - slow, 1e-3))
                    ev = [f"{k}: no line in the window, present in {slow:.1%} of windows before"]
                    out.append(Anomaly(_SOURCE, "silence", score, end, k, ev, details))
                x = min(x, mu + self.z_threshold * sd)
            present = 1.0 if x > 0 else 0.0
            if n == 0:
                st[:] = [x, 0.0, present, 1.0, present]
                continue
            d = x - mu
            mu += self.alpha * d
            s2 = (1.0 - self.alpha) * (s2 + self.alpha * d * d)
            q += self.alpha * (present - q)
            slow += 0.1 * self.alpha * (present - slow)
            st[:] = [mu, s2, q, n + 1, slow]
            if mu < self.forget_below and q < self.forget_below:
                forget.append(k)
        for k in forget:
            del self._stats[k]
        return out

    def __len__(self) -> int:
        return len(self._stats)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state (parameters, per-template statistics, the open window)."""
        return {
            "params": {
                "window": self.window,
                "alpha": self.alpha,
                "z_threshold": self.z_threshold,
                "min_excess": self.min_excess,
                "min_windows": self.min_windows,
                "regularity": self.regularity,
                "long_regularity": self.long_regularity,
                "silence_p": self.silence_p,
                "var_floor": self.var_floor,
                "max_gap_windows": self.max_gap_windows,
                "forget_below": self.forget_below,
                "max_lateness": self.max_lateness,
            },
            "late": self.late,
            "stats": {k: list(v) for k, v in self._stats.items()},
            "current": dict(self._current),
            "index": self._index,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FrequencyDetector:
        """Inverse of :meth:`to_dict`."""
        det = cls(**d["params"])  # (snapshots before max_lateness: the default)
        det.late = int(d.get("late", 0))
        # (statistics from before the long-run presence: it starts at the short one)
        det._stats = {k: [float(x) for x in (v if len(v) == 5 else [*v, v[2]])]
                      for k, v in d["stats"].items()}  # fmt: skip
        det._current = {k: int(v) for k, v in d["current"].items()}
        det._index = d["index"]
        return det


def _empty_chance(mean: float, var: float) -> float:
    """``P(count < 0.5)`` for a count of this mean and variance (normal approximation)."""
    return 0.5 * math.erfc((mean - 0.5) / math.sqrt(2.0 * max(var, 0.01)))
