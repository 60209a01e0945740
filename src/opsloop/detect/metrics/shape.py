"""Shape novelty: distance of the recent sub-sequence to a bounded memory of earlier ones."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from opsloop.detect.metrics.ewm import MAD_TO_SIGMA, RobustEWM

__all__ = ["ShapeNovelty"]

#: Window vectors are rounded to multiples of 1 / GRID (see :class:`ShapeNovelty`).
GRID = 65536.0
#: Bound on the level coordinate, so that every dot product stays exact.
LEVEL_CLIP = 256.0
#: Queries per matrix product in :meth:`ShapeNovelty.score_many`.
_BLOCK = 64
#: Values per pass of :meth:`ShapeNovelty.score_many` (bounds its scratch memory).
_CHUNK = 1 << 12
#: Whether ``sum`` of floats adds left to right in plain doubles (CPython < 3.12; later
#: versions compensate, which score_many's column sums do not).
_PLAIN_SUM = sum([1e16, 1.0, -1e16]) == 0.0


class ShapeNovelty:
    """Left nearest-neighbour distance of the last ``window`` points (a streaming discord score).

    The last ``window`` values ``w`` are centred and scaled,
    ``v = (w - mean(w)) / max(std(w), floor * s, q)`` with ``s`` the slow robust spread of the
    series (:class:`RobustEWM`) and ``q`` its quantum (the smallest non-zero step between
    consecutive values seen so far: 1 for counts, about 0 for real-valued series), so the shape
    is compared independently of level and of amplitude down to a noise floor (a flat stretch
    in a busy series is a *new* shape, noise in a flat series is not, and neither is a count
    or two in a series of mostly zeros: below one quantum, z-normalising would blow a single
    count up into a whole shape). ``level`` adds the window mean as one more coordinate,
    ``clip(level * (mean(w) - m) / s, -256, 256)``. The novelty of the current window is::

        d = min_k ||v - v_k|| / sqrt(window)

    over a FIFO memory of the last ``memory`` windows, excluding the ``window`` most recent
    ones (they overlap the current window: trivial matches), computed as
    ``|v_k|^2 - 2 v_k . v + |v|^2`` with the stored norms (one matrix-vector product). Memory
    is ``O(memory * window)``, time the same per point (a fixed bound, vectorised). Until
    ``2 * window`` windows are stored the score is NaN.

    Exact arithmetic. ``v`` is rounded to the grid ``2^-16`` (an error of at most ``8e-6`` per
    z-normalised coordinate). Since ``sum v^2 <= window``, every product, partial sum and norm
    is then a multiple of ``2^-32`` below ``2^21`` (for ``window + 256^2 < 2^19``), exactly
    representable in a double: ``d`` does not depend on the order of the sums, so the streaming
    path (matrix-vector product) and :meth:`score_many` (blocked matrix products) agree bit for
    bit on any BLAS.

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
        if window < 2 or memory < 2 * window or window >= 1 << 18 or floor <= 0.0 or level < 0.0:
            raise ValueError("need 2 <= window < 2^18, memory >= 2 * window, floor > 0, level >= 0")
        self.window = int(window)
        self.memory = int(memory)
        self.floor = floor
        self.level = level
        self.scale = RobustEWM(alpha=0.01, beta=0.005)
        self.recent: list[float] = []
        self.quantum = 0.0  # the smallest non-zero step seen so far (0: none yet)
        dim = self.window + (1 if level > 0.0 else 0)
        # One row per stored window: its vector, then its squared norm (the product of a row
        # with (-2 v, 1) is |v_k|^2 - 2 v_k . v in one pass).
        self._rows = np.zeros((self.memory, dim + 1))
        self._query = np.ones(dim + 1)  # scratch: (-2 v, 1)
        self.head = 0
        self.count = 0
        self._last: tuple[int, float, np.ndarray | None] | None = None

    @property
    def bank(self) -> np.ndarray:
        """The stored window vectors (ring buffer, ``memory`` rows)."""
        return self._rows[:, :-1]

    @property
    def norms(self) -> np.ndarray:
        """Their squared norms."""
        return self._rows[:, -1]

    def _vector(self, w: list[float], s: float, m: float, q: float) -> np.ndarray | None:
        """The grid-rounded vector of window ``w`` given the spread ``s``, level ``m`` and
        quantum ``q``."""
        if not s > 0.0:
            return None
        n = len(w)
        # plain left-to-right sums from 0.0, the order score_many uses column by column
        if _PLAIN_SUM:
            mu = sum(w) / n
            acc = sum([(x - mu) * (x - mu) for x in w])
        else:
            acc = 0.0
            for x in w:
                acc += x
            mu = acc / n
            acc = 0.0
            for x in w:
                acc += (x - mu) * (x - mu)
        sd = max(math.sqrt(acc / n), self.floor * s, q)
        v = (np.asarray(w, dtype=float) - mu) / sd
        if self.level > 0.0:
            lv = min(max(self.level * (mu - m) / s, -LEVEL_CLIP), LEVEL_CLIP)
            v = np.append(v, lv)
        return np.rint(v * GRID) / GRID

    def _valid(self) -> tuple[slice, ...]:
        """Ring positions of the windows a new one is compared with (all but the newest)."""
        usable = self.count - self.window
        if self.count < self.memory:
            return (slice(0, usable),)
        start = self.head  # the oldest entry; the `window` newest end at head - 1
        end = start + self.memory - self.window
        if end <= self.memory:
            return (slice(start, end),)
        return (slice(start, self.memory), slice(0, end - self.memory))

    def score(self, x: float) -> float:
        """Novelty of the window ending with ``x`` (no state change); NaN while warming up."""
        if not math.isfinite(x) or len(self.recent) < self.window - 1:
            return math.nan
        if self.count - self.window < self.window:
            return math.nan
        w = self.recent[len(self.recent) - self.window + 1 :]
        w.append(x)
        v = self._vector(w, self.scale.spread, self.scale.level, self.quantum)
        # update(x) stores this same vector (normalised with the spread known when x was
        # scored) instead of building it again
        self._last = (self.count, x, v)
        if v is None:
            return math.nan
        q = self._query
        np.multiply(v, -2.0, out=q[:-1])
        rows = self._rows
        valid = self._valid()
        best = float((rows[valid[0]] @ q).min())
        if len(valid) > 1:
            best = min(best, float((rows[valid[1]] @ q).min()))
        best = max(best + float(np.dot(v, v)), 0.0)
        return math.sqrt(best / self.window)

    def _store(self, v: np.ndarray) -> None:
        row = self._rows[self.head]
        row[:-1] = v
        row[-1] = float(np.dot(v, v))
        self.head = (self.head + 1) % self.memory
        self.count += 1

    def update(self, x: float) -> None:
        """Learn one value (non-finite ignored)."""
        if not math.isfinite(x):
            return
        self.scale.update(x)
        if self.recent:
            step = abs(x - self.recent[-1])
            if step > 0.0 and (self.quantum == 0.0 or step < self.quantum):
                self.quantum = step
        self.recent.append(x)
        if len(self.recent) > self.window:
            del self.recent[0]
        if len(self.recent) == self.window:
            last = self._last
            if last is not None and last[0] == self.count and last[1] == x:
                v = last[2]
            else:
                v = self._vector(self.recent, self.scale.spread, self.scale.level, self.quantum)
            if v is not None:
                self._store(v)
        self._last = None

    def score_many(self, xs: Sequence[float]) -> list[float]:
        """``score(x)`` then ``update(x)`` for each value in turn; the list of scores.

        Identical, bit for bit, to the per-point loop. Two passes: a scalar one runs the
        spread recurrence and decides which windows are stored (and with which spread they are
        normalised), then the nearest-neighbour distances of all new windows are computed in
        blocks: one matrix product of a block of windows against the memory band they may see,
        whose diagonal band (a strided view) holds each window's candidates. Works through
        ``xs`` in chunks, so the extra memory is bounded.
        """
        out: list[float] = []
        for c0 in range(0, len(xs), _CHUNK):
            out += self._score_chunk([float(x) for x in xs[c0 : c0 + _CHUNK]])
        return out

    def _score_chunk(self, xs: list[float]) -> list[float]:
        isfinite = math.isfinite
        fin = [i for i, x in enumerate(xs) if isfinite(x)]
        xf = [xs[i] for i in fin] if len(fin) < len(xs) else xs
        W, M = self.window, self.memory
        sc = self.scale
        alpha, beta, k = sc.alpha, sc.beta, sc.k
        lev, spr, n = sc.level, sc.spread, sc.n
        prefix = self.recent[-(W - 1) :]
        rlen = len(self.recent)
        count0 = count = self.count
        # per new window: index in xf of its last value, spread and level it is normalised
        # with, and whether it is also scored (count >= 2 W when it comes)
        ent_j: list[int] = []
        ent_s: list[float] = []
        ent_m: list[float] = []
        ent_q: list[bool] = []
        ent_u: list[float] = []
        # the quantum before and after each value (the smallest non-zero step so far)
        nf = len(xf)
        q_cum = np.full(nf + 1, self.quantum if self.quantum > 0.0 else math.inf)
        if nf:
            prev = np.asarray(self.recent[-1:] + xf[:-1], dtype=float)
            steps = np.abs(np.asarray(xf[nf - len(prev) :], dtype=float) - prev)
            steps[steps == 0.0] = math.inf
            q_cum[1 + nf - len(prev) :] = steps
            np.minimum.accumulate(q_cum, out=q_cum)
        q_cum[np.isinf(q_cum)] = 0.0
        j = 0
        while j < nf and not (
            rlen == W and count >= 2 * W and n >= 3 and 1.0 / (n + 1) <= alpha and 1.0 / n <= beta
        ):
            x = xf[j]
            s_pre, m_pre = spr, lev
            n += 1
            if n == 1:
                lev = x
            else:
                r = x - lev
                if spr > 0.0 and n > 3:
                    lim = k * spr
                    c = min(max(r, -lim), lim)
                else:
                    c = r
                a = max(alpha, 1.0 / n)
                b = max(beta, 1.0 / (n - 1))
                lev += a * c
                spr = (1.0 - b) * spr + b * MAD_TO_SIGMA * abs(c)
            full = rlen >= W - 1
            rlen = min(rlen + 1, W)
            if full:
                scored = count - W >= W  # scored first: normalised with the spread before x
                s_use, m_use = (s_pre, m_pre) if scored else (spr, lev)
                if s_use > 0.0:
                    ent_j.append(j)
                    ent_s.append(s_use)
                    ent_m.append(m_use)
                    ent_q.append(scored)
                    ent_u.append(float(q_cum[j] if scored else q_cum[j + 1]))
                    count += 1
            j += 1
        j_fast = j
        sp: list[float] = []
        mp: list[float] = []
        if j < nf:
            # steady state: every value completes a scored window, weights are constant
            omb, bm = 1.0 - beta, beta * MAD_TO_SIGMA
            sp_append, mp_append = sp.append, mp.append
            for x in xf[j:] if j else xf:
                sp_append(spr)
                mp_append(lev)
                r = x - lev
                if spr > 0.0:
                    lim = k * spr
                    if r > lim:
                        r = lim
                    elif r < -lim:
                        r = -lim
                lev += alpha * r
                spr = omb * spr + bm * abs(r)
            n += nf - j
        sc.level, sc.spread, sc.n = lev, spr, n
        self.quantum = float(q_cum[nf])
        self.recent = (self.recent + xf[-W:])[-W:]
        self._last = None
        sp_arr = np.asarray(sp, dtype=float)
        keep_fast = sp_arr > 0.0
        jj = np.concatenate([np.asarray(ent_j, dtype=np.int64), j_fast + np.flatnonzero(keep_fast)])
        n_new = len(jj)
        out = [math.nan] * len(xs)
        if n_new == 0:
            return out
        s_arr = np.concatenate([np.asarray(ent_s, dtype=float), sp_arr[keep_fast]])
        query = np.concatenate([np.asarray(ent_q, dtype=bool), np.ones(n_new - len(ent_j), bool)])
        arr = np.asarray(prefix + xf, dtype=float)
        # windows end at position len(prefix) + j of arr, so start at len(prefix) + j - (W - 1)
        win = sliding_window_view(arr, W)[jj + (len(prefix) - (W - 1))]
        acc = 0.0 + win[:, 0]
        for i in range(1, W):
            acc += win[:, i]
        mu = acc / W
        dev = win - mu[:, None]
        sq = dev * dev
        acc = 0.0 + sq[:, 0]
        for i in range(1, W):
            acc += sq[:, i]
        q_arr = np.concatenate([np.asarray(ent_u, dtype=float), q_cum[j_fast:nf][keep_fast]])
        sd = np.maximum(np.maximum(np.sqrt(acc / W), self.floor * s_arr), q_arr)
        v = dev / sd[:, None]
        if self.level > 0.0:
            m_arr = np.concatenate([np.asarray(ent_m, dtype=float), np.asarray(mp)[keep_fast]])
            lv = np.clip(self.level * (mu - m_arr) / s_arr, -LEVEL_CLIP, LEVEL_CLIP)
            v = np.concatenate([v, lv[:, None]], axis=1)
        v = np.rint(v * GRID) / GRID
        dim = v.shape[1]
        # All windows in count order, after M rows that no window may match (norm +inf).
        n_old = min(count0, M)
        table = np.zeros((M + n_old + n_new, dim + 1))
        table[:M, -1] = np.inf
        if n_old:
            table[M : M + n_old] = self._rows[(count0 - n_old + np.arange(n_old)) % M]
        new_rows = table[M + n_old :]
        new_rows[:, :-1] = v
        new_rows[:, -1] = np.einsum("ij,ij->i", v, v)
        # Window g (global count index) is row M + g - g0; it is compared with windows
        # [g - M, g - W): rows [g - g0, g - g0 + M - W).
        g0 = count0 - n_old
        band = M - W
        qrows = np.flatnonzero(query)
        best = np.empty(len(qrows))
        if len(qrows):
            q_all = np.empty((n_new, dim + 1))
            np.multiply(v, -2.0, out=q_all[:, :-1])
            q_all[:, -1] = 1.0
            first = int(qrows[0])  # once windows are scored, all later ones are
            for b0 in range(first, n_new, _BLOCK):
                b1 = min(b0 + _BLOCK, n_new)
                lo = count0 + b0 - g0
                d = q_all[b0:b1] @ table[lo : lo + (b1 - b0) - 1 + band].T
                diag = as_strided(
                    d, shape=(b1 - b0, band), strides=(d.strides[0] + d.strides[1], d.strides[1])
                )
                best[b0 - first : b1 - first] = diag.min(axis=1)
            best += new_rows[first:, -1]
            res = np.sqrt(np.maximum(best, 0.0) / W)
            pos = np.asarray(fin, dtype=np.int64)[jj[qrows]] if xf is not xs else jj[qrows]
            full_out = np.full(len(xs), np.nan)
            full_out[pos] = res
            out = full_out.tolist()
        # the ring buffer keeps the last M windows
        kept = min(n_new, M)
        self._rows[(count0 + n_new - kept + np.arange(kept)) % M] = new_rows[n_new - kept :]
        self.count = count0 + n_new
        self.head = self.count % M
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state."""
        n = min(self.count, self.memory)
        bank = self.bank
        return {
            "window": self.window,
            "memory": self.memory,
            "floor": self.floor,
            "level": self.level,
            "scale": self.scale.to_dict(),
            "recent": list(self.recent),
            "quantum": self.quantum,
            "bank": bank[:n].tolist() if self.count < self.memory else bank.tolist(),
            "head": self.head,
            "count": self.count,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ShapeNovelty:
        """Inverse of :meth:`to_dict` (vectors of older snapshots are rounded to the grid)."""
        obj = cls(d["window"], d["memory"], d["floor"], d["level"])
        obj.scale = RobustEWM.from_dict(d["scale"])
        obj.recent = [float(v) for v in d["recent"]]
        obj.quantum = float(d.get("quantum", 0.0))  # (older snapshots: learnt again)
        rows = d["bank"]
        if rows:
            bank = np.rint(np.asarray(rows, dtype=float) * GRID) / GRID
            obj._rows[: len(rows), :-1] = bank
            obj._rows[: len(rows), -1] = np.einsum("ij,ij->i", bank, bank)
        obj.head, obj.count = int(d["head"]), int(d["count"])
        return obj
