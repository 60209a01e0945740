"""Log lines and anomaly records in the telemetry store.

Each stored line has a ``seq`` (strictly increasing, assigned at ingest) so that the template
miner's snapshot can say "everything up to seq N is in me" and replay the rest after a crash.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opsloop.store.telemetry.duck import TelemetryStore


@dataclass(frozen=True)
class LogRecord:
    """One stored log line with its template."""

    seq: int
    ts: float
    received_at: float
    source: str
    message: str
    template_id: int
    params: list[str] = field(default_factory=list)
    host: str | None = None
    level: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict for the API."""
        return {
            "seq": self.seq,
            "ts": self.ts,
            "received_at": self.received_at,
            "source": self.source,
            "host": self.host,
            "level": self.level,
            "template_id": self.template_id,
            "params": self.params,
            "message": self.message,
            "fields": self.fields,
        }


@dataclass(frozen=True)
class TemplateStats:
    """How often a template was seen in the stored lines, and when."""

    template_id: int
    count: int
    first_seen: float
    last_seen: float
    examples: list[str]


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class LogTable:
    """Append, search and aggregate log lines; append and list anomalies."""

    def __init__(self, store: TelemetryStore) -> None:
        self.store = store

    def max_seq(self) -> int:
        """The highest stored ``seq`` (0 when empty)."""
        with self.store.locked() as con:
            row = con.execute("SELECT coalesce(max(seq), 0) FROM log_lines").fetchall()[0]
        return int(row[0])

    def append(self, records: Sequence[LogRecord]) -> None:
        """Store ``records`` in one statement; on return they are durable (WAL committed)."""
        if not records:
            return
        import numpy as np

        def col(values: list[Any], dtype: Any = object) -> Any:
            return np.array(values, dtype=dtype)

        self.store.bulk_insert(
            "log_lines",
            "SELECT seq, make_timestamptz(ts_us)::DATE, make_timestamptz(ts_us), "
            "make_timestamptz(rec_us), source, host, level, template_id, params, message, fields "
            "FROM {src}",
            {
                "seq": col([r.seq for r in records], np.int64),
                "ts_us": col([round(r.ts * 1e6) for r in records], np.int64),
                "rec_us": col([round(r.received_at * 1e6) for r in records], np.int64),
                "source": col([r.source for r in records]),
                "host": col([r.host for r in records]),
                "level": col([r.level for r in records]),
                "template_id": col([r.template_id for r in records], np.int64),
                "params": col([json.dumps(r.params) for r in records]),
                "message": col([r.message for r in records]),
                "fields": col([json.dumps(r.fields, default=str) for r in records]),
            },
        )

    def since_seq(self, seq: int, batch: int = 10_000) -> Iterator[LogRecord]:
        """Lines with ``seq`` greater than ``seq``, in order (for replay after a restart)."""
        last = seq
        while True:
            with self.store.locked() as con:
                rows = con.execute(
                    f"SELECT {_COLS} FROM log_lines WHERE seq > ? ORDER BY seq LIMIT ?",
                    [last, batch],
                ).fetchall()
            if not rows:
                return
            for row in rows:
                yield _record(row)
            last = rows[-1][0]

    def search(
        self,
        since: float | None = None,
        until: float | None = None,
        source: str | None = None,
        level: str | None = None,
        template_ids: Sequence[int] | None = None,
        text: str | None = None,
        limit: int = 100,
        before_seq: int | None = None,
    ) -> list[LogRecord]:
        """Newest lines first matching every given filter; page with ``before_seq``."""
        where, params = self._where(since, until, source, level, template_ids, text)
        if before_seq is not None:
            where.append("seq < ?")
            params.append(before_seq)
        sql = f"SELECT {_COLS} FROM log_lines"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT ?"
        params.append(limit)
        with self.store.locked() as con:
            return [_record(r) for r in con.execute(sql, params).fetchall()]

    def template_stats(
        self, since: float | None = None, until: float | None = None, examples: int = 3
    ) -> list[TemplateStats]:
        """Per stored template id: count, first and last time, a few example messages."""
        where, params = self._where(since, until, None, None, None, None)
        sql = (
            "SELECT template_id, count(*), epoch_us(min(ts)) / 1e6, epoch_us(max(ts)) / 1e6, "
            f"list(message ORDER BY seq DESC)[1:{int(examples)}] FROM log_lines"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " GROUP BY template_id"
        with self.store.locked() as con:
            rows = con.execute(sql, params).fetchall()
        return [
            TemplateStats(int(a), int(b), float(c), float(d), list(e)) for a, b, c, d, e in rows
        ]

    def template_counts_over_time(
        self, template_ids: Sequence[int], since: float, until: float, step: float
    ) -> dict[int, list[tuple[float, int]]]:
        """Counts per ``step`` bucket for each template id (ids as stored)."""
        if not template_ids:
            return {}
        marks = ",".join("?" for _ in template_ids)
        sql = (
            "SELECT template_id, count(*), "
            "epoch_us(time_bucket(to_microseconds(?), ts)) / 1e6 AS b "
            f"FROM log_lines WHERE template_id IN ({marks}) AND ts >= ? AND ts <= ? "
            "GROUP BY template_id, b ORDER BY b"
        )
        params = [int(step * 1e6), *template_ids, _dt(since), _dt(until)]
        out: dict[int, list[tuple[float, int]]] = {}
        with self.store.locked() as con:
            for tid, n, b in con.execute(sql, params).fetchall():
                out.setdefault(int(tid), []).append((float(b), int(n)))
        return out

    def count(self) -> int:
        """Number of stored lines."""
        with self.store.locked() as con:
            return int(con.execute("SELECT count(*) FROM log_lines").fetchall()[0][0])

    @staticmethod
    def _where(
        since: float | None,
        until: float | None,
        source: str | None,
        level: str | None,
        template_ids: Sequence[int] | None,
        text: str | None,
    ) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        if since is not None:
            where += ["day >= ?", "ts >= ?"]
            params += [_dt(since).date(), _dt(since)]
        if until is not None:
            where += ["day <= ?", "ts <= ?"]
            params += [_dt(until).date(), _dt(until)]
        if source:
            where.append("source = ?")
            params.append(source)
        if level:
            where.append("lower(level) = lower(?)")
            params.append(level)
        if template_ids:
            where.append("template_id IN (" + ",".join("?" for _ in template_ids) + ")")
            params += [int(t) for t in template_ids]
        if text:
            where.append("contains(lower(message), lower(?))")
            params.append(text)
        return where, params

    # -- anomalies ---------------------------------------------------------------------------
    def append_anomalies(self, anomalies: Sequence[Any]) -> None:
        """Store :class:`opsloop.detect.anomaly.Anomaly` records."""
        from opsloop.detect.anomaly import to_epoch

        rows = []
        for a in anomalies:
            t = _dt(to_epoch(a.time))
            rows.append(
                (t.date(), t, a.source, a.kind, a.key, float(a.score),
                 json.dumps(a.evidence), json.dumps(a.details, default=str))
            )  # fmt: skip
        if rows:
            with self.store.locked() as con:
                con.executemany("INSERT INTO anomalies VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def anomalies(
        self, since: float | None = None, source_prefix: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Newest anomalies first."""
        sql = (
            "SELECT epoch_us(ts) / 1e6, source, kind, key, score, evidence, details FROM anomalies"
        )
        where, params = [], []
        if since is not None:
            where.append("ts >= ?")
            params.append(_dt(since))
        if source_prefix:
            where.append("starts_with(source, ?)")
            params.append(source_prefix)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY ts DESC LIMIT ?"
        params.append(limit)
        with self.store.locked() as con:
            rows = con.execute(sql, params).fetchall()
        return [
            {"time": t, "source": s, "kind": k, "key": key, "score": sc,
             "evidence": json.loads(ev), "details": json.loads(d)}
            for t, s, k, key, sc, ev, d in rows
        ]  # fmt: skip


_COLS = (
    "seq, epoch_us(ts) / 1e6, epoch_us(received_at) / 1e6, source, host, level, template_id, "
    "params, message, fields"
)


def _record(row: tuple) -> LogRecord:
    seq, ts, rec, source, host, level, tid, params, message, fields = row
    return LogRecord(
        seq=int(seq), ts=float(ts), received_at=float(rec), source=source, message=message,
        template_id=int(tid), params=json.loads(params), host=host, level=level,
        fields=json.loads(fields),
    )  # fmt: skip
