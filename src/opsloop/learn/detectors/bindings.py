"""In-process services that detector pipeline steps reach by name.

Step params must be JSON (they enter cache keys and MLflow params), but two things a detector
pipeline needs are live objects of the running platform: the telemetry it trains on (the open
DuckDB store can have one writer process only, the server) and the audited model registry
(its ``on_change`` hook writes promotions to the audit log). The platform binds them once under
a name (``"platform"``); a step gets the name as its ``services`` param and looks them up here.
:func:`opsloop.learn.detectors.log_sessions.run_log_sessions` binds a private name for the
duration of one run when it is given objects directly.

Steps run on threads of the server process (the default executor), where bindings are visible;
a process-pool executor would not see them, so the steps that use them are ``cache=False`` and
fail with a clear message when the name is unbound.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsloop.learn.detectors.session_data import SESSION_DETECTOR_PREFIX

if TYPE_CHECKING:
    from opsloop.learn.registry import ModelRegistry
    from opsloop.store.state import StateDB
    from opsloop.store.telemetry.logs import LogTable

__all__ = [
    "DetectorServices",
    "TelemetrySource",
    "bind_services",
    "get_services",
    "unbind_services",
]


@dataclass
class TelemetrySource:
    """Stored log lines and the operators' verdicts, as the pipeline reads them."""

    logs: LogTable
    state: StateDB | None = None
    resolve: Callable[[int], int] | None = None  # the live miner's merges (LogIngest.resolve)

    def lines(self, since: float | None, until: float | None) -> Iterator[tuple[float, int, str]]:
        """``(ts, template id, message)`` of stored lines in ``[since, until]``, ingest order."""
        for rec in self.logs.since_seq(0):
            if (since is None or rec.ts >= since) and (until is None or rec.ts <= until):
                yield rec.ts, rec.template_id, rec.message

    def feedback(self) -> list[dict[str, Any]]:
        """Verdicts on session alerts, oldest first (none without a state store)."""
        if self.state is None:
            return []
        from sqlalchemy import select

        from opsloop.store.state.models import FeedbackRow

        stmt = (
            select(FeedbackRow)
            .where(FeedbackRow.detector.startswith(SESSION_DETECTOR_PREFIX))
            .order_by(FeedbackRow.id)
        )
        with self.state.session() as s:
            return [
                {
                    "id": r.id,
                    "detector": r.detector,
                    "signal": r.signal,
                    "label": r.label,
                    "at": r.at.timestamp() if r.at else None,
                    "details": dict(r.details or {}),
                }
                for r in s.scalars(stmt)
            ]


@dataclass
class DetectorServices:
    """What a detector pipeline may use besides its params (each part optional)."""

    registry: ModelRegistry | None = None
    telemetry: TelemetrySource | None = None


_bound: dict[str, DetectorServices] = {}
_lock = threading.Lock()


def bind_services(name: str, services: DetectorServices) -> None:
    """Make ``services`` reachable as ``name`` (replaces an earlier binding)."""
    with _lock:
        _bound[name] = services


def unbind_services(name: str) -> None:
    """Forget ``name`` (no error if unbound)."""
    with _lock:
        _bound.pop(name, None)


def get_services(name: str) -> DetectorServices:
    """The services bound as ``name``; empty services when nothing is bound."""
    with _lock:
        return _bound.get(name) or DetectorServices()
