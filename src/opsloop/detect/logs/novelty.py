"""Novelty of log templates: new and rare templates, with a score that fades as they become common.

Math. Every template ``k`` keeps a (optionally time-decayed) occurrence count ``c_k``; the stream
keeps the total ``C = sum_k c_k``. With a half-life ``h`` both decay as ``c <- c * 2^(-dt/h)``
(no decay when ``h`` is ``None``). The novelty of ``k`` is

    novelty(k) = exp(-c_k / tau),   tau = max(familiarity, rarity * C)

so an unseen template scores 1, and the score falls towards 0 as the template is seen; ``tau``
grows with the stream so that in a busy stream a template stays "rare" until it reaches a share
``rarity`` of the traffic. ``learn_one`` scores the template *before* counting it and emits an
:class:`~opsloop.detect.anomaly.Anomaly` (``new_template`` or ``rare_template``) when the score
reaches ``threshold``. Memory: one entry per template; with a half-life, templates whose decayed
count falls below ``forget_below`` are forgotten (and would be new again).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from opsloop.detect.anomaly import Anomaly, to_epoch

__all__ = ["NoveltyScorer"]

_SOURCE = "logs.novelty"


class NoveltyScorer:
    """Streaming novelty of template ids: ``exp(-c_k / max(familiarity, rarity * C))``.

    >>> s = NoveltyScorer(familiarity=2.0)
    >>> s.learn_one("T1", 0.0).kind
    'new_template'
    >>> round(s.score_one("T1"), 3)  # seen once: exp(-1/2)
    0.607
    >>> s.learn_one("T1", 1.0).kind
    'rare_template'
    >>> for i in range(10):
    ...     _ = s.learn_one("T1", float(i))
    >>> s.learn_one("T1", 11.0) is None, s.score_one("T9")
    (True, 1.0)
    """

    def __init__(
        self,
        familiarity: float = 5.0,
        rarity: float = 1e-5,
        half_life: float | None = None,
        threshold: float = 0.5,
        forget_below: float = 1e-3,
    ) -> None:
        if familiarity <= 0 or rarity < 0 or not 0 < threshold <= 1:
            raise ValueError("familiarity > 0, rarity >= 0 and 0 < threshold <= 1 are required")
        if half_life is not None and half_life <= 0:
            raise ValueError("half_life must be positive or None")
        self.familiarity = float(familiarity)
        self.rarity = float(rarity)
        self.half_life = None if half_life is None else float(half_life)
        self.threshold = float(threshold)
        self.forget_below = float(forget_below)
        self._counts: dict[str, list[float]] = {}  # template -> [count, time of count]
        self._total = 0.0
        self._t: float | None = None
        self._since_prune = 0

    def _decay(self, dt: float) -> float:
        if self.half_life is None or dt <= 0:
            return 1.0
        return 2.0 ** (-dt / self.half_life)

    def _count(self, template_id: str, now: float) -> float:
        entry = self._counts.get(template_id)
        if entry is None:
            return 0.0
        return entry[0] * self._decay(now - entry[1])

    def _tau(self, now: float) -> float:
        total = self._total * self._decay(now - self._t) if self._t is not None else 0.0
        return max(self.familiarity, self.rarity * total)

    def score_one(self, template_id: str, t: float | datetime | None = None) -> float:
        """Novelty in [0, 1] of ``template_id`` at time ``t`` (default: the last learnt time)."""
        now = to_epoch(t) if t is not None else (self._t if self._t is not None else 0.0)
        return math.exp(-self._count(template_id, now) / self._tau(now))

    def learn_one(self, template_id: str, t: float | datetime) -> Anomaly | None:
        """Score ``template_id`` at ``t``, then count it; an :class:`Anomaly` if it was novel."""
        now = to_epoch(t)
        if self._t is not None and now < self._t:
            now = self._t  # late line: count it at the current time
        seen = template_id in self._counts
        count = self._count(template_id, now)
        score = math.exp(-count / self._tau(now))
        self._total = (self._total * self._decay(now - self._t) if self._t is not None else 0.0) + 1
        self._t = now
        self._counts[template_id] = [count + 1.0, now]
        self._since_prune += 1
        if self.half_life is not None and self._since_prune >= 1024:
            self._prune(now)
        if score < self.threshold:
            return None
        kind = "rare_template" if seen else "new_template"
        evidence = (
            [f"template {template_id} seen {count:.1f} times before"]
            if seen
            else [f"template {template_id} never seen before"]
        )
        return Anomaly(
            _SOURCE,
            kind,
            score,
            t,
            template_id,
            evidence,
            {"count_before": count, "tau": self._tau(now)},
        )

    def _prune(self, now: float) -> None:
        self._since_prune = 0
        for k in [k for k in self._counts if self._count(k, now) < self.forget_below]:
            del self._counts[k]

    def __len__(self) -> int:
        return len(self._counts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state (parameters and counts)."""
        return {
            "familiarity": self.familiarity,
            "rarity": self.rarity,
            "half_life": self.half_life,
            "threshold": self.threshold,
            "forget_below": self.forget_below,
            "counts": {k: list(v) for k, v in self._counts.items()},
            "total": self._total,
            "t": self._t,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NoveltyScorer:
        """Inverse of :meth:`to_dict`."""
        s = cls(d["familiarity"], d["rarity"], d["half_life"], d["threshold"], d["forget_below"])
        s._counts = {k: [float(v[0]), float(v[1])] for k, v in d["counts"].items()}
        s._total = float(d["total"])
        s._t = d["t"]
        return s
