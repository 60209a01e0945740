"""The default metric detector's steady-state recurrence as one compiled loop (numba).

:meth:`DefaultMetricDetector.score_many` hands the rows after the start (sampling interval
known, every calibrator past its P-square start) to :func:`run_steady`: the same arithmetic,
line for line, as ``score_one`` + ``learn_one`` with :class:`SeasonalModel`,
:class:`TailCalibrator` and :class:`EdgeAlarm` inlined, every result the same double (IEEE
operations in the same order; numba compiles without ``fastmath``, so nothing is reassociated
or fused). The state travels in flat arrays whose layouts the constants below name; the
caller packs and unpacks them (``DefaultMetricDetector._run_warm``).

When numba is not importable, ``COMPILED`` is false and ``score_many`` runs every row through
the per-row calls instead (the plain function over arrays is slower still: the loop part takes
about 40 times as long as compiled). ``run_steady.py_func`` is always the plain function (tests
compare the two).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from opsloop.detect.metrics.calibrate import gpd_pvalue
from opsloop.detect.metrics.ewm import MAD_TO_SIGMA

__all__ = ["COMPILED", "run_steady", "warm"]

N_VIEWS = 4
A2_SCALE = math.sqrt(0.1 / (2 - 0.1))  # (must equal default._A2_SCALE)
EWMA_CLIP = 6.0  # (must equal default._EWMA_CLIP)

# F: detector scalars (floats)
EZ, EZ2, T0, TL, SPEND, SEL1, SEL2, XL = range(8)
N_F = 8
# I: detector scalars (ints)
N, WARMUP, ACTIVE, FIRED = range(4)
N_I = 4
# MF[j]: model j (0 none, 1 day, 2 week) floats; MI[j]: ints
LEVEL, TREND, SPREAD, ERR, TFIRST, ALPHA, BETA, PHI, DELTA, ETA, KCLIP, DAMP, PERIOD, GAMMA = range(
    14
)
N_MF = 14
MN, BINS, PRESENT = range(3)
N_MI = 3
# CF[v]: calibrator of view v, floats; CI[v]: ints
CU, CMED, CD, CMEAN, CVAR, CSXMAX, CTAIL, CRHO, CLAM = range(9)
N_CF = 9
CN, CNE, CSTALE, CSTALE_AFTER, CMIN_EXC = range(5)
N_CI = 5
# AF[g] / AI[g]: edge alarms, g 0 the gate (emits the score), 1 the alarm
ON, OFF, ADAMP, ESC, LASTP = range(5)
N_AF = 5
ARMED, SINCE, QUIET, REFRACTORY, CLEAR = range(5)
N_AI = 5
# MB[d] / MA[d]: MoveFrequency's kept moves (b, a), d 0 upward, 1 downward (negated);
# MS: kept per direction, then the number of moves learned
MSIZE_UP, MSIZE_DOWN, MM = range(3)
N_MS = 3


def _run_steady(
    tv: Any,
    xv: Any,
    a4s: Any,
    out: Any,
    fired_out: Any,
    raw_out: Any,
    F: Any,
    I: Any,  # noqa: E741
    MF: Any,
    MI: Any,
    S: Any,
    C: Any,
    CF: Any,
    CI: Any,
    AF: Any,
    AI: Any,
    MB: Any,
    MA: Any,
    MS: Any,
) -> None:
    """Score then learn rows ``tv``/``xv`` (shape view ``a4s``); the scores go to ``out``,
    whether an alarm fired on each row to ``fired_out``, the un-gated score to ``raw_out``."""
    ez, ez2, t0, spend, x_last = F[EZ], F[EZ2], F[T0], F[SPEND], F[XL]
    n_kept = MB.shape[1]
    n, warmup, active = I[N], I[WARMUP], I[ACTIVE]
    fired = I[FIRED] != 0
    y = np.zeros(3)
    fr = np.zeros(3)
    kk = np.zeros(3, dtype=np.int64)
    kb = np.zeros(3, dtype=np.int64)
    v = np.zeros(4)
    t = F[TL]
    for r in range(len(tv)):
        t = tv[r]
        x = xv[r]
        v4 = a4s[r]
        # one-step residuals of every model (state before x)
        for j in range(3):
            if MI[j, PRESENT] == 0:
                continue
            base = MF[j, LEVEL] + MF[j, DAMP] * MF[j, TREND]
            if MI[j, BINS] > 0:
                B = MI[j, BINS]
                P = MF[j, PERIOD]
                ph = B * np.fmod(t, P) / P  # (fmod is exact: the same double as math.fmod)
                if ph < 0:
                    ph += B
                q = math.floor(ph)
                f = ph - q
                qi = int(q) % B
                kk[j] = qi
                kb[j] = (qi + 1) % B
                fr[j] = f
                y[j] = x - (base + ((1.0 - f) * S[j, qi] + f * S[j, kb[j]]))
            else:
                y[j] = x - (base + 0.0)
        # standardised residual of the active model: the views
        if MI[active, MN] < 10:
            z = 0.0
        else:
            ms = MF[active, SPREAD]
            w = 1e-9 * (abs(MF[active, LEVEL]) + 1.0)
            if w > ms:
                ms = w
            if ms < 1e-12:
                ms = 1e-12
            z = y[active] / ms
            if z < -1e6:
                z = -1e6
            if z > 1e6:
                z = 1e6
        zc = z
        if zc > EWMA_CLIP:
            zc = EWMA_CLIP
        elif zc < -EWMA_CLIP:
            zc = -EWMA_CLIP
        ez = 0.9 * ez + 0.1 * zc
        ez2 = 0.95 * ez2 + 0.05 * zc * zc
        v[0] = abs(z)
        v[1] = abs(ez) / A2_SCALE
        v[2] = ez2
        v[3] = v4
        # p-value: smallest of the four calibrated views
        p = 1.0
        if n >= warmup:
            for c in range(4):
                a = v[c]
                w = 1.0
                if not (CI[c, CNE] < CI[c, CMIN_EXC] or a != a):
                    u, med, tail = CF[c, CU], CF[c, CMED], CF[c, CTAIL]
                    if a > u:
                        w = gpd_pvalue(a, u, tail, CF[c, CMEAN], CF[c, CVAR])
                    elif a > med:
                        w = tail if u <= med else 0.5 + (tail - 0.5) * (a - med) / (u - med)
                if c == 0 and active == 0 and z != 0.0 and x_last == x_last:
                    # familiar moves (MoveFrequency.floor)
                    d, sg = (0, 1.0) if z > 0.0 else (1, -1.0)
                    xq, aq = sg * x, sg * x_last
                    cnt = 0
                    for e in range(MS[d]):
                        if MB[d, e] >= xq and MA[d, e] >= aq:
                            cnt += 1
                    if cnt > 0:
                        fl = cnt / (MS[MM] + 1)
                        if fl > w:
                            w = fl
                if w < p:
                    p = w
        if p < 1.0:  # Bonferroni, then alpha spending (p = 1 stays 1: score 0)
            p = N_VIEWS * p
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
        raw_out[r] = score
        # gate (g = 0: the emitted score) and alarm (g = 1)
        for g in range(2):
            esc = AF[g, ESC]
            if AI[g, ARMED] != 0:
                if g == 0:
                    out[r] = score
                hit = score >= AF[g, ON]
                if hit:
                    AI[g, ARMED], AI[g, SINCE], AI[g, QUIET] = 0, 0, 0
                    AF[g, LASTP] = 1.0 - score
            elif esc > 0.0 and score >= AF[g, ON] and (1.0 - score) * esc <= AF[g, LASTP]:
                if g == 0:
                    out[r] = score
                hit = True
                AI[g, SINCE], AI[g, QUIET] = 0, 0
                AF[g, LASTP] = 1.0 - score
            else:
                if g == 0:
                    out[r] = AF[g, ADAMP] * score
                hit = False
                AI[g, SINCE] += 1
                AI[g, QUIET] = AI[g, QUIET] + 1 if score < AF[g, OFF] else 0
                if AI[g, SINCE] >= AI[g, REFRACTORY] and AI[g, QUIET] >= AI[g, CLEAR]:
                    AI[g, ARMED] = 1
            if g == 1:
                fired = hit
                fired_out[r] = hit
        # calibrators learn the views (TailCalibrator.update after its P-square start)
        for c in range(4):
            a = v[c]
            if a != a:
                continue
            CI[c, CN] += 1
            u = CF[c, CU]
            step = CF[c, CRHO] * CF[c, CD]
            tail = CF[c, CTAIL]
            u += step * ((1.0 - tail) if a > u else (0.0 - tail))
            CF[c, CU] = u
            CF[c, CMED] += step * (0.5 if a > CF[c, CMED] else -0.5)
            CF[c, CD] = CF[c, CD] + 0.01 * (abs(a - u) - CF[c, CD])
            if a > u:
                CI[c, CNE] += 1
                w = 1.0 / CI[c, CNE]
                if not w > CF[c, CLAM]:
                    w = CF[c, CLAM]
                e = a - u - CF[c, CMEAN]
                CF[c, CMEAN] += w * e
                CF[c, CVAR] = (1.0 - w) * (CF[c, CVAR] + w * e * e)
                CI[c, CSTALE], CF[c, CSXMAX] = 0, -math.inf
            else:
                CI[c, CSTALE] += 1
                if a > CF[c, CSXMAX]:
                    CF[c, CSXMAX] = a
                if CI[c, CSTALE] >= CI[c, CSTALE_AFTER]:
                    u = CF[c, CSXMAX]
                    CF[c, CU] = u
                    if CF[c, CMED] > u:
                        CF[c, CMED] = u
                    CI[c, CSTALE], CF[c, CSXMAX] = 0, -math.inf
        # the move x_last -> x is learned (MoveFrequency.learn_one)
        if x_last == x_last:
            for d in range(2):
                sg = 1.0 if d == 0 else -1.0
                used = MS[d]
                if used < n_kept:
                    MB[d, used], MA[d, used] = sg * x, sg * x_last
                    MS[d] = used + 1
                else:
                    e_min = 0
                    for e in range(1, n_kept):
                        if MB[d, e] < MB[d, e_min]:
                            e_min = e
                    if sg * x > MB[d, e_min]:
                        MB[d, e_min], MA[d, e_min] = sg * x, sg * x_last
            MS[MM] += 1
        x_last = x
        # models learn x (SeasonalModel.update)
        for j in range(3):
            if MI[j, PRESENT] == 0:
                continue
            MI[j, MN] += 1
            m = MI[j, MN]
            s = MF[j, SPREAD]
            c_ = y[j]
            if s > 0.0 and m > 3:
                w = MF[j, KCLIP] * s
                if c_ > w:
                    c_ = w
                elif c_ < -w:
                    c_ = -w
            a = 1.0 / m
            if not a > MF[j, ALPHA]:
                a = MF[j, ALPHA]
            seasonal = MI[j, BINS] > 0
            if seasonal and t - MF[j, TFIRST] < MF[j, PERIOD]:
                a = 0.0
            ph = MF[j, PHI]
            MF[j, LEVEL] += ph * MF[j, TREND] + a * c_
            MF[j, TREND] = ph * MF[j, TREND] + a * MF[j, BETA] * c_
            if seasonal:
                f = fr[j]
                h = 1.0 - f
                q0, q1 = kk[j], kb[j]
                e = (1.0 - a) * (y[j] if h * C[j, q0] + f * C[j, q1] < 1.0 else c_)
                gam = MF[j, GAMMA]
                if h > 0.0:
                    C[j, q0] += h
                    w = h / C[j, q0]
                    S[j, q0] += (w if w > gam else gam) * h * e
                if f > 0.0:
                    C[j, q1] += f
                    w = f / C[j, q1]
                    S[j, q1] += (w if w > gam else gam) * f * e
            a = 1.0 / (m - 1)
            w = a if a > MF[j, DELTA] else MF[j, DELTA]
            MF[j, SPREAD] = (1.0 - w) * s + w * MAD_TO_SIGMA * abs(c_)
            w = a if a > MF[j, ETA] else MF[j, ETA]
            MF[j, ERR] = (1.0 - w) * MF[j, ERR] + w * abs(y[j])
        n += 1
        # model selection (DefaultMetricDetector._select)
        best, w = 0, MF[0, ERR]
        if MI[1, PRESENT] != 0 and t - t0 >= F[SEL1] and MF[1, ERR] * 1.05 < w:
            best, w = 1, MF[1, ERR] * 1.05
        if MI[2, PRESENT] != 0 and t - t0 >= F[SEL2] and MF[2, ERR] * 1.05 < w:
            best = 2
        if best != active and not MF[active, ERR] * 0.9 < MF[best, ERR]:
            active = best
    F[EZ], F[EZ2], F[TL], F[XL] = ez, ez2, t, x_last
    I[N], I[ACTIVE], I[FIRED] = n, active, 1 if fired else 0


def _compile() -> tuple[Any, bool]:
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency; kept for odd platforms
        _run_steady.py_func = _run_steady  # type: ignore[attr-defined]
        return _run_steady, False
    global gpd_pvalue
    try:
        gpd_pvalue = numba.njit(cache=True)(gpd_pvalue)
        return numba.njit(cache=True)(_run_steady), True
    except RuntimeError:  # no writable cache location (read-only install, no home): no cache
        gpd_pvalue = numba.njit(gpd_pvalue)
        return numba.njit(_run_steady), True


run_steady, COMPILED = _compile()


def warm() -> float:
    """Load the compiled loop into this process (compile it, the first time after an install:
    a few seconds; then it is read from numba's on-disk cache); the seconds it took."""
    started = time.perf_counter()
    f2 = np.zeros((0, 0))
    i2 = np.zeros((0, 0), dtype=np.int64)
    f1 = np.zeros(0)
    b1 = np.zeros(0, dtype=np.bool_)
    run_steady(f1, f1, f1, f1, b1, f1, np.zeros(N_F), np.zeros(N_I, dtype=np.int64), f2, i2,
               f2, f2, f2, i2, f2, i2, f2, f2, np.zeros(N_MS, dtype=np.int64))  # fmt: skip
    return time.perf_counter() - started
