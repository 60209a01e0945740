"""The answer to "when does this series reach the threshold?"."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ETA"]


@dataclass(frozen=True)
class ETA:
    """Time to threshold in seconds: point estimate and an approximate 90 % interval.

    ``source`` says which fit answered: ``"trend"`` (the long fit with its daily profile,
    :class:`~opsloop.detect.metrics.forecast.TrendForecaster`) or ``"recent"`` (the pace of
    the last hour, :class:`~opsloop.detect.metrics.recent_trend.RecentTrend`).
    """

    seconds: float
    low: float
    high: float
    source: str = "trend"
