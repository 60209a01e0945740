"""The audit log: every change, with who made it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from opsloop.store.state.db import StateDB
from opsloop.store.state.models import AuditEvent


class AuditLog:
    """Append-only record of changes made through opsloop."""

    def __init__(self, db: StateDB) -> None:
        self._db = db

    def record(
        self, actor: str, action: str, target: str = "", note: str = "", **details: Any
    ) -> None:
        """Append one event. ``details`` must be JSON-serialisable and hold no secrets."""
        with self._db.session() as s:
            s.add(AuditEvent(actor=actor, action=action, target=target, note=note, details=details))

    def list(self, limit: int = 100, since: datetime | None = None) -> list[AuditEvent]:
        """The newest events first."""
        stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
        if since is not None:
            stmt = stmt.where(AuditEvent.at >= since)
        with self._db.session() as s:
            return list(s.scalars(stmt))
