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
from typing import Any

from opsloop.store.telemetry.metrics import MetricSample, Series, canonical_labels

_SCHEMA = """
CREATE TABLE IF NOT EXISTS metric_samples (
    day DATE NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    name VARCHAR NOT NULL,
    labels VARCHAR NOT NULL,
    value DOUBLE NOT NULL
);
CREATE TABLE IF NOT EXISTS metric_scores (
    day DATE NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    name VARCHAR NOT NULL,
    labels VARCHAR NOT NULL,
    score DOUBLE NOT NULL,
    alarm BOOLEAN NOT NULL
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
CREATE TABLE IF NOT EXISTS downsampled_days (day DATE PRIMARY KEY, bucket_s INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS schema_info (key VARCHAR PRIMARY KEY, value VARCHAR);
INSERT OR IGNORE INTO schema_info VALUES ('version', '1');
"""


# Columns ``day, ts`` computed from an int64 ``ts_us`` column of a bulk insert.
_TS_SELECT = "SELECT make_timestamptz(ts_us)::DATE, make_timestamptz(ts_us), "


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

    def bulk_insert(self, table: str, select: str, columns: dict[str, Any]) -> None:
        """Insert many rows at once: ``columns`` (numpy arrays) are scanned by ``select``.

        DuckDB's ``executemany`` binds row by row (hundreds of rows per second); scanning
        registered numpy columns inserts over a million rows per second.
        """
        with self._lock:
            self._bulk_insert_locked(table, select, columns)

    def _bulk_insert_locked(self, table: str, select: str, columns: dict[str, Any]) -> None:
        view = f"_bulk_{threading.get_ident()}"
        self._con.register(view, columns)
        try:
            self._con.execute(f"INSERT INTO {table} {select.format(src=view)}").fetchall()
        finally:
            self._con.unregister(view)

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
        kept = [s for s in samples if s.is_finite()]
        if not kept:
            return 0
        import numpy as np

        self.bulk_insert(
            "metric_samples",
            _TS_SELECT + "name, labels, value FROM {src}",
            {
                "ts_us": np.array([round(s.ts * 1e6) for s in kept], dtype=np.int64),
                "name": np.array([s.name for s in kept], dtype=object),
                "labels": np.array([canonical_labels(s.labels) for s in kept], dtype=object),
                "value": np.array([s.value for s in kept], dtype=np.float64),
            },
        )
        return len(kept)

    def append_scores(self, rows: Iterable[tuple[float, str, dict[str, str], float, bool]]) -> int:
        """Append detector scores ``(ts, name, labels, score, alarm)``."""
        rows = list(rows)
        if not rows:
            return 0
        import numpy as np

        self.bulk_insert(
            "metric_scores",
            _TS_SELECT + "name, labels, score, alarm FROM {src}",
            {
                "ts_us": np.array([round(r[0] * 1e6) for r in rows], dtype=np.int64),
                "name": np.array([r[1] for r in rows], dtype=object),
                "labels": np.array([canonical_labels(r[2]) for r in rows], dtype=object),
                "score": np.array([r[3] for r in rows], dtype=np.float64),
                "alarm": np.array([bool(r[4]) for r in rows], dtype=bool),
            },
        )
        return len(rows)

    def query_scores(
        self,
        name: str,
        since: float,
        until: float | None = None,
        step: float = 60.0,
        labels: dict[str, str] | None = None,
    ) -> list[Series]:
        """Per-bucket maximum anomaly score of each series named ``name``."""
        return self._query("metric_scores", "max(score)", name, since, until, step, labels)

    def alarms(
        self,
        name: str,
        since: float,
        until: float | None = None,
        labels: dict[str, str] | None = None,
    ) -> list[tuple[dict[str, str], float, float]]:
        """``(labels, ts, score)`` of every alarm raised on series ``name`` in the range."""
        start = datetime.fromtimestamp(since, UTC)
        end = datetime.fromtimestamp(until, UTC) if until is not None else datetime.now(UTC)
        with self._lock:
            rows = self._con.execute(
                "SELECT labels, epoch_us(ts) / 1e6, score FROM metric_scores WHERE alarm AND "
                "name = ? AND day BETWEEN ? AND ? AND ts >= ? AND ts <= ? ORDER BY ts",
                [name, start.date(), end.date(), start, end],
            ).fetchall()
        out = []
        for lab, ts, score in rows:
            parsed = json.loads(lab)
            if labels and any(parsed.get(k) != v for k, v in labels.items()):
                continue
            out.append((parsed, float(ts), float(score)))
        return out

    def series_overview(self, prefix: str = "", limit: int = 500) -> list[dict]:
        """Every series (name + labels) with its last time, last value and last score."""
        sql = (
            "WITH v AS (SELECT name, labels, max(ts) AS t, arg_max(value, ts) AS value, "
            "count(*) AS n FROM metric_samples WHERE starts_with(name, ?) GROUP BY name, labels), "
            "s AS (SELECT name, labels, arg_max(score, ts) AS score, "
            "count(*) FILTER (WHERE alarm) AS alarms FROM metric_scores "
            "WHERE starts_with(name, ?) GROUP BY name, labels) "
            "SELECT v.name, v.labels, epoch_us(v.t) / 1e6, v.value, v.n, s.score, "
            "coalesce(s.alarms, 0) FROM v LEFT JOIN s USING (name, labels) "
            "ORDER BY v.name, v.labels LIMIT ?"
        )
        with self._lock:
            rows = self._con.execute(sql, [prefix, prefix, limit]).fetchall()
        return [
            {"name": n, "labels": json.loads(lab), "last_time": float(t), "last_value": float(v),
             "samples": int(c), "last_score": None if sc is None else float(sc), "alarms": int(a)}
            for n, lab, t, v, c, sc, a in rows
        ]  # fmt: skip

    def series_points(
        self, name: str, labels: dict[str, str], since: float, until: float | None = None
    ) -> list[tuple[float, float]]:
        """Raw ``(ts, value)`` points of one exact series, oldest first."""
        start = datetime.fromtimestamp(since, UTC)
        end = datetime.fromtimestamp(until, UTC) if until is not None else datetime.now(UTC)
        with self._lock:
            rows = self._con.execute(
                "SELECT epoch_us(ts) / 1e6, value FROM metric_samples "
                "WHERE name = ? AND labels = ? AND day BETWEEN ? AND ? AND ts >= ? AND ts <= ? "
                "ORDER BY ts",
                [name, canonical_labels(labels), start.date(), end.date(), start, end],
            ).fetchall()
        return [(float(t), float(v)) for t, v in rows]

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
        return self._query("metric_samples", "avg(value)", name, since, until, step, labels)

    def _query(
        self,
        table: str,
        agg: str,
        name: str,
        since: float,
        until: float | None,
        step: float,
        labels: dict[str, str] | None,
    ) -> list[Series]:
        start = datetime.fromtimestamp(since, UTC)
        end = datetime.fromtimestamp(until, UTC) if until is not None else datetime.now(UTC)
        step_us = max(int(step * 1_000_000), 1_000_000)
        sql = (
            f"SELECT labels, epoch_us(time_bucket(to_microseconds(?), ts)) / 1e6 AS b, {agg} "
            f"FROM {table} WHERE name = ? AND day BETWEEN ? AND ? AND ts >= ? AND ts <= ? "
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
        """Delete metric samples and scores of whole days older than ``days``."""
        return self._drop_days("metric_samples", days, now) + self._drop_days(
            "metric_scores", days, now
        )

    def downsample_older_than(
        self, days: int, bucket_s: int = 300, now: datetime | None = None
    ) -> int:
        """Replace raw metric samples of whole days older than ``days`` by ``bucket_s`` averages.

        Each day is rolled up once (recorded in ``downsampled_days``), in one transaction, so a
        crash leaves either the raw rows or the averages, never both. Returns days rolled up.
        """
        now = now or datetime.now(UTC)
        cutoff = (now - timedelta(days=days)).date()
        with self._lock:
            todo = self._con.execute(
                "SELECT DISTINCT day FROM metric_samples WHERE day < ? AND day NOT IN "
                "(SELECT day FROM downsampled_days) ORDER BY day",
                [cutoff],
            ).fetchall()
            for (day,) in todo:
                self._con.execute("BEGIN TRANSACTION")
                try:
                    self._con.execute(
                        "CREATE TEMP TABLE rollup AS SELECT day, "
                        "time_bucket(to_microseconds(?), ts) AS ts, name, labels, "
                        "avg(value) AS value FROM metric_samples WHERE day = ? GROUP BY ALL",
                        [bucket_s * 1_000_000, day],
                    )
                    self._con.execute("DELETE FROM metric_samples WHERE day = ?", [day])
                    self._con.execute("INSERT INTO metric_samples SELECT * FROM rollup")
                    self._con.execute("DROP TABLE rollup")
                    self._con.execute("INSERT INTO downsampled_days VALUES (?, ?)", [day, bucket_s])
                    self._con.execute("COMMIT")
                except BaseException:
                    self._con.execute("ROLLBACK")
                    raise
            if todo:
                self._con.execute("CHECKPOINT")
        return len(todo)

    def drop_logs_older_than(self, days: int, now: datetime | None = None) -> int:
        """Delete log lines and anomalies of whole days older than ``days``."""
        return self._drop_days("log_lines", days, now) + self._drop_days("anomalies", days, now)

    def _drop_days(self, table: str, days: int, now: datetime | None) -> int:
        now = now or datetime.now(UTC)
        cutoff = (now - timedelta(days=days)).date()
        with self._lock:
            removed = self._con.execute(f"DELETE FROM {table} WHERE day < ?", [cutoff]).fetchall()[
                0
            ]
            self._con.execute("CHECKPOINT")
        return int(removed[0]) if removed else 0

    def count_metrics(self) -> int:
        """Number of stored metric samples."""
        with self._lock:
            row = self._con.execute("SELECT count(*) FROM metric_samples").fetchall()[0]
        return int(row[0]) if row else 0
