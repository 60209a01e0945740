"""Prometheus metrics of the model gateway: a small registry and its text exposition.

Why not ``prometheus_client``: it would be a new core dependency, and a gateway running with
several uvicorn workers needs its multiprocess mode (an environment variable set before import,
mmap files per process, clean-up of dead processes' files). This registry is ~200 lines: labelled
counters, gauges and histograms with lock-protected updates, the text format 0.0.4, and a simple
way to add up worker processes: with a ``share_dir`` each worker writes a JSON snapshot there
(every second, see :meth:`MetricsRegistry.publish`), and whichever worker answers a scrape
renders the sum of all snapshots, its own taken live. Counters and histograms are summed;
gauges are summed or, for ``mode="max"``, the maximum is taken. Snapshots of workers that are
gone keep counting (counters must not go down) but their gauges are dropped.

>>> reg = MetricsRegistry()
>>> hits = reg.counter("demo_requests_total", "Requests.", ("model",))
>>> hits.inc(("churn",))
>>> print(reg.render().strip())
# HELP demo_requests_total Requests.
# TYPE demo_requests_total counter
demo_requests_total{model="churn"} 1.0
"""

from __future__ import annotations

import bisect
import contextlib
import json
import math
import os
import threading
from pathlib import Path
from typing import Any

LabelValues = tuple[str, ...]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: tuple[str, ...], values: LabelValues, extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class _Family:
    kind = "untyped"

    def __init__(self, name: str, help_text: str, labelnames: tuple[str, ...]):
        self.name = name
        self.help = help_text
        self.labelnames = tuple(labelnames)
        self._values: dict[LabelValues, Any] = {}
        self._lock = threading.Lock()

    def _check(self, labels: LabelValues) -> LabelValues:
        if len(labels) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {labels}")
        return tuple(str(v) for v in labels)

    def remove(self, labels: LabelValues) -> None:
        """Forget one series."""
        with self._lock:
            self._values.pop(self._check(labels), None)

    def dump(self) -> list[list[Any]]:
        """``[[labels, value], ...]`` (a copy)."""
        with self._lock:
            return [
                [list(k), list(v) if isinstance(v, list) else v] for k, v in self._values.items()
            ]


class _Scalar(_Family):
    """One number per label set (counters and gauges)."""

    def _add(self, labels: LabelValues, amount: float) -> None:
        key = self._check(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, labels: LabelValues = ()) -> float:
        """The current value."""
        return float(self._values.get(self._check(labels), 0.0))


class Counter(_Scalar):
    """A monotonically increasing count per label set."""

    kind = "counter"

    def inc(self, labels: LabelValues = (), amount: float = 1.0) -> None:
        """Add ``amount`` (>= 0)."""
        if not amount >= 0.0:
            raise ValueError(f"a counter only goes up (got {amount!r})")
        self._add(labels, amount)


class Gauge(_Scalar):
    """A value that goes up and down; ``mode`` says how workers are combined."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, labelnames: tuple[str, ...], mode: str = "sum"):
        super().__init__(name, help_text, labelnames)
        if mode not in ("sum", "max"):
            raise ValueError("gauge mode is 'sum' or 'max'")
        self.mode = mode

    def set(self, labels: LabelValues, value: float) -> None:
        """Set the value."""
        key = self._check(labels)
        with self._lock:
            self._values[key] = float(value)

    def inc(self, labels: LabelValues = (), amount: float = 1.0) -> None:
        """Add ``amount`` (may be negative)."""
        self._add(labels, amount)


class Histogram(_Family):
    """Observations counted in buckets, with their sum and count."""

    kind = "histogram"

    def __init__(
        self, name: str, help_text: str, labelnames: tuple[str, ...], buckets: tuple[float, ...]
    ):
        super().__init__(name, help_text, labelnames)
        self.buckets = tuple(sorted(float(b) for b in buckets))

    def observe(self, labels: LabelValues, value: float) -> None:
        """Record one observation."""
        key = self._check(labels)
        index = bisect.bisect_left(self.buckets, value)
        with self._lock:
            cells = self._values.get(key)
            if cells is None:
                # per bucket (the last one is +Inf), then sum, then count
                cells = self._values[key] = [0.0] * (len(self.buckets) + 3)
            cells[index] += 1
            cells[-2] += value
            cells[-1] += 1

    def count(self, labels: LabelValues = ()) -> float:
        """Number of observations."""
        cells = self._values.get(self._check(labels))
        return float(cells[-1]) if cells else 0.0

    def total(self, labels: LabelValues = ()) -> float:
        """Sum of the observations."""
        cells = self._values.get(self._check(labels))
        return float(cells[-2]) if cells else 0.0


class MetricsRegistry:
    """Metric families of one process, optionally added up with other workers' snapshots."""

    def __init__(self, share_dir: Path | str | None = None):
        self.share_dir = Path(share_dir) if share_dir else None
        self._families: dict[str, _Family] = {}

    def _add(self, family: _Family) -> Any:
        if family.name in self._families:
            raise ValueError(f"metric {family.name} is defined twice")
        self._families[family.name] = family
        return family

    def counter(self, name: str, help_text: str, labelnames: tuple[str, ...] = ()) -> Counter:
        """A new counter (its name should end in ``_total``)."""
        return self._add(Counter(name, help_text, labelnames))

    def gauge(
        self, name: str, help_text: str, labelnames: tuple[str, ...] = (), mode: str = "sum"
    ) -> Gauge:
        """A new gauge."""
        return self._add(Gauge(name, help_text, labelnames, mode))

    def histogram(
        self,
        name: str,
        help_text: str,
        labelnames: tuple[str, ...] = (),
        buckets: tuple[float, ...] = LATENCY_BUCKETS,
    ) -> Histogram:
        """A new histogram."""
        return self._add(Histogram(name, help_text, labelnames, buckets))

    # -- several worker processes --------------------------------------------------------
    def snapshot(self) -> dict[str, list[list[Any]]]:
        """This process's values, JSON-able."""
        return {name: f.dump() for name, f in self._families.items()}

    def _snapshot_path(self, pid: int) -> Path:
        assert self.share_dir is not None
        return self.share_dir / f"metrics-{pid}.json"

    def publish(self) -> None:
        """Write this worker's snapshot to ``share_dir`` (atomically); no-op without one."""
        if self.share_dir is None:
            return
        pid = os.getpid()
        path = self._snapshot_path(pid)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": pid, "values": self.snapshot()}))
        os.replace(tmp, path)

    def _others(self) -> list[tuple[bool, dict[str, Any]]]:
        """``(alive, values)`` of the other workers' snapshots."""
        if self.share_dir is None:
            return []
        out = []
        own = os.getpid()
        for path in sorted(self.share_dir.glob("metrics-*.json")):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            pid = int(data.get("pid", 0))
            if pid == own:
                continue
            out.append((_alive(pid), data.get("values", {})))
        return out

    def render(self) -> str:
        """The text exposition (format 0.0.4) of all workers."""
        merged = {name: _as_map(f.dump()) for name, f in self._families.items()}
        for alive, values in self._others():
            for name, rows in values.items():
                family = self._families.get(name)
                if family is None or (isinstance(family, Gauge) and not alive):
                    continue
                _merge(family, merged[name], _as_map(rows))
        lines: list[str] = []
        for name, family in self._families.items():
            lines.append(f"# HELP {name} {family.help}")
            lines.append(f"# TYPE {name} {family.kind}")
            for key in sorted(merged[name]):
                value = merged[name][key]
                if isinstance(family, Histogram):
                    lines += _histogram_lines(family, key, value)
                else:
                    lines.append(f"{name}{_labels(family.labelnames, key)} {_num(value)}")
        return "\n".join(lines) + "\n"


def _as_map(rows: list[list[Any]]) -> dict[LabelValues, Any]:
    return {tuple(labels): value for labels, value in rows}


def _merge(family: _Family, into: dict[LabelValues, Any], other: dict[LabelValues, Any]) -> None:
    for key, value in other.items():
        mine = into.get(key)
        if isinstance(family, Histogram):
            if mine is None or len(mine) != len(value):
                into[key] = list(value) if mine is None else mine
            else:
                into[key] = [a + b for a, b in zip(mine, value, strict=True)]
        elif isinstance(family, Gauge) and family.mode == "max":
            into[key] = value if mine is None else max(mine, value)
        else:
            into[key] = value if mine is None else mine + value


def _histogram_lines(family: Histogram, key: LabelValues, cells: list[float]) -> list[str]:
    name, names = family.name, family.labelnames
    lines, running = [], 0.0
    for bound, count in zip((*family.buckets, math.inf), cells[:-2], strict=True):
        running += count
        le = 'le="' + ("+Inf" if math.isinf(bound) else _num(bound)) + '"'
        lines.append(f"{name}_bucket{_labels(names, key, le)} {_num(running)}")
    lines.append(f"{name}_sum{_labels(names, key)} {_num(cells[-2])}")
    lines.append(f"{name}_count{_labels(names, key)} {_num(cells[-1])}")
    return lines


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clear_share_dir(path: Path | str) -> None:
    """Remove the snapshot files in ``path`` (before a new set of workers starts)."""
    for old in Path(path).glob("metrics-*.json"):
        with contextlib.suppress(OSError):
            old.unlink()


class ServingMetrics:
    """The gateway's metric families, on one :class:`MetricsRegistry`."""

    def __init__(self, registry: MetricsRegistry | None = None):
        self.registry = registry or MetricsRegistry()
        r = self.registry
        self.requests = r.counter(
            "opsloop_serving_requests_total",
            "Prediction requests answered, by model, version, variant and HTTP status.",
            ("model", "version", "variant", "code"),
        )
        self.errors = r.counter(
            "opsloop_serving_errors_total",
            "Failed prediction requests by model, version and error code.",
            ("model", "version", "error"),
        )
        self.latency = r.histogram(
            "opsloop_serving_request_duration_seconds",
            "Time from receiving a prediction request to its answer, in seconds.",
            ("model", "version", "variant"),
        )
        self.rows = r.counter(
            "opsloop_serving_rows_total",
            "Input rows predicted, by model and version.",
            ("model", "version"),
        )
        self.batch_rows = r.histogram(
            "opsloop_serving_batch_rows",
            "Rows per predict call of the micro-batcher.",
            ("model", "version"),
            buckets=BATCH_BUCKETS,
        )
        self.batch_requests = r.histogram(
            "opsloop_serving_batch_requests",
            "Requests per predict call of the micro-batcher.",
            ("model", "version"),
            buckets=BATCH_BUCKETS,
        )
        self.in_flight = r.gauge(
            "opsloop_serving_in_flight_requests",
            "Requests queued or being predicted, by model.",
            ("model",),
        )
        self.live = r.gauge(
            "opsloop_serving_live_version",
            "1 for each version an alias serves now (several while workers swap).",
            ("model", "alias", "version"),
            mode="max",
        )
        self.loads = r.counter(
            "opsloop_serving_model_loads_total",
            "Model versions loaded, by outcome (ok, failed).",
            ("model", "version", "outcome"),
        )
        self.swaps = r.counter(
            "opsloop_serving_swaps_total",
            "Hot swaps of an alias to another version.",
            ("model", "alias"),
        )
        self.log_dropped = r.counter(
            "opsloop_serving_prediction_log_dropped_total",
            "Logged predictions dropped because the log's queue was full or the hook failed.",
        )

    def render(self) -> str:
        """The exposition text of all workers."""
        return self.registry.render()
