"""The anomaly record every opsloop detector emits.

An :class:`Anomaly` is a small, immutable fact: *which* detector (``source``) saw *what kind* of
deviation (``kind``), *how strong* it is (``score``, larger = more anomalous, comparable within one
``source``/``kind``), *when* (``time``: epoch seconds or a ``datetime``), *about what* (``key``: a
template id, a session key, a series name), with human-readable ``evidence`` lines and
machine-readable ``details``. The incident engine consumes these records; they round-trip through
a JSON-able dict.

>>> a = Anomaly("logs.novelty", "new_template", 1.0, 12.5, "T42", ["first seen"], {"count": 0})
>>> Anomaly.from_dict(a.to_dict()) == a
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Anomaly", "to_epoch"]


def to_epoch(t: float | datetime) -> float:
    """Seconds since the epoch for a number or a ``datetime`` (naive datetimes are taken as UTC).

    >>> to_epoch(3.5)
    3.5
    >>> to_epoch(datetime(1970, 1, 1, 0, 1))
    60.0
    """
    if isinstance(t, datetime):
        if t.tzinfo is None:
            return (t - datetime(1970, 1, 1)).total_seconds()
        return t.timestamp()
    return float(t)


@dataclass(frozen=True)
class Anomaly:
    """One detected anomaly (immutable).

    ``score`` is the detector's strength measure (its meaning, e.g. a z-score or a surprisal in
    decades, is documented by each detector and repeated in ``details``); ``evidence`` holds short
    sentences an operator can read; ``details`` holds JSON-able numbers behind them.

    >>> Anomaly("logs.frequency", "burst", 7.2, 60.0, "T3").evidence
    []
    """

    source: str
    kind: str
    score: float
    time: float | datetime
    key: str
    evidence: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; a ``datetime`` time becomes ``{"iso": ...}``."""
        t: Any = {"iso": self.time.isoformat()} if isinstance(self.time, datetime) else self.time
        return {
            "source": self.source,
            "kind": self.kind,
            "score": float(self.score),
            "time": t,
            "key": self.key,
            "evidence": list(self.evidence),
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Anomaly:
        """Inverse of :meth:`to_dict`."""
        t = d["time"]
        time: float | datetime = datetime.fromisoformat(t["iso"]) if isinstance(t, dict) else t
        return cls(
            source=d["source"],
            kind=d["kind"],
            score=float(d["score"]),
            time=time,
            key=d["key"],
            evidence=list(d.get("evidence", [])),
            details=dict(d.get("details", {})),
        )
