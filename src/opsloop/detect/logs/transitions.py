"""Session anomalies from event order: an n-gram next-event model (DeepLog's idea, without a net).

Math. Each session ``^ e_1 ... e_m $`` (start and end markers added) is read as transitions from
a context of the ``order - 1`` previous events to the next event. Counts ``n(ctx, e)`` give the
smoothed probability ``P(e | ctx) = (n(ctx, e) + beta) / (n(ctx) + beta (|V| + 1))``. A session's
score is its most surprising transition, ``max_t -log10 P(e_t | ctx_t)``. The decision threshold
is a quantile ``q`` of the scores of training sessions (:meth:`TransitionModel.fit_threshold`,
called on the training sample after learning), so it comes from unlabelled training data only.
Memory: one counter per distinct (context, event) pair seen.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from opsloop.detect.anomaly import Anomaly

__all__ = ["TransitionModel"]

_SOURCE = "logs.sessions.transitions"
_START, _END = "^", "$"


class TransitionModel:
    """n-gram next-event model; score = the least likely transition of a session (decades).

    >>> m = TransitionModel()
    >>> for _ in range(50):
    ...     m.learn_one(["open", "read", "close"])
    ...     m.learn_one(["open", "write", "close"])
    >>> m.fit_threshold([["open", "read", "close"], ["open", "write", "close"]])
    >>> m.predict_one(["open", "write", "close"]), m.predict_one(["open", "close", "read"])
    (False, True)
    """

    def __init__(self, order: int = 2, beta: float = 0.5, quantile: float = 0.99) -> None:
        if order < 2 or beta <= 0 or not 0 < quantile <= 1:
            raise ValueError("order >= 2, beta > 0 and 0 < quantile <= 1 are required")
        self.order = int(order)
        self.beta = float(beta)
        self.quantile = float(quantile)
        self._counts: dict[str, dict[str, int]] = {}
        self._totals: dict[str, int] = {}
        self._vocab: set[str] = set()
        self.threshold: float | None = None

    def _transitions(self, events: Sequence[str]) -> Iterable[tuple[str, str]]:
        seq = [_START] * (self.order - 1) + list(events) + [_END]
        for t in range(self.order - 1, len(seq)):
            yield "\x1f".join(seq[t - self.order + 1 : t]), seq[t]

    def learn_one(self, events: Sequence[str]) -> None:
        """Learn the transitions of one training session."""
        for ctx, e in self._transitions(events):
            row = self._counts.setdefault(ctx, {})
            row[e] = row.get(e, 0) + 1
            self._totals[ctx] = self._totals.get(ctx, 0) + 1
            self._vocab.add(e)

    def _surprisals(self, events: Sequence[str]) -> list[tuple[float, str, str]]:
        k = len(self._vocab) + 1
        out = []
        for ctx, e in self._transitions(events):
            n = self._counts.get(ctx, {}).get(e, 0)
            p = (n + self.beta) / (self._totals.get(ctx, 0) + self.beta * k)
            out.append((-math.log10(p), ctx, e))
        return out

    def score_one(self, events: Sequence[str]) -> float:
        """The surprisal (decades) of the least likely transition of the session."""
        return max(s for s, _, _ in self._surprisals(events))

    def fit_threshold(self, sessions: Iterable[Sequence[str]]) -> None:
        """Set ``threshold`` to the ``quantile`` of the scores of (unlabelled) training sessions."""
        scores = [self.score_one(s) for s in sessions]
        if not scores:
            raise ValueError("fit_threshold needs at least one session")
        self.threshold = float(np.quantile(scores, self.quantile))

    def predict_one(self, events: Sequence[str]) -> bool:
        """True when the score exceeds the training-derived threshold."""
        if self.threshold is None:
            raise RuntimeError("call fit_threshold() on training sessions first")
        return self.score_one(events) > self.threshold

    def anomaly(self, key: str, events: Sequence[str], time: float) -> Anomaly | None:
        """An :class:`Anomaly` (kind ``session_order``) when anomalous, else ``None``."""
        if not self.predict_one(events):
            return None
        worst = max(self._surprisals(events))
        ctx = worst[1].replace("\x1f", " ")
        return Anomaly(
            _SOURCE,
            "session_order",
            worst[0],
            time,
            key,
            [f"unlikely transition {ctx} -> {worst[2]} (P = {10 ** -worst[0]:.2g})"],
            {"threshold": self.threshold, "events": len(events)},
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "order": self.order,
            "beta": self.beta,
            "quantile": self.quantile,
            "counts": self._counts,
            "vocab": sorted(self._vocab),
            "threshold": self.threshold,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TransitionModel:
        """Inverse of :meth:`to_dict`."""
        m = cls(d["order"], d["beta"], d["quantile"])
        m._counts = {c: {e: int(n) for e, n in row.items()} for c, row in d["counts"].items()}
        m._totals = {c: sum(row.values()) for c, row in m._counts.items()}
        m._vocab = set(d["vocab"])
        m.threshold = d["threshold"]
        return m
