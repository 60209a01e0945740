"""Session anomalies from event counts: rules mined from unlabelled training sessions.

Math. A session is its event-count vector ``x`` (``x_e`` = occurrences of template ``e``). The model
stores the distinct count vectors of the training sessions with their multiplicities (normal
workloads repeat a handful of patterns, so this table is small; it is capped at ``max_patterns``,
evicting the rarest, whose weight then counts against every rule). From that table it mines, over
the vocabulary ``V`` of templates seen in training, two kinds of *rules* with their *support*
``s`` (the weighted share of training sessions that satisfy them):

* constant rules ``x_e = k`` (``k`` the most common count of ``e``), e.g. "one allocateBlock";
* ratio rules ``a x_e = b x_f`` with coprime integers ``1 <= a, b <= max_coef`` (the sparse linear
  invariants of Lou et al., 2010), e.g. "as many PacketResponder-terminating as Received-block",
  mined for pairs not both fixed by constant rules;

and keeps those with ``s >= support``. Because the training data are unlabelled, ``support < 1``
tolerates a share ``1 - support`` of anomalous sessions in training per rule. A template outside
``V`` violates the implicit rule ``x_e = 0`` (support 1). The score of a session is the summed
surprisal of the rules it violates,

    score(x) = sum_{violated r} -log10(max(1 - s_r, 1 / (N + 1)))        (N = training sessions)

and the session is anomalous when ``score >= threshold = -log10(1 - support)``: the surprisal of
the weakest admissible rule, i.e. when it breaks at least one rule that held on a ``support``
share of the training sessions. Everything that decides comes from the training data.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from opsloop.detect.anomaly import Anomaly

__all__ = ["CountRuleModel"]

_SOURCE = "logs.sessions.count_rules"


def _coprime_pairs(max_coef: int) -> list[tuple[int, int]]:
    return [
        (a, b)
        for a in range(1, max_coef + 1)
        for b in range(1, max_coef + 1)
        if math.gcd(a, b) == 1
    ]


class CountRuleModel:
    """Constant and ratio rules over event counts, mined from unlabelled sessions.

    >>> m = CountRuleModel()
    >>> for _ in range(100):
    ...     m.learn_one(["open", "read", "read", "close"])
    ...     m.learn_one(["open", "read", "close", "audit"])
    >>> m.predict_one(["open", "read", "close"]), m.predict_one(["open", "read"])
    (False, True)
    >>> m.explain_one(["open", "read"])[0]
    'count(close)=0, expected 1 (held in 100.0% of 200 training sessions)'
    >>> m.predict_one(["open", "panic", "close"])
    True
    """

    def __init__(
        self, support: float = 0.98, max_coef: int = 3, max_patterns: int = 50_000
    ) -> None:
        if not 0.5 < support < 1:
            raise ValueError("support must be in (0.5, 1)")
        self.support = float(support)
        self.max_coef = int(max_coef)
        self.max_patterns = int(max_patterns)
        self._patterns: Counter[tuple[tuple[str, int], ...]] = Counter()
        self._evicted = 0.0
        self._n = 0.0
        self._compiled: dict[str, Any] | None = None

    @property
    def threshold(self) -> float:
        """Decision threshold on :meth:`score_one`: ``-log10(1 - support)``."""
        return -math.log10(1.0 - self.support)

    @property
    def n_sessions(self) -> float:
        """Number of training sessions learnt."""
        return self._n

    @staticmethod
    def _key(events: Sequence[str]) -> tuple[tuple[str, int], ...]:
        return tuple(sorted(Counter(events).items()))

    def learn_one(self, events: Sequence[str]) -> None:
        """Learn one (unlabelled) training session given as its template ids."""
        self._patterns[self._key(events)] += 1
        self._n += 1
        self._compiled = None
        if len(self._patterns) > self.max_patterns:
            keep = self._patterns.most_common(int(self.max_patterns * 0.9))
            self._evicted += self._n - self._evicted - sum(w for _, w in keep)
            self._patterns = Counter(dict(keep))

    # -- mining ---------------------------------------------------------------------------------
    def _compile(self) -> dict[str, Any]:
        if self._compiled is not None:
            return self._compiled
        vocab = sorted({e for p in self._patterns for e, _ in p})
        index = {e: i for i, e in enumerate(vocab)}
        keys = list(self._patterns)
        counts = np.zeros((len(keys), len(vocab)), dtype=np.int64)
        for r, p in enumerate(keys):
            for e, c in p:
                counts[r, index[e]] = c
        w = np.array([self._patterns[p] for p in keys], dtype=float)
        n = max(self._n, 1.0)
        const: list[tuple[int, int, float]] = []  # (column, value, support)
        fixed = set()
        for j in range(len(vocab)):
            values, inverse = np.unique(counts[:, j], return_inverse=True)
            mass = np.bincount(inverse, weights=w)
            best = int(np.argmax(mass))
            s = float(mass[best]) / n
            if s >= self.support:
                const.append((j, int(values[best]), s))
                fixed.add(j)
        ratio: list[tuple[int, int, int, int, float]] = []  # (i, j, a, b, support)
        coefs = _coprime_pairs(self.max_coef)
        for i in range(len(vocab)):
            for j in range(i + 1, len(vocab)):
                if i in fixed and j in fixed:
                    continue
                ci, cj = counts[:, i], counts[:, j]
                best_s, best_ab = 0.0, (1, 1)
                for a, b in coefs:
                    s = float(w[a * ci == b * cj].sum()) / n
                    if s > best_s:
                        best_s, best_ab = s, (a, b)
                if best_s >= self.support:
                    ratio.append((i, j, best_ab[0], best_ab[1], best_s))
        floor = 1.0 / (n + 1.0)
        self._compiled = {
            "vocab": vocab,
            "index": index,
            "c_col": np.array([c[0] for c in const], dtype=np.int64),
            "c_val": np.array([c[1] for c in const], dtype=np.int64),
            "c_sup": np.array([c[2] for c in const], dtype=float),
            "r_i": np.array([r[0] for r in ratio], dtype=np.int64),
            "r_j": np.array([r[1] for r in ratio], dtype=np.int64),
            "r_a": np.array([r[2] for r in ratio], dtype=np.int64),
            "r_b": np.array([r[3] for r in ratio], dtype=np.int64),
            "r_sup": np.array([r[4] for r in ratio], dtype=float),
            "unseen": -math.log10(floor),
            "floor": floor,
        }
        return self._compiled

    def rules(self) -> list[str]:
        """The mined rules, human-readable, with their training support."""
        c = self._compile()
        v = c["vocab"]
        out = [
            f"count({v[j]})={k} [{s:.1%}]"
            for j, k, s in zip(c["c_col"], c["c_val"], c["c_sup"], strict=True)
        ]
        out += [
            f"{a}*count({v[i]})={b}*count({v[j]}) [{s:.1%}]"
            for i, j, a, b, s in zip(
                c["r_i"], c["r_j"], c["r_a"], c["r_b"], c["r_sup"], strict=True
            )
        ]
        return out

    # -- scoring --------------------------------------------------------------------------------
    def _violations(self, events: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str], int]:
        c = self._compile()
        x = np.zeros(len(c["vocab"]), dtype=np.int64)
        unseen = []
        for e, k in Counter(events).items():
            j = c["index"].get(e)
            if j is None:
                unseen.append(e)
            else:
                x[j] = k
        bad_c = x[c["c_col"]] != c["c_val"]
        bad_r = c["r_a"] * x[c["r_i"]] != c["r_b"] * x[c["r_j"]]
        return bad_c, bad_r, sorted(unseen), x

    def score_one(self, events: Sequence[str]) -> float:
        """Summed surprisal (decades) of the rules the session violates; 0 when it fits."""
        c = self._compile()
        bad_c, bad_r, unseen, _ = self._violations(events)
        surprise = -np.log10(np.maximum(1.0 - np.concatenate([c["c_sup"], c["r_sup"]]), c["floor"]))
        return float(surprise[np.concatenate([bad_c, bad_r])].sum() + len(unseen) * c["unseen"])

    def predict_one(self, events: Sequence[str]) -> bool:
        """True when the session breaks at least one rule (``score >= threshold``)."""
        return self.score_one(events) >= self.threshold - 1e-9

    def explain_one(self, events: Sequence[str]) -> list[str]:
        """One sentence per violated rule (unseen templates first)."""
        c = self._compile()
        bad_c, bad_r, unseen, x = self._violations(events)
        v, n = c["vocab"], int(self._n)
        out = [f"template {e} never seen in {n} training sessions" for e in unseen]
        for r in np.flatnonzero(bad_c):
            j, k, s = c["c_col"][r], c["c_val"][r], c["c_sup"][r]
            out.append(
                f"count({v[j]})={x[j]}, expected {k} (held in {s:.1%} of {n} training sessions)"
            )
        for r in np.flatnonzero(bad_r):
            i, j, a, b, s = (c[k][r] for k in ("r_i", "r_j", "r_a", "r_b", "r_sup"))
            out.append(
                f"{a}*count({v[i]})={a * x[i]} != {b}*count({v[j]})={b * x[j]} "
                f"(held in {s:.1%} of {n} training sessions)"
            )
        return out

    def anomaly(self, key: str, events: Sequence[str], time: float) -> Anomaly | None:
        """An :class:`Anomaly` (kind ``session``) when the session is anomalous, else ``None``."""
        score = self.score_one(events)
        if score < self.threshold - 1e-9:
            return None
        return Anomaly(
            _SOURCE,
            "session",
            score,
            time,
            key,
            self.explain_one(events),
            {"threshold": self.threshold, "events": len(events)},
        )

    # -- state ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-able state: parameters and the weighted table of count patterns."""
        return {
            "support": self.support,
            "max_coef": self.max_coef,
            "max_patterns": self.max_patterns,
            "n": self._n,
            "evicted": self._evicted,
            "patterns": [[[list(ec) for ec in p], w] for p, w in self._patterns.items()],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CountRuleModel:
        """Inverse of :meth:`to_dict`."""
        m = cls(d["support"], d["max_coef"], d["max_patterns"])
        m._n = float(d["n"])
        m._evicted = float(d["evicted"])
        m._patterns = Counter(
            {tuple((str(e), int(c)) for e, c in p): int(w) for p, w in d["patterns"]}
        )
        return m
