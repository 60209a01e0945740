"""Served models' predictions and their delayed labels in the telemetry store.

Every logged prediction keeps its request id, model, version, variant (``champion``,
``challenger``, ``canary``, ``shadow``), inputs and outputs (JSON), and latency; a label that
arrives later (``POST /api/v1/models/{name}/labels``) is stored next to it by request id.
Both tables carry ``day`` so retention drops whole days like the other telemetry.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opsloop.store.telemetry.duck import TelemetryStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    day DATE NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    model VARCHAR NOT NULL,
    version VARCHAR NOT NULL,
    variant VARCHAR NOT NULL,
    request_id VARCHAR NOT NULL,
    inputs VARCHAR NOT NULL,
    outputs VARCHAR NOT NULL,
    latency_ms DOUBLE NOT NULL
);
CREATE TABLE IF NOT EXISTS prediction_labels (
    day DATE NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    model VARCHAR NOT NULL,
    request_id VARCHAR NOT NULL,
    label VARCHAR NOT NULL
);
"""


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: they are stored as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _dumps(value: Any) -> str:
    return json.dumps(_clean(value), default=str, allow_nan=False)


@dataclass(frozen=True)
class PredictionRecord:
    """One logged prediction (one row of the model's input)."""

    ts: float
    model: str
    version: str
    variant: str
    request_id: str
    inputs: dict[str, Any]
    outputs: Any
    latency_ms: float


class PredictionTable:
    """Append predictions and labels; read them back for monitoring and the dashboard."""

    def __init__(self, store: TelemetryStore) -> None:
        self.store = store
        with store.locked() as con:
            con.execute(_SCHEMA)  # type: ignore[attr-defined]

    def append(self, records: Sequence[PredictionRecord]) -> None:
        """Store predictions (one statement; durable on return)."""
        if not records:
            return
        import numpy as np

        cols = {
            "ts_us": np.array([int(r.ts * 1e6) for r in records], dtype=np.int64),
            "model": np.array([r.model for r in records], dtype=object),
            "version": np.array([r.version for r in records], dtype=object),
            "variant": np.array([r.variant for r in records], dtype=object),
            "request_id": np.array([r.request_id for r in records], dtype=object),
            "inputs": np.array([_dumps(r.inputs) for r in records], dtype=object),
            "outputs": np.array([_dumps(r.outputs) for r in records], dtype=object),
            "latency_ms": np.array([float(r.latency_ms) for r in records], dtype=np.float64),
        }
        self.store.bulk_insert(
            "predictions",
            "SELECT make_timestamptz(ts_us)::DATE, make_timestamptz(ts_us), model, version, "
            "variant, request_id, inputs, outputs, latency_ms FROM {src}",
            cols,
        )

    def add_labels(self, model: str, labels: Sequence[tuple[str, Any]], ts: float) -> None:
        """Store ``(request_id, label)`` pairs that arrived for ``model`` at ``ts``."""
        if not labels:
            return
        import numpy as np

        cols = {
            "ts_us": np.full(len(labels), int(ts * 1e6), dtype=np.int64),
            "model": np.array([model] * len(labels), dtype=object),
            "request_id": np.array([rid for rid, _ in labels], dtype=object),
            "label": np.array([_dumps(lab) for _, lab in labels], dtype=object),
        }
        self.store.bulk_insert(
            "prediction_labels",
            "SELECT make_timestamptz(ts_us)::DATE, make_timestamptz(ts_us), model, request_id, "
            "label FROM {src}",
            cols,
        )

    def known_requests(self, model: str, request_ids: Sequence[str]) -> set[str]:
        """Which of ``request_ids`` were logged for ``model``."""
        if not request_ids:
            return set()
        with self.store.locked() as con:
            rows = con.execute(  # type: ignore[attr-defined]
                "SELECT DISTINCT request_id FROM predictions WHERE model = ? "
                "AND request_id IN (SELECT unnest(?::VARCHAR[]))",
                [model, list(request_ids)],
            ).fetchall()
        return {r[0] for r in rows}

    def recent(
        self, model: str, limit: int = 100, since: float | None = None
    ) -> list[dict[str, Any]]:
        """The newest predictions of ``model`` with their label when one arrived."""
        sql = (
            "SELECT p.ts, p.version, p.variant, p.request_id, p.inputs, p.outputs, "
            "p.latency_ms, l.label FROM predictions p LEFT JOIN prediction_labels l "
            "ON l.model = p.model AND l.request_id = p.request_id WHERE p.model = ?"
        )
        args: list[Any] = [model]
        if since is not None:
            sql += " AND p.ts >= ?"
            args.append(datetime.fromtimestamp(since, UTC))
        sql += " ORDER BY p.ts DESC LIMIT ?"
        args.append(int(limit))
        with self.store.locked() as con:
            rows = con.execute(sql, args).fetchall()  # type: ignore[attr-defined]
        return [
            {
                "ts": r[0].timestamp(),
                "version": r[1],
                "variant": r[2],
                "request_id": r[3],
                "inputs": json.loads(r[4]),
                "outputs": json.loads(r[5]),
                "latency_ms": r[6],
                "label": json.loads(r[7]) if r[7] is not None else None,
            }
            for r in rows
        ]

    def counts(self, model: str) -> dict[str, int]:
        """Logged predictions and labels of ``model``."""
        with self.store.locked() as con:
            n = con.execute(  # type: ignore[attr-defined]
                "SELECT count(*) FROM predictions WHERE model = ?", [model]
            ).fetchall()[0][0]
            labels = con.execute(  # type: ignore[attr-defined]
                "SELECT count(*) FROM prediction_labels WHERE model = ?", [model]
            ).fetchall()[0][0]
        return {"predictions": int(n), "labels": int(labels)}

    def drop_older_than(self, days: int, now: datetime | None = None) -> int:
        """Delete predictions and labels of whole days older than ``days``."""
        return self.store._drop_days("predictions", days, now) + self.store._drop_days(
            "prediction_labels", days, now
        )
