"""DuckDB-backed telemetry store.

Layout: every table carries a ``day`` (UTC date) column that is the unit of retention — a sweep
deletes whole days older than the retention setting, then checkpoints so the file shrinks. Rows
are appended in time order, so DuckDB's per-row-group min/max (zone maps) on ``ts`` and ``day``
prune time-range queries without an index.

One connection per store, serialised by a lock: DuckDB allows a single writer process, and the
server is that process. Readers in other threads use cursors of the same connection.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from opsloop.store.telemetry.metrics import MetricSample, Series, canonical_labels

_SCHEMA = """
CREATE TABLE IF NOT EXISTS metric_samples (
    day DATE NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    name VARCHAR NOT NULL,
    labels VARCHAR NOT NULL,
    value DOUBLE NOT NULL
);
CREATE TABLE IF NOT EXISTS log_lines (
    seq BIGINT NOT NULL,
    day DATE NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    source VARCHAR NOT NULL,
    host VARCHAR,
    level VARCHAR,
    template_id INTEGER NOT NULL,
    params VARCHAR NOT NULL,
    message VARCHAR NOT NULL,
    fields VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS anomalies (
    day DATE NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    source VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    key VARCHAR NOT NULL,
    score DOUBLE NOT NULL,
    evidence VARCHAR NOT NULL,
    details VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS schema_info (key VARCHAR PRIMARY KEY, value VARCHAR);
INSERT OR IGNORE INTO schema_info VALUES ('version', '1');
"""


class TelemetryError(Exception):
    """The telemetry store cannot be opened (one-line message)."""


class TelemetryStore:
    """Append and query telemetry; drop whole old days on retention sweeps."""

    def __init__(self, path: Path | str) -> None:
        import duckdb

        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._con = duckdb.connect(str(self.path))
            self._con.execute("SET TimeZone = 'UTC'")
            self._con.execute(_SCHEMA)
        except (duckdb.Error, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TelemetryError(f"telemetry store {self.path}: {first}") from None
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def locked(self) -> Iterator[object]:
        """The store's DuckDB connection, held exclusively for the block."""
        with self._lock:
            yield self._con

    def close(self) -> None:
        """Checkpoint and close the file (a second call does nothing)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._con.execute("CHECKPOINT")
            finally:
                self._con.close()

    # -- metrics -----------------------------------------------------------------------------
    def append_metrics(self, samples: Iterable[MetricSample]) -> int:
        """Append finite samples; returns how many were stored (NaN/inf are skipped)."""
        rows = []
        for s in samples:
            if not s.is_finite():
                continue
            ts = datetime.fromtimestamp(s.ts, UTC)
            rows.append((ts.date(), ts, s.name, canonical_labels(s.labels), float(s.value)))
        if not rows:
            return 0
        with self._lock:
            self._con.executemany("INSERT INTO metric_samples VALUES (?, ?, ?, ?, ?)", rows)
        return len(rows)

    def metric_names(self) -> list[str]:
        """Distinct metric names, sorted."""
        with self._lock:
            res = self._con.execute("SELECT DISTINCT name FROM metric_samples ORDER BY name")
            return [r[0] for r in res.fetchall()]

    def query_metrics(
        self,
        name: str,
        since: float,
        until: float | None = None,
        step: float = 60.0,
        labels: dict[str, str] | None = None,
    ) -> list[Series]:
        """Series named ``name`` between ``since`` and ``until``, averaged per ``step`` seconds.

        Each point is (bucket start, mean of the samples in the bucket). ``labels`` filters
        series to those carrying all the given label values.
        """
        start = datetime.fromtimestamp(since, UTC)
        end = datetime.fromtimestamp(until, UTC) if until is not None else datetime.now(UTC)
        step_us = max(int(step * 1_000_000), 1_000_000)
        sql = (
            "SELECT labels, epoch_us(time_bucket(to_microseconds(?), ts)) / 1e6 AS b, avg(value) "
            "FROM metric_samples WHERE name = ? AND day BETWEEN ? AND ? AND ts >= ? AND ts <= ? "
            "GROUP BY labels, b ORDER BY labels, b"
        )
        params = [step_us, name, start.date(), end.date(), start, end]
        with self._lock:
            rows = self._con.execute(sql, params).fetchall()
        out: dict[str, Series] = {}
        for lab, bucket, value in rows:
            parsed = json.loads(lab)
            if labels and any(parsed.get(k) != v for k, v in labels.items()):
                continue
            series = out.get(lab)
            if series is None:
                series = out[lab] = Series(name=name, labels=parsed, points=[])
            series.points.append((float(bucket), float(value)))
        return list(out.values())

    # -- retention ---------------------------------------------------------------------------
    def drop_older_than(self, days: int, now: datetime | None = None) -> int:
        """Delete metric samples of whole days older than ``days``; returns rows removed."""
        return self._drop_days("metric_samples", days, now)

    def drop_logs_older_than(self, days: int, now: datetime | None = None) -> int:
        """Delete log lines and anomalies of whole days older than ``days``."""
        return self._drop_days("log_lines", days, now) + self._drop_days("anomalies", days, now)

    def _drop_days(self, table: str, days: int, now: datetime | None) -> int:
        now = now or datetime.now(UTC)
        cutoff = (now - timedelta(days=days)).date()
        with self._lock:
            removed = self._con.execute(f"DELETE FROM {table} WHERE day < ?", [cutoff]).fetchone()
            self._con.execute("CHECKPOINT")
        return int(removed[0]) if removed else 0

    def count_metrics(self) -> int:
        """Number of stored metric samples."""
        with self._lock:
            row = self._con.execute("SELECT count(*) FROM metric_samples").fetchone()
        return int(row[0]) if row else 0
