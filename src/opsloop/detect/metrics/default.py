"""The default streaming metric detector: no per-series tuning, calibrated scores, sparse alarms."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from opsloop.detect.metrics.alarm import EdgeAlarm
from opsloop.detect.metrics.calibrate import TailCalibrator
from opsloop.detect.metrics.moves import MoveFrequency
from opsloop.detect.metrics.seasonal import DAY, WEEK, SeasonalModel
from opsloop.detect.metrics.shape import ShapeNovelty

__all__ = ["DefaultMetricDetector"]

_PERIODS: tuple[tuple[str, float, int], ...] = (("day", DAY, 288), ("week", WEEK, 336))
_N_VIEWS = 4
_LAM1, _LAM2 = 0.1, 0.05
_A2_SCALE = math.sqrt(_LAM1 / (2 - _LAM1))
_EWMA_CLIP = 6.0  # Huber limit of the charts' input (steady.EWMA_CLIP must equal it)
_MOVES_KEPT = 64
_GAMMA = 0.2  # what a seasonal bin learns per period, at any sampling interval


def _gamma_per_point(gamma: float, per_bin: float) -> float:
    """The per-point rate at which a bin visited ``per_bin`` times a period learns ``gamma``
    per period: ``1 - (1 - gamma) ** (1 / per_bin)`` (``gamma`` when a visit is one point
    or fewer). A 30-minute weekly bin sampled every 5 minutes, or a 5-minute daily bin every
    15 seconds, otherwise forgets its last period within one visit."""
    if per_bin <= 1.0:
        return gamma
    return 1.0 - (1.0 - gamma) ** (1.0 / per_bin)


def _compiled() -> bool:
    """Whether the steady-state loop is compiled (imports numba, once, on first use)."""
    from opsloop.detect.metrics import steady

    return steady.COMPILED


class DefaultMetricDetector:
    """Streaming anomaly detector for one metric series; ``score_one`` then ``learn_one`` per point.

    Model. Competing robust Holt-Winters models (:class:`SeasonalModel`): no season, daily and
    weekly (created once the sampling interval ``dt`` is known and the period holds >= 8 samples).
    The one with the smallest running mean absolute error (seasonal ones need two periods of
    history and must beat the plain one by 5 %) gives the standardised residual
    ``z = (x - x_hat) / s``. A seasonal bin learns 20 % of its error per period whatever the
    sampling interval (per point ``1 - 0.8 ** (1 / v)`` for ``v`` points a visit).

    Statistics. Four views, each sensitive to one kind of anomaly::

        a1 = |z|                                   (spikes)
        a2 = |EWMA_0.1(zc)| / sqrt(0.1 / 1.9)      (level shifts: EWMA control chart)
        a3 = EWMA_0.05(zc^2)                       (spread changes)
        a4 = ShapeNovelty(x)                       (shape: distance of the last 16 points,
                                                    z-normalised, to the 1000 windows before)

    The charts read ``zc``, ``z`` clipped to +-6 (Huber's robust EWMA chart): one point,
    however wild, moves the level chart by at most 0.6 and the spread chart by 1.8, so they
    answer persistent change (many points a little off) and leave single points to the spike
    view, instead of echoing every spike for the next dozen points.

    Calibration. Each ``a_j`` gets a tail probability ``p_j`` from its own
    :class:`TailCalibrator` (peaks over the 99 % quantile, memory of about 500 exceedances, a
    quantile left unexceeded for 500 points reset: a wild start does not blind it),
    combined with Bonferroni, ``p = min(1, 4 min_j p_j)``. Familiar moves: while the plain
    model is active, ``p_1`` is at least the empirical frequency with which the series has
    already moved from at least as extreme a value to at least as extreme a value
    (:class:`MoveFrequency`, ``c / (m + 1)`` over the 64 most extreme moves each way): a
    spike to a height the series keeps reaching is no rarer than it has been, however far it
    is from the level, while a new height, or the second row of a level shift, keeps the
    model's p. (Under a seasonal model a familiar value can be wrong for its phase: no
    floor.) Alpha spending: a stream that has
    run for ``n`` points has had ``n`` chances of a false alarm, so ``p`` is multiplied by
    ``max(1, n / spend)`` — the expected number of false alarms grows like ``log n`` instead of
    ``n``. The calibrated score is ``1 - p``.

    Gating and alarms. A gate (:class:`EdgeAlarm` at ``1 - p >= 1 - gate_p``) damps the emitted
    score after each rising edge until the series has been quiet again, so one incident emits
    one high score, whatever threshold a consumer applies; a ``p`` at least ``escalate`` (10)
    times smaller than the last edge's passes the gate and is a new edge (an outage that
    follows a noise alarm is not silenced by it). Alarms (``last_alarm``) are a second,
    stricter :class:`EdgeAlarm` at ``1 - p >= 1 - alarm_p``, escalating the same way.

    Non-finite ``t`` or ``x`` score 0 and are not learned. :meth:`score_many` scores a whole
    batch with the same recurrence, bit for bit, several times faster.

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
        gate_p: float = 1e-2,
        refractory: int = 100,
        warmup: int = 50,
        spend: float = 4000.0,
        shape_window: int = 16,
        shape_memory: int = 1000,
        escalate: float = 10.0,
    ) -> None:
        if not (
            0.0 < alarm_p < 1.0
            and 0.0 < gate_p < 1.0
            and refractory >= 0
            and warmup >= 2
            and spend >= 0.0
            and (escalate == 0.0 or escalate > 1.0)
        ):
            raise ValueError(
                "need 0 < alarm_p, gate_p < 1, refractory >= 0, warmup >= 2, spend >= 0, "
                "escalate 0 (off) or > 1"
            )
        self.alarm_p = alarm_p
        self.gate_p = gate_p
        self.refractory = refractory
        self.warmup = warmup
        self.spend = spend
        self.escalate = escalate
        self.models: dict[str, SeasonalModel] = {"none": SeasonalModel(None, eta=0.002)}
        self.active = "none"
        self.shape = ShapeNovelty(shape_window, shape_memory)
        self.calibrators = [TailCalibrator(q=0.99, lam=0.002) for _ in range(_N_VIEWS)]
        self.gate = EdgeAlarm(
            on=1.0 - gate_p, off=0.9, refractory=refractory, clear=10, escalate=escalate
        )
        self.alarm = EdgeAlarm(
            on=1.0 - alarm_p, off=0.9, refractory=refractory, clear=10, escalate=escalate
        )
        self.ewma_z = 0.0
        self.ewma_z2 = 1.0
        self.moves = MoveFrequency(_MOVES_KEPT)
        self.x_last = math.nan
        self.n = 0
        self.t0 = math.nan
        self.t_last = math.nan
        self.gaps: list[float] = []
        self.dt = math.nan
        self.last_alarm = False
        self._memo: tuple[tuple[float, float, int], tuple[float, tuple[float, ...]]] | None = None
        self._p_memo: tuple[tuple[float, float, int], float] | None = None
        # score_many computes the shape view of all rows at once and hands each row's in here
        # (the shape state then already holds the row: learn_one does not update it)
        self._shape_given: float | None = None

    # -- internals ---------------------------------------------------------------------------
    def _stats(self, t: float, x: float) -> tuple[float, float, float, float]:
        """``(z, a1, a2, a3)``: the residual views."""
        m = self.models[self.active]
        if m.n < 10:
            z = 0.0
        else:
            s = max(m.spread, 1e-9 * (abs(m.level) + 1.0), 1e-12)
            z = min(max(m.residual(t, x) / s, -1e6), 1e6)
        zc = min(max(z, -_EWMA_CLIP), _EWMA_CLIP)
        e1 = (1 - _LAM1) * self.ewma_z + _LAM1 * zc
        e2 = (1 - _LAM2) * self.ewma_z2 + _LAM2 * zc * zc
        return z, abs(z), abs(e1) / _A2_SCALE, e2

    def _views(self, t: float, x: float) -> tuple[float, tuple[float, ...]]:
        # score_one and learn_one ask for the same point's views up to three times; the
        # state only changes in learn_one (n grows), so (t, x, n) identifies the answer.
        key = (t, x, self.n)
        memo = self._memo
        if memo is not None and memo[0] == key:
            return memo[1]
        z, a1, a2, a3 = self._stats(t, x)
        a4 = self.shape.score(x) if self._shape_given is None else self._shape_given
        views = (z, (a1, a2, a3, a4))
        self._memo = (key, views)
        return views

    def _pvalue(self, t: float, x: float) -> float:
        key = (t, x, self.n)
        if self._p_memo is not None and self._p_memo[0] == key:
            return self._p_memo[1]
        p = self._pvalue_uncached(t, x)
        self._p_memo = (key, p)
        return p

    def _pvalue_uncached(self, t: float, x: float) -> float:
        z, stats = self._views(t, x)
        ps = [c.pvalue(a) for c, a in zip(self.calibrators, stats, strict=True)]
        if (
            self.active == "none"
            and z != 0.0
            and self.x_last == self.x_last
            and ps[0] < self.moves.bound()  # (else no floor can reach it)
        ):
            ps[0] = max(ps[0], self.moves.floor(self.x_last, x, z > 0.0))
        p = min(ps)
        p = min(1.0, _N_VIEWS * p)
        if self.spend > 0.0:
            p = min(1.0, p * max(1.0, self.n / self.spend))
        return p

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
        return self.gate.gate(self.calibrated_score(t, x))

    def learn_one(self, t: float, x: float) -> None:
        """Learn one point (after scoring it); non-finite ``t``/``x`` are ignored."""
        if not (math.isfinite(t) and math.isfinite(x)):
            return
        score = self.calibrated_score(t, x)
        self.gate.step(score)
        self.last_alarm = self.alarm.step(score)
        z, stats = self._views(t, x)
        if self.n >= self.warmup // 2:
            for c, a in zip(self.calibrators, stats, strict=True):
                c.update(a)
        if self._shape_given is None:
            self.shape.update(x)
        zc = min(max(z, -_EWMA_CLIP), _EWMA_CLIP)
        self.ewma_z = 0.9 * self.ewma_z + 0.1 * zc
        self.ewma_z2 = 0.95 * self.ewma_z2 + 0.05 * zc * zc
        if self.x_last == self.x_last:
            self.moves.learn_one(self.x_last, x)
        self.x_last = x
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
                            gamma=_gamma_per_point(_GAMMA, period / bins / self.dt),
                            eta=0.002,
                        )
        self.t_last = t
        self.n += 1
        self._select(t)

    def score_many(self, values: Sequence[float], timestamps: Sequence[float]) -> list[float]:
        """``score_one`` then ``learn_one`` for each point in turn; the list of scores.

        The same causal recurrence as the per-point calls and the same floating-point
        operations in the same order, so the scores and the final state are identical bit for
        bit (``last_alarm`` is that of the last point). Faster: non-finite points are dropped
        up front (they score 0 and change nothing), the shape view of every point comes from
        :meth:`ShapeNovelty.score_many` (blocked matrix products), and once the sampling
        interval is known and every calibrator is past its P-square start (about 150 points)
        the rest runs as one compiled loop (:func:`opsloop.detect.metrics.steady.run_steady`,
        numba; its first use in a process loads it, about 0.3 s). About 10x the per-point
        rate on NAB; limit BLAS to one thread on a busy host (the matrix products are small:
        threads mostly wait on each other).
        """
        return self.score_and_alarm_many(values, timestamps)[0]

    def score_and_alarm_many(
        self, values: Sequence[float], timestamps: Sequence[float]
    ) -> tuple[list[float], list[bool], list[float]]:
        """:meth:`score_many`; for each point whether an alarm fired on it (the
        ``last_alarm`` after its ``learn_one``; ``False`` for a non-finite point); and its
        un-gated :meth:`calibrated_score` (an alarm's own strength: the gate may have damped
        the emitted score of an alarm that follows a weaker edge)."""
        ts = [float(t) for t in timestamps]
        xs = [float(x) for x in values]
        if len(ts) != len(xs):
            raise ValueError("values and timestamps differ in length")
        out = [0.0] * len(xs)
        fired = [False] * len(xs)
        raw = [0.0] * len(xs)
        isfinite = math.isfinite
        idx = [i for i in range(len(xs)) if isfinite(ts[i]) and isfinite(xs[i])]
        a4s = self.shape.score_many([xs[i] for i in idx])
        k = 0
        try:
            # the start, and everything when the loop could not be compiled (numba missing:
            # the plain loop over arrays would be slower than the per-point calls)
            while k < len(idx) and not (self._warm() and _compiled()):
                i = idx[k]
                self._shape_given = a4s[k]
                out[i] = self.score_one(ts[i], xs[i])
                raw[i] = self.calibrated_score(ts[i], xs[i])
                self.learn_one(ts[i], xs[i])
                fired[i] = self.last_alarm
                k += 1
        finally:
            self._shape_given = None
        if k < len(idx):
            self._run_warm(idx[k:], ts, xs, a4s[k:], out, fired, raw)
        return out, fired, raw

    def _warm(self) -> bool:
        """Whether the state allows :meth:`_run_warm` (the steady-state loop): the sampling
        interval known, the models of it created and started, every calibrator past its
        P-square start."""
        if math.isnan(self.dt) or self.gaps:
            return False
        models = self.models
        if set(models) - {"none", "day", "week"} or models["none"].profile is not None:
            return False
        if self.n < self.warmup // 2 or any(c.p2_upper is not None for c in self.calibrators):
            return False
        return all(m.n >= 1 for m in models.values()) and all(
            models[p].profile is not None for p in ("day", "week") if p in models
        )

    def _run_warm(
        self,
        idx: list[int],
        ts: list[float],
        xs: list[float],
        a4: list[float],
        out: list[float],
        fired: list[bool],
        raw: list[float],
    ) -> None:
        """The steady-state recurrence over points ``idx``: the state packed into flat arrays,
        :func:`opsloop.detect.metrics.steady.run_steady` (compiled), the state unpacked."""
        from opsloop.detect.metrics import steady as k

        xv = [xs[i] for i in idx]
        a4s = np.asarray(a4, dtype=np.float64)
        F = np.zeros(k.N_F)
        F[k.EZ], F[k.EZ2], F[k.T0], F[k.TL], F[k.SPEND] = (
            self.ewma_z,
            self.ewma_z2,
            self.t0,
            self.t_last,
            self.spend,
        )
        F[k.SEL1], F[k.SEL2] = 2 * _PERIODS[0][1], 2 * _PERIODS[1][1]
        F[k.XL] = self.x_last
        mv = self.moves
        MB, MA = mv.b.copy(), mv.a.copy()
        MS = np.asarray([mv.size[0], mv.size[1], mv.m], dtype=np.int64)
        I = np.zeros(k.N_I, dtype=np.int64)  # noqa: E741
        I[k.N], I[k.WARMUP] = self.n, self.warmup
        I[k.ACTIVE] = ("none", "day", "week").index(self.active)
        I[k.FIRED] = int(self.last_alarm)
        ms = [self.models.get(name) for name in ("none", "day", "week")]
        nb = max([m.profile.bins for m in ms if m is not None and m.profile is not None] + [1])
        MF = np.zeros((3, k.N_MF))
        MI = np.zeros((3, k.N_MI), dtype=np.int64)
        S = np.zeros((3, nb))
        C = np.zeros((3, nb))
        for j, m in enumerate(ms):
            if m is None:
                continue
            phi = m.phi
            MF[j, :12] = (m.level, m.trend, m.spread, m.err, m.t_first, m.alpha, m.beta, phi,
                          m.delta, m.eta, m.k,
                          phi * (1.0 - phi**1.0) / (1.0 - phi) if phi < 1 else 1.0)  # fmt: skip
            MI[j, k.MN], MI[j, k.PRESENT] = m.n, 1
            if m.profile is not None:
                pr = m.profile
                MF[j, k.PERIOD], MF[j, k.GAMMA], MI[j, k.BINS] = pr.period, pr.gamma, pr.bins
                S[j, : pr.bins], C[j, : pr.bins] = pr.s, pr.count
        CF = np.zeros((4, k.N_CF))
        CI = np.zeros((4, k.N_CI), dtype=np.int64)
        for j, c in enumerate(self.calibrators):
            u, med, d, n, ne, mean, var, stale, sx = c.state()
            CF[j] = (u, med, d, mean, var, sx, 1.0 - c.q, c.rho, c.lam)
            CI[j] = (n, ne, stale, c.stale_after, c.min_exceedances)
        AF = np.zeros((2, k.N_AF))
        AI = np.zeros((2, k.N_AI), dtype=np.int64)
        for j, a in enumerate((self.gate, self.alarm)):
            AF[j] = (a.on, a.off, a.damp, a.escalate, a.last_p)
            AI[j] = (int(a.armed), a.since, a.quiet, a.refractory, a.clear)
        res = np.zeros(len(idx))
        hits = np.zeros(len(idx), dtype=np.bool_)
        unga = np.zeros(len(idx))
        tv = np.asarray([ts[i] for i in idx], dtype=np.float64)
        x_arr = np.asarray(xv, dtype=np.float64)
        k.run_steady(tv, x_arr, a4s, res, hits, unga, F, I, MF, MI, S, C, CF, CI, AF, AI,
                     MB, MA, MS)  # fmt: skip
        for i, s, h, u in zip(idx, res.tolist(), hits.tolist(), unga.tolist(), strict=True):
            out[i] = s
            fired[i] = h
            raw[i] = u
        # unpack
        self.ewma_z, self.ewma_z2, self.t_last = float(F[k.EZ]), float(F[k.EZ2]), float(F[k.TL])
        self.x_last = float(F[k.XL])
        mv.b, mv.a, mv._least = MB, MA, [-1, -1]
        mv.size, mv.m = [int(MS[k.MSIZE_UP]), int(MS[k.MSIZE_DOWN])], int(MS[k.MM])
        self.n = int(I[k.N])
        self.active = ("none", "day", "week")[int(I[k.ACTIVE])]
        self.last_alarm = bool(I[k.FIRED])
        for j, m in enumerate(ms):
            if m is None:
                continue
            m.level, m.trend, m.spread, m.err = (float(v) for v in MF[j, :4])
            m.n = int(MI[j, k.MN])
            if m.profile is not None:
                b = m.profile.bins
                m.profile.s, m.profile.count = S[j, :b].tolist(), C[j, :b].tolist()
        for j, c in enumerate(self.calibrators):
            u, med, d, mean, var, sx = (float(v) for v in CF[j, :6])
            n, ne, stale = (int(v) for v in CI[j, :3])
            c.set_state((u, med, d, n, ne, mean, var, stale, sx))
        for j, a in enumerate((self.gate, self.alarm)):
            a.last_p = float(AF[j, k.LASTP])
            a.armed, a.since, a.quiet = (
                bool(AI[j, k.ARMED]),
                int(AI[j, k.SINCE]),
                int(AI[j, k.QUIET]),
            )
        self._memo = self._p_memo = None

    def update(self, t: float, x: float) -> float:
        """``score_one`` then ``learn_one``; returns the score."""
        s = self.score_one(t, x)
        self.learn_one(t, x)
        return s

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state (no pickle)."""
        return {
            "alarm_p": self.alarm_p,
            "gate_p": self.gate_p,
            "refractory": self.refractory,
            "warmup": self.warmup,
            "spend": self.spend,
            "escalate": self.escalate,
            "models": {k: m.to_dict() for k, m in self.models.items()},
            "active": self.active,
            "shape": self.shape.to_dict(),
            "calibrators": [c.to_dict() for c in self.calibrators],
            "gate": self.gate.to_dict(),
            "alarm": self.alarm.to_dict(),
            "ewma_z": self.ewma_z,
            "ewma_z2": self.ewma_z2,
            "moves": self.moves.to_dict(),
            "x_last": self.x_last,
            "n": self.n,
            "t0": self.t0,
            "t_last": self.t_last,
            "gaps": list(self.gaps),
            "dt": self.dt,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DefaultMetricDetector:
        """Inverse of :meth:`to_dict`."""
        obj = cls(d["alarm_p"], d["gate_p"], d["refractory"], d["warmup"])
        obj.spend = float(d["spend"])
        obj.models = {k: SeasonalModel.from_dict(v) for k, v in d["models"].items()}
        obj.active = d["active"]
        obj.shape = ShapeNovelty.from_dict(d["shape"])
        obj.calibrators = [TailCalibrator.from_dict(c) for c in d["calibrators"]]
        obj.gate = EdgeAlarm.from_dict(d["gate"])
        obj.alarm = EdgeAlarm.from_dict(d["alarm"])
        # snapshots from before escalation carry none: they get the default from now on
        obj.escalate = float(d.get("escalate", 10.0))
        obj.gate.escalate = obj.alarm.escalate = obj.escalate
        obj.ewma_z, obj.ewma_z2 = float(d["ewma_z"]), float(d["ewma_z2"])
        # snapshots from before the move floor carry no moves: it starts learning now
        if "moves" in d:
            obj.moves = MoveFrequency.from_dict(d["moves"])
            obj.x_last = float(d["x_last"])
        obj.n, obj.t0, obj.t_last = int(d["n"]), float(d["t0"]), float(d["t_last"])
        obj.gaps, obj.dt = [float(g) for g in d["gaps"]], float(d["dt"])
        return obj
