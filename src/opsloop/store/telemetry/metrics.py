"""Metric sample and series value types shared by the collector, store and API."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field


def canonical_labels(labels: dict[str, str]) -> str:
    """Labels as a canonical JSON string (sorted keys): the identity of a series with its name.

    >>> canonical_labels({"b": "2", "a": "1"})
    '{"a":"1","b":"2"}'
    """
    return json.dumps({str(k): str(v) for k, v in sorted(labels.items())}, separators=(",", ":"))


@dataclass(frozen=True)
class MetricSample:
    """One observation of a series at a time (seconds since the epoch, UTC)."""

    name: str
    value: float
    ts: float
    labels: dict[str, str] = field(default_factory=dict)

    def is_finite(self) -> bool:
        """NaN and infinities are never stored."""
        return math.isfinite(self.value) and math.isfinite(self.ts)


@dataclass
class Series:
    """A queried series: its identity and its (time, value) points, oldest first."""

    name: str
    labels: dict[str, str]
    points: list[tuple[float, float]]
