"""The default streaming metric detector: no per-series tuning, calibrated scores, sparse alarms."""

from __future__ import annotations

import math
from typing import Any

from opsloop.detect.metrics.alarm import EdgeAlarm
from opsloop.detect.metrics.calibrate import TailCalibrator
from opsloop.detect.metrics.seasonal import DAY, WEEK, SeasonalModel

__all__ = ["DefaultMetricDetector"]

_PERIODS: tuple[tuple[str, float, int], ...] = (("day", DAY, 288), ("week", WEEK, 336))


class DefaultMetricDetector:
    """Streaming anomaly detector for one metric series; ``score_one`` then ``learn_one`` per point.

    Model. Competing robust Holt-Winters models (:class:`SeasonalModel`): no season, daily and
    weekly (created once the sampling interval ``dt`` is known and the period holds >= 8 samples).
    The one with the smallest running mean absolute error (seasonal ones need two periods of
    history and must beat the plain one by 5 %) gives the standardised residual
    ``z = (x - x_hat) / s``.

    Statistics. Three views of ``z``, each sensitive to one kind of anomaly::

        a1 = |z|                                   (spikes)
        a2 = |EWMA_0.1(z)| / sqrt(0.1 / 1.9)       (level shifts: EWMA control chart)
        a3 = EWMA_0.05(z^2)                        (spread / pattern changes)

    Calibration. Each ``a_j`` gets a tail probability ``p_j`` from its own
    :class:`TailCalibrator` (peaks over threshold), combined with Bonferroni:
    ``p = min(1, 3 min_j p_j)``; the calibrated score is ``1 - p``.

    Alarms. An :class:`EdgeAlarm` fires on the rising edge of ``1 - p >= 1 - alarm_p`` and damps
    the emitted score until the series has been quiet again, so one incident gives one alarm.

    Non-finite ``t`` or ``x`` score 0 and are not learned.

    >>> import math
    >>> d = DefaultMetricDetector()
    >>> scores = [d.update(600.0 * i, 10.0 + math.sin(i / 10.0)) for i in range(2000)]
    >>> max(scores[500:]) < 0.999
    True
    >>> d.score_one(600.0 * 2000, 50.0) > 0.999
    True
    >>> d.score_one(600.0 * 2000, float("nan"))
    0.0
    """

    def __init__(
        self,
        alarm_p: float = 1e-3,
        refractory: int = 100,
        warmup: int = 50,
    ) -> None:
        self.alarm_p = alarm_p
        self.warmup = warmup
        self.models: dict[str, SeasonalModel] = {"none": SeasonalModel(None, eta=0.002)}
        self.active = "none"
        self.calibrators = [TailCalibrator() for _ in range(3)]
        self.alarm = EdgeAlarm(on=1.0 - alarm_p, off=0.9, refractory=refractory, clear=10)
        self.ewma_z = 0.0
        self.ewma_z2 = 1.0
        self.n = 0
        self.t0 = math.nan
        self.t_last = math.nan
        self.gaps: list[float] = []
        self.dt = math.nan
        self.last_alarm = False

    # -- internals ---------------------------------------------------------------------------
    def _stats(self, t: float, x: float) -> tuple[float, float, float, float]:
        m = self.models[self.active]
        if m.n < 10:
            z = 0.0
        else:
            s = max(m.spread, 1e-9 * (abs(m.level) + 1.0), 1e-12)
            z = min(max(m.residual(t, x) / s, -1e6), 1e6)
        lam1, lam2 = 0.1, 0.05
        e1 = (1 - lam1) * self.ewma_z + lam1 * z
        e2 = (1 - lam2) * self.ewma_z2 + lam2 * z * z
        a1 = abs(z)
        a2 = abs(e1) / math.sqrt(lam1 / (2 - lam1))
        return z, a1, a2, e2

    def _pvalue(self, t: float, x: float) -> float:
        _, a1, a2, a3 = self._stats(t, x)
        c = self.calibrators
        p = min(c[0].pvalue(a1), c[1].pvalue(a2), c[2].pvalue(a3))
        return min(1.0, 3.0 * p)

    def _select(self, t: float) -> None:
        base = self.models["none"]
        best, best_err = "none", base.err
        for name, period, _ in _PERIODS:
            m = self.models.get(name)
            if m is None or t - self.t0 < 2 * period:
                continue
            if m.err * 1.05 < best_err:
                best, best_err = name, m.err * 1.05
        cur = self.models[self.active]
        if best != self.active and cur.err * 0.9 < self.models[best].err:
            return  # hysteresis: switch only for a clear (10 %) improvement
        self.active = best

    # -- public API --------------------------------------------------------------------------
    def calibrated_score(self, t: float, x: float) -> float:
        """``1 - p``: the calibrated (un-gated) anomaly score of ``x`` at ``t``, in [0, 1]."""
        if not (math.isfinite(t) and math.isfinite(x)) or self.n < self.warmup:
            return 0.0
        return 1.0 - self._pvalue(t, x)

    def score_one(self, t: float, x: float) -> float:
        """Gated anomaly score in [0, 1] of ``x`` at time ``t`` (seconds); changes no state."""
        return self.alarm.gate(self.calibrated_score(t, x))

    def learn_one(self, t: float, x: float) -> None:
        """Learn one point (after scoring it); non-finite ``t``/``x`` are ignored."""
        if not (math.isfinite(t) and math.isfinite(x)):
            return
        score = self.calibrated_score(t, x)
        self.last_alarm = self.alarm.step(score)
        if self.n >= self.warmup // 2:
            _, a1, a2, a3 = self._stats(t, x)
            for c, a in zip(self.calibrators, (a1, a2, a3), strict=True):
                c.update(a)
        z, _, _, _ = self._stats(t, x)
        self.ewma_z = 0.9 * self.ewma_z + 0.1 * z
        self.ewma_z2 = 0.95 * self.ewma_z2 + 0.05 * z * z
        for m in self.models.values():
            m.update(t, x)
        if self.n == 0:
            self.t0 = t
        elif math.isnan(self.dt) and t > self.t_last:
            self.gaps.append(t - self.t_last)
            if len(self.gaps) >= 9:
                self.dt = sorted(self.gaps)[len(self.gaps) // 2]
                self.gaps = []
                for name, period, max_bins in _PERIODS:
                    if period / self.dt >= 8:
                        bins = int(min(max_bins, max(4, round(period / self.dt))))
                        self.models[name] = SeasonalModel(
                            period,
                            bins=bins,
                            alpha=min(0.02, max(0.002, 2.0 * self.dt / period)),
                            beta=0.0,
                            gamma=0.2,
                            eta=0.002,
                        )
        self.t_last = t
        self.n += 1
        self._select(t)

    def update(self, t: float, x: float) -> float:
        """``score_one`` then ``learn_one``; returns the score."""
        s = self.score_one(t, x)
        self.learn_one(t, x)
        return s

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state (no pickle)."""
        return {
            "alarm_p": self.alarm_p,
            "warmup": self.warmup,
            "models": {k: m.to_dict() for k, m in self.models.items()},
            "active": self.active,
            "calibrators": [c.to_dict() for c in self.calibrators],
            "alarm": self.alarm.to_dict(),
            "ewma_z": self.ewma_z,
            "ewma_z2": self.ewma_z2,
            "n": self.n,
            "t0": self.t0,
            "t_last": self.t_last,
            "gaps": list(self.gaps),
            "dt": self.dt,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DefaultMetricDetector:
        """Inverse of :meth:`to_dict`."""
        obj = cls(alarm_p=d["alarm_p"], warmup=d["warmup"])
        obj.models = {k: SeasonalModel.from_dict(v) for k, v in d["models"].items()}
        obj.active = d["active"]
        obj.calibrators = [TailCalibrator.from_dict(c) for c in d["calibrators"]]
        obj.alarm = EdgeAlarm.from_dict(d["alarm"])
        obj.ewma_z, obj.ewma_z2 = float(d["ewma_z"]), float(d["ewma_z2"])
        obj.n, obj.t0, obj.t_last = int(d["n"]), float(d["t0"]), float(d["t_last"])
        obj.gaps, obj.dt = [float(g) for g in d["gaps"]], float(d["dt"])
        return obj
