"""Turn counter samples into per-second rates, series by series.

A series is identified by its name and its sorted labels. For each new sample of a series
:class:`CounterRate` compares it with the previous one and emits

    rate = (value - previous value) / (ts - previous ts)

When the value went down the counter was reset (the process restarted), so — as Prometheus'
``rate()`` does — the counter is taken to have restarted from 0 and the increase is the new
value itself. The first sample of a series yields nothing; so do samples whose timestamp is
not after the previous one (duplicates, out of order: ignored, state unchanged), and NaN or
infinite values (ignored, state unchanged). With ``max_gap_s`` set, a sample arriving more than
that long after the previous one starts the series afresh instead of averaging over the gap.

**Naming.** The rate of ``<name>_total`` is ``<name>_per_s``; the rate of a counter without the
``_total`` suffix is ``<name>_per_s`` too (see :func:`rate_name`). Labels are unchanged and the
rate carries the timestamp of the newer sample.

**Memory.** At most ``max_series`` series are remembered (default 10 000); when a new series
would exceed that, the least recently updated one is forgotten (LRU), so it restarts with no
rate on its next sample. Each remembered series costs its key (name and label pairs) plus two
floats — roughly 200-500 bytes for typical label sets, so about 2-5 MB at the default cap.

>>> cr = CounterRate()
>>> cr.update(MetricSample("req_total", 100.0, 10.0, {"code": "200"})) is None
True
>>> cr.update(MetricSample("req_total", 130.0, 20.0, {"code": "200"}))
MetricSample(name='req_per_s', value=3.0, ts=20.0, labels={'code': '200'})
>>> cr.update(MetricSample("req_total", 20.0, 30.0, {"code": "200"})).value  # reset: 0 -> 20
2.0
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable

from opsloop.store.telemetry.metrics import MetricSample

__all__ = ["RATE_SUFFIX", "CounterRate", "rate_name", "series_key"]

RATE_SUFFIX = "_per_s"

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


def rate_name(name: str) -> str:
    """The name of the rate series of counter ``name``.

    >>> rate_name("http_requests_total"), rate_name("bytes_sent")
    ('http_requests_per_s', 'bytes_sent_per_s')
    """
    base = name[: -len("_total")] if name.endswith("_total") and name != "_total" else name
    return base + RATE_SUFFIX


def series_key(name: str, labels: dict[str, str]) -> SeriesKey:
    """A series' identity: its name and its labels sorted by name.

    >>> series_key("a", {"z": "1", "b": "2"})
    ('a', (('b', '2'), ('z', '1')))
    """
    return name, tuple(sorted(labels.items()))


class CounterRate:
    """Per-series counter → rate conversion with reset handling and an LRU cap on series."""

    def __init__(self, max_series: int = 10_000, *, max_gap_s: float | None = None) -> None:
        if max_series < 1:
            raise ValueError("max_series must be at least 1")
        if max_gap_s is not None and max_gap_s <= 0:
            raise ValueError("max_gap_s must be positive")
        self.max_series = max_series
        self.max_gap_s = max_gap_s
        self.resets = 0
        """How many counter resets were seen."""
        self.evicted = 0
        """How many series were forgotten to stay under ``max_series``."""
        self._last: OrderedDict[SeriesKey, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._last)

    def update(self, sample: MetricSample) -> MetricSample | None:
        """Feed one counter sample; return its rate sample, or ``None`` when there is none yet."""
        value, ts = float(sample.value), float(sample.ts)
        if not (math.isfinite(value) and math.isfinite(ts)):
            return None
        key = series_key(sample.name, sample.labels)
        prev = self._last.get(key)
        if prev is not None and ts <= prev[1]:
            return None  # duplicate or out of order: keep the newer state
        self._last[key] = (value, ts)
        self._last.move_to_end(key)
        while len(self._last) > self.max_series:
            self._last.popitem(last=False)
            self.evicted += 1
        if prev is None:
            return None
        prev_value, prev_ts = prev
        dt = ts - prev_ts
        if self.max_gap_s is not None and dt > self.max_gap_s:
            return None
        if value >= prev_value:
            increase = value - prev_value
        else:
            self.resets += 1
            increase = value  # restarted from 0
        return MetricSample(rate_name(sample.name), increase / dt, ts, dict(sample.labels))

    def update_many(self, samples: Iterable[MetricSample]) -> list[MetricSample]:
        """Feed many samples in order; return the rate samples they produced."""
        out: list[MetricSample] = []
        for sample in samples:
            rate = self.update(sample)
            if rate is not None:
                out.append(rate)
        return out

    def forget(self, name: str, labels: dict[str, str]) -> bool:
        """Drop one series' state; whether it was known."""
        return self._last.pop(series_key(name, labels), None) is not None

    def clear(self) -> None:
        """Forget every series."""
        self._last.clear()
