"""The default streaming metric detector: no per-series tuning, calibrated scores, sparse alarms."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from opsloop.detect.metrics.alarm import EdgeAlarm
from opsloop.detect.metrics.calibrate import TailCalibrator, gpd_pvalue
from opsloop.detect.metrics.ewm import MAD_TO_SIGMA
from opsloop.detect.metrics.seasonal import DAY, WEEK, SeasonalModel
from opsloop.detect.metrics.shape import ShapeNovelty

__all__ = ["DefaultMetricDetector"]

_PERIODS: tuple[tuple[str, float, int], ...] = (("day", DAY, 288), ("week", WEEK, 336))
_N_VIEWS = 4
_LAM1, _LAM2 = 0.1, 0.05
_A2_SCALE = math.sqrt(_LAM1 / (2 - _LAM1))


class DefaultMetricDetector:
    """Streaming anomaly detector for one metric series; ``score_one`` then ``learn_one`` per point.

    Model. Competing robust Holt-Winters models (:class:`SeasonalModel`): no season, daily and
    weekly (created once the sampling interval ``dt`` is known and the period holds >= 8 samples).
    The one with the smallest running mean absolute error (seasonal ones need two periods of
    history and must beat the plain one by 5 %) gives the standardised residual
    ``z = (x - x_hat) / s``.

    Statistics. Four views, each sensitive to one kind of anomaly::

        a1 = |z|                                   (spikes)
        a2 = |EWMA_0.1(z)| / sqrt(0.1 / 1.9)       (level shifts: EWMA control chart)
        a3 = EWMA_0.05(z^2)                        (spread changes)
        a4 = ShapeNovelty(x)                       (shape: distance of the last 16 points,
                                                    z-normalised, to the 1000 windows before)

    Calibration. Each ``a_j`` gets a tail probability ``p_j`` from its own
    :class:`TailCalibrator` (peaks over the 99 % quantile, memory of about 500 exceedances, a
    quantile left unexceeded for 500 points reset: a wild start does not blind it),
    combined with Bonferroni, ``p = min(1, 4 min_j p_j)``. Alpha spending: a stream that has
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
        self.n = 0
        self.t0 = math.nan
        self.t_last = math.nan
        self.gaps: list[float] = []
        self.dt = math.nan
        self.last_alarm = False
        self._memo: tuple[tuple[float, float, int], tuple[float, tuple[float, ...]]] | None = None
        self._p_memo: tuple[tuple[float, float, int], float] | None = None

    # -- internals ---------------------------------------------------------------------------
    def _stats(self, t: float, x: float) -> tuple[float, float, float, float]:
        """``(z, a1, a2, a3)``: the residual views."""
        m = self.models[self.active]
        if m.n < 10:
            z = 0.0
        else:
            s = max(m.spread, 1e-9 * (abs(m.level) + 1.0), 1e-12)
            z = min(max(m.residual(t, x) / s, -1e6), 1e6)
        e1 = (1 - _LAM1) * self.ewma_z + _LAM1 * z
        e2 = (1 - _LAM2) * self.ewma_z2 + _LAM2 * z * z
        return z, abs(z), abs(e1) / _A2_SCALE, e2

    def _views(self, t: float, x: float) -> tuple[float, tuple[float, ...]]:
        # score_one and learn_one ask for the same point's views up to three times; the
        # state only changes in learn_one (n grows), so (t, x, n) identifies the answer.
        key = (t, x, self.n)
        memo = self._memo
        if memo is not None and memo[0] == key:
            return memo[1]
        z, a1, a2, a3 = self._stats(t, x)
        views = (z, (a1, a2, a3, self.shape.score(x)))
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
        _, stats = self._views(t, x)
        p = min(c.pvalue(a) for c, a in zip(self.calibrators, stats, strict=True))
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
        self.shape.update(x)
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

    def score_many(self, values: Sequence[float], timestamps: Sequence[float]) -> list[float]:
        """``score_one`` then ``learn_one`` for each point in turn; the list of scores.

        The same causal recurrence as the per-point calls and the same floating-point
        operations in the same order, so the scores and the final state are identical bit for
        bit (``last_alarm`` is that of the last point). Faster: non-finite points are dropped
        up front (they score 0 and change nothing), the shape view of every point comes from
        :meth:`ShapeNovelty.score_many` (blocked matrix products), and once the sampling
        interval is known (about 10 points) the rest runs as one loop over local variables.
        About 5x the per-point rate on NAB; limit BLAS to one thread on a busy host (the
        matrix products are small: threads mostly wait on each other).
        """
        ts = [float(t) for t in timestamps]
        xs = [float(x) for x in values]
        if len(ts) != len(xs):
            raise ValueError("values and timestamps differ in length")
        out = [0.0] * len(xs)
        isfinite = math.isfinite
        idx = [i for i in range(len(xs)) if isfinite(ts[i]) and isfinite(xs[i])]
        k = 0
        while k < len(idx) and not self._warm():
            i = idx[k]
            out[i] = self.score_one(ts[i], xs[i])
            self.learn_one(ts[i], xs[i])
            k += 1
        if k < len(idx):
            self._run_warm(idx[k:], ts, xs, out)
        return out

    def _warm(self) -> bool:
        """Whether the state allows :meth:`_run_warm` (the steady-state loop)."""
        if math.isnan(self.dt) or self.gaps:
            return False
        models = self.models
        if set(models) - {"none", "day", "week"} or models["none"].profile is not None:
            return False
        return all(m.n >= 1 for m in models.values()) and all(
            models[p].profile is not None for p in ("day", "week") if p in models
        )

    def _run_warm(self, idx: list[int], ts: list[float], xs: list[float], out: list[float]) -> None:
        """The steady-state recurrence over points ``idx``, all state in local variables.

        Line for line the arithmetic of ``calibrated_score``, ``score_one`` and ``learn_one``
        with ``SeasonalModel.update``, ``TailCalibrator.pvalue``/``update``, ``EdgeAlarm`` and
        ``_select`` inlined; ``min``/``max`` calls are written as the comparisons they make
        (``max(a, b)`` is ``b if b > a else a``), so every result is the same double.
        """
        tv = [ts[i] for i in idx]
        xv = [xs[i] for i in idx]
        a4s = self.shape.score_many(xv)
        fmod, floor, gpd = math.fmod, math.floor, gpd_pvalue
        n, spend, t0 = self.n, self.spend, self.t0
        ez, ez2 = self.ewma_z, self.ewma_z2
        # models: "none" (no season), then optional "day" and "week"
        m0 = self.models["none"]
        l0, r0, s0, e0, n0 = m0.level, m0.trend, m0.spread, m0.err, m0.n
        al0, be0, ph0, de0, et0, k0 = m0.alpha, m0.beta, m0.phi, m0.delta, m0.eta, m0.k
        dp0 = ph0 * (1.0 - ph0**1.0) / (1.0 - ph0) if ph0 < 1 else 1.0
        m1 = self.models.get("day")
        has1 = m1 is not None
        m2 = self.models.get("week")
        has2 = m2 is not None
        l1 = r1 = s1 = e1 = tf1 = al1 = be1 = ph1 = de1 = et1 = k1 = dp1 = P1 = g1 = 0.0
        l2 = r2 = s2 = e2 = tf2 = al2 = be2 = ph2 = de2 = et2 = k2 = dp2 = P2 = g2 = 0.0
        n1 = B1 = n2 = B2 = 0
        S1: list[float] = []
        C1: list[float] = []
        S2: list[float] = []
        C2: list[float] = []
        if m1 is not None and m1.profile is not None:
            l1, r1, s1, e1, n1, tf1 = m1.level, m1.trend, m1.spread, m1.err, m1.n, m1.t_first
            al1, be1, ph1, de1, et1, k1 = m1.alpha, m1.beta, m1.phi, m1.delta, m1.eta, m1.k
            dp1 = ph1 * (1.0 - ph1**1.0) / (1.0 - ph1) if ph1 < 1 else 1.0
            pr = m1.profile
            P1, B1, g1, S1, C1 = pr.period, pr.bins, pr.gamma, pr.s, pr.count
        if m2 is not None and m2.profile is not None:
            l2, r2, s2, e2, n2, tf2 = m2.level, m2.trend, m2.spread, m2.err, m2.n, m2.t_first
            al2, be2, ph2, de2, et2, k2 = m2.alpha, m2.beta, m2.phi, m2.delta, m2.eta, m2.k
            dp2 = ph2 * (1.0 - ph2**1.0) / (1.0 - ph2) if ph2 < 1 else 1.0
            pr = m2.profile
            P2, B2, g2, S2, C2 = pr.period, pr.bins, pr.gamma, pr.s, pr.count
        sel1, sel2 = 2 * _PERIODS[0][1], 2 * _PERIODS[1][1]
        active = ("none", "day", "week").index(self.active)
        # calibrators (through their own update() while any is in its P-square start)
        ca, cb, cc, cd = self.calibrators
        ua, ma, da, na, nea, mea, va, sta, sxa = ca.state()
        ub, mb, db, nb, neb, meb, vb, stb, sxb = cb.state()
        uc, mc, dc, nc, nec, mec, vc, stc, sxc = cc.state()
        ud, mdn, dd, nd, ned, med, vd, std, sxd = cd.state()
        ta, tb, tc, td = 1.0 - ca.q, 1.0 - cb.q, 1.0 - cc.q, 1.0 - cd.q
        upa, upb, upc, upd = 1.0 - ta, 1.0 - tb, 1.0 - tc, 1.0 - td
        dna, dnb, dnc, dnd = 0.0 - ta, 0.0 - tb, 0.0 - tc, 0.0 - td
        ra, rb, rc, rd = ca.rho, cb.rho, cc.rho, cd.rho
        sfa, sfb, sfc, sfd = ca.stale_after, cb.stale_after, cc.stale_after, cd.stale_after
        ninf = -math.inf
        lma, lmb, lmc, lmd = ca.lam, cb.lam, cc.lam, cd.lam
        xa, xb, xc = ca.min_exceedances, cb.min_exceedances, cc.min_exceedances
        xd = cd.min_exceedances
        cals = self.calibrators
        warmup, half = self.warmup, self.warmup // 2
        early = n < half or any(c.p2_upper is not None for c in cals)
        # gate and alarm
        G, A = self.gate, self.alarm
        g_arm, g_since, g_quiet = G.armed, G.since, G.quiet
        g_on, g_off, g_ref, g_clr, g_damp = G.on, G.off, G.refractory, G.clear, G.damp
        g_esc, g_last = G.escalate, G.last_p
        a_arm, a_since, a_quiet = A.armed, A.since, A.quiet
        a_on, a_off, a_ref, a_clr = A.on, A.off, A.refractory, A.clear
        a_esc, a_last = A.escalate, A.last_p
        fired = self.last_alarm
        t = self.t_last
        q1 = q1b = q2 = q2b = 0
        f1 = h1 = f2 = h2 = y1 = y2 = 0.0
        for i, t, x, v4 in zip(idx, tv, xv, a4s, strict=True):
            # one-step residuals of every model (state before x)
            y0 = x - (l0 + dp0 * r0 + 0.0)
            if has1:
                ph = B1 * fmod(t, P1) / P1
                if ph < 0:
                    ph += B1
                q1 = floor(ph)
                f1 = ph - q1
                q1 %= B1
                q1b = (q1 + 1) % B1
                h1 = 1.0 - f1
                y1 = x - (l1 + dp1 * r1 + (h1 * S1[q1] + f1 * S1[q1b]))
            if has2:
                ph = B2 * fmod(t, P2) / P2
                if ph < 0:
                    ph += B2
                q2 = floor(ph)
                f2 = ph - q2
                q2 %= B2
                q2b = (q2 + 1) % B2
                h2 = 1.0 - f2
                y2 = x - (l2 + dp2 * r2 + (h2 * S2[q2] + f2 * S2[q2b]))
            # standardised residual of the active model: the views
            if active == 0:
                mn, ms, ml, y = n0, s0, l0, y0
            elif active == 1:
                mn, ms, ml, y = n1, s1, l1, y1
            else:
                mn, ms, ml, y = n2, s2, l2, y2
            if mn < 10:
                z = 0.0
            else:
                w = 1e-9 * (abs(ml) + 1.0)
                if w > ms:
                    ms = w
                if ms < 1e-12:
                    ms = 1e-12
                z = y / ms
                if z < -1e6:
                    z = -1e6
                if z > 1e6:
                    z = 1e6
            ez = 0.9 * ez + 0.1 * z
            ez2 = 0.95 * ez2 + 0.05 * z * z
            v1 = abs(z)
            v2 = abs(ez) / _A2_SCALE
            v3 = ez2
            # p-value: smallest of the four calibrated views
            p = 1.0
            if n >= warmup:  # (calibrated_score is 0 before)
                if nea >= xa:
                    if v1 > ua:
                        w = gpd(v1, ua, ta, mea, va)
                        if w < p:
                            p = w
                    elif v1 > ma:
                        w = ta if ua <= ma else 0.5 + (ta - 0.5) * (v1 - ma) / (ua - ma)
                        if w < p:
                            p = w
                if neb >= xb:
                    if v2 > ub:
                        w = gpd(v2, ub, tb, meb, vb)
                        if w < p:
                            p = w
                    elif v2 > mb:
                        w = tb if ub <= mb else 0.5 + (tb - 0.5) * (v2 - mb) / (ub - mb)
                        if w < p:
                            p = w
                if nec >= xc:
                    if v3 > uc:
                        w = gpd(v3, uc, tc, mec, vc)
                        if w < p:
                            p = w
                    elif v3 > mc:
                        w = tc if uc <= mc else 0.5 + (tc - 0.5) * (v3 - mc) / (uc - mc)
                        if w < p:
                            p = w
                if ned >= xd and v4 == v4:
                    if v4 > ud:
                        w = gpd(v4, ud, td, med, vd)
                        if w < p:
                            p = w
                    elif v4 > mdn:
                        w = td if ud <= mdn else 0.5 + (td - 0.5) * (v4 - mdn) / (ud - mdn)
                        if w < p:
                            p = w
            if p < 1.0:  # Bonferroni, then alpha spending (p = 1 stays 1: score 0)
                p = _N_VIEWS * p
                if not p < 1.0:
                    p = 1.0
                if spend > 0.0:
                    w = n / spend
                    p = p * w if w > 1.0 else p * 1.0
                    if not p < 1.0:
                        p = 1.0
                score = 1.0 - p
            else:
                score = 0.0
            # gate (the emitted score) and alarm
            if g_arm:
                out[i] = score
                if score >= g_on:
                    g_arm, g_since, g_quiet = False, 0, 0
                    g_last = 1.0 - score
            elif g_esc > 0.0 and score >= g_on and (1.0 - score) * g_esc <= g_last:
                out[i] = score
                g_since, g_quiet = 0, 0
                g_last = 1.0 - score
            else:
                out[i] = g_damp * score
                g_since += 1
                g_quiet = g_quiet + 1 if score < g_off else 0
                if g_since >= g_ref and g_quiet >= g_clr:
                    g_arm = True
            fired = False
            if a_arm:
                if score >= a_on:
                    a_arm, a_since, a_quiet, fired = False, 0, 0, True
                    a_last = 1.0 - score
            elif a_esc > 0.0 and score >= a_on and (1.0 - score) * a_esc <= a_last:
                a_since, a_quiet, fired = 0, 0, True
                a_last = 1.0 - score
            else:
                a_since += 1
                a_quiet = a_quiet + 1 if score < a_off else 0
                if a_since >= a_ref and a_quiet >= a_clr:
                    a_arm = True
            # calibrators learn the views (through their own update() until all are past the
            # P-square start)
            if early:
                if n >= half:
                    ca.set_state((ua, ma, da, na, nea, mea, va, sta, sxa))
                    cb.set_state((ub, mb, db, nb, neb, meb, vb, stb, sxb))
                    cc.set_state((uc, mc, dc, nc, nec, mec, vc, stc, sxc))
                    cd.set_state((ud, mdn, dd, nd, ned, med, vd, std, sxd))
                    ca.update(v1)
                    cb.update(v2)
                    cc.update(v3)
                    cd.update(v4)
                    ua, ma, da, na, nea, mea, va, sta, sxa = ca.state()
                    ub, mb, db, nb, neb, meb, vb, stb, sxb = cb.state()
                    uc, mc, dc, nc, nec, mec, vc, stc, sxc = cc.state()
                    ud, mdn, dd, nd, ned, med, vd, std, sxd = cd.state()
                    early = any(c.p2_upper is not None for c in cals)
            else:
                na += 1
                ua += ra * da * (upa if v1 > ua else dna)
                ma += ra * da * (0.5 if v1 > ma else -0.5)
                da = da + 0.01 * (abs(v1 - ua) - da)
                if v1 > ua:
                    nea += 1
                    w = 1.0 / nea
                    if not w > lma:
                        w = lma
                    y = v1 - ua - mea
                    mea += w * y
                    va = (1.0 - w) * (va + w * y * y)
                    sta, sxa = 0, ninf
                else:
                    sta += 1
                    if v1 > sxa:
                        sxa = v1
                    if sta >= sfa:
                        ua = sxa
                        if ma > ua:
                            ma = ua
                        sta, sxa = 0, ninf
                nb += 1
                ub += rb * db * (upb if v2 > ub else dnb)
                mb += rb * db * (0.5 if v2 > mb else -0.5)
                db = db + 0.01 * (abs(v2 - ub) - db)
                if v2 > ub:
                    neb += 1
                    w = 1.0 / neb
                    if not w > lmb:
                        w = lmb
                    y = v2 - ub - meb
                    meb += w * y
                    vb = (1.0 - w) * (vb + w * y * y)
                    stb, sxb = 0, ninf
                else:
                    stb += 1
                    if v2 > sxb:
                        sxb = v2
                    if stb >= sfb:
                        ub = sxb
                        if mb > ub:
                            mb = ub
                        stb, sxb = 0, ninf
                nc += 1
                uc += rc * dc * (upc if v3 > uc else dnc)
                mc += rc * dc * (0.5 if v3 > mc else -0.5)
                dc = dc + 0.01 * (abs(v3 - uc) - dc)
                if v3 > uc:
                    nec += 1
                    w = 1.0 / nec
                    if not w > lmc:
                        w = lmc
                    y = v3 - uc - mec
                    mec += w * y
                    vc = (1.0 - w) * (vc + w * y * y)
                    stc, sxc = 0, ninf
                else:
                    stc += 1
                    if v3 > sxc:
                        sxc = v3
                    if stc >= sfc:
                        uc = sxc
                        if mc > uc:
                            mc = uc
                        stc, sxc = 0, ninf
                if v4 == v4:
                    nd += 1
                    ud += rd * dd * (upd if v4 > ud else dnd)
                    mdn += rd * dd * (0.5 if v4 > mdn else -0.5)
                    dd = dd + 0.01 * (abs(v4 - ud) - dd)
                    if v4 > ud:
                        ned += 1
                        w = 1.0 / ned
                        if not w > lmd:
                            w = lmd
                        y = v4 - ud - med
                        med += w * y
                        vd = (1.0 - w) * (vd + w * y * y)
                        std, sxd = 0, ninf
                    else:
                        std += 1
                        if v4 > sxd:
                            sxd = v4
                        if std >= sfd:
                            ud = sxd
                            if mdn > ud:
                                mdn = ud
                            std, sxd = 0, ninf
            # models learn x (SeasonalModel.update)
            n0 += 1
            c = y0
            if s0 > 0.0 and n0 > 3:
                w = k0 * s0
                if c > w:
                    c = w
                elif c < -w:
                    c = -w
            a = 1.0 / n0
            if not a > al0:
                a = al0
            l0 += ph0 * r0 + a * c
            r0 = ph0 * r0 + a * be0 * c
            a = 1.0 / (n0 - 1)
            w = a if a > de0 else de0
            s0 = (1.0 - w) * s0 + w * MAD_TO_SIGMA * abs(c)
            w = a if a > et0 else et0
            e0 = (1.0 - w) * e0 + w * abs(y0)
            if has1:
                n1 += 1
                c = y1
                if s1 > 0.0 and n1 > 3:
                    w = k1 * s1
                    if c > w:
                        c = w
                    elif c < -w:
                        c = -w
                a = 1.0 / n1
                if not a > al1:
                    a = al1
                if t - tf1 < P1:
                    a = 0.0
                l1 += ph1 * r1 + a * c
                r1 = ph1 * r1 + a * be1 * c
                y = (1.0 - a) * (y1 if h1 * C1[q1] + f1 * C1[q1b] < 1.0 else c)
                if h1 > 0.0:
                    C1[q1] += h1
                    w = h1 / C1[q1]
                    S1[q1] += (w if w > g1 else g1) * h1 * y
                if f1 > 0.0:
                    C1[q1b] += f1
                    w = f1 / C1[q1b]
                    S1[q1b] += (w if w > g1 else g1) * f1 * y
                a = 1.0 / (n1 - 1)
                w = a if a > de1 else de1
                s1 = (1.0 - w) * s1 + w * MAD_TO_SIGMA * abs(c)
                w = a if a > et1 else et1
                e1 = (1.0 - w) * e1 + w * abs(y1)
            if has2:
                n2 += 1
                c = y2
                if s2 > 0.0 and n2 > 3:
                    w = k2 * s2
                    if c > w:
                        c = w
                    elif c < -w:
                        c = -w
                a = 1.0 / n2
                if not a > al2:
                    a = al2
                if t - tf2 < P2:
                    a = 0.0
                l2 += ph2 * r2 + a * c
                r2 = ph2 * r2 + a * be2 * c
                y = (1.0 - a) * (y2 if h2 * C2[q2] + f2 * C2[q2b] < 1.0 else c)
                if h2 > 0.0:
                    C2[q2] += h2
                    w = h2 / C2[q2]
                    S2[q2] += (w if w > g2 else g2) * h2 * y
                if f2 > 0.0:
                    C2[q2b] += f2
                    w = f2 / C2[q2b]
                    S2[q2b] += (w if w > g2 else g2) * f2 * y
                a = 1.0 / (n2 - 1)
                w = a if a > de2 else de2
                s2 = (1.0 - w) * s2 + w * MAD_TO_SIGMA * abs(c)
                w = a if a > et2 else et2
                e2 = (1.0 - w) * e2 + w * abs(y2)
            n += 1
            # model selection (_select)
            best, w = 0, e0
            if has1 and t - t0 >= sel1 and e1 * 1.05 < w:
                best, w = 1, e1 * 1.05
            if has2 and t - t0 >= sel2 and e2 * 1.05 < w:
                best = 2
            if best != active:
                cur = e0 if active == 0 else (e1 if active == 1 else e2)
                new = e0 if best == 0 else (e1 if best == 1 else e2)
                if not cur * 0.9 < new:
                    active = best
        # write the state back
        self.n, self.ewma_z, self.ewma_z2, self.t_last = n, ez, ez2, t
        self.last_alarm = fired
        self.active = ("none", "day", "week")[active]
        m0.level, m0.trend, m0.spread, m0.err, m0.n = l0, r0, s0, e0, n0
        if m1 is not None:
            m1.level, m1.trend, m1.spread, m1.err, m1.n = l1, r1, s1, e1, n1
        if m2 is not None:
            m2.level, m2.trend, m2.spread, m2.err, m2.n = l2, r2, s2, e2, n2
        ca.set_state((ua, ma, da, na, nea, mea, va, sta, sxa))
        cb.set_state((ub, mb, db, nb, neb, meb, vb, stb, sxb))
        cc.set_state((uc, mc, dc, nc, nec, mec, vc, stc, sxc))
        cd.set_state((ud, mdn, dd, nd, ned, med, vd, std, sxd))
        G.armed, G.since, G.quiet, G.last_p = g_arm, g_since, g_quiet, g_last
        A.armed, A.since, A.quiet, A.last_p = a_arm, a_since, a_quiet, a_last
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
        obj.n, obj.t0, obj.t_last = int(d["n"]), float(d["t0"]), float(d["t_last"])
        obj.gaps, obj.dt = [float(g) for g in d["gaps"]], float(d["dt"])
        return obj
