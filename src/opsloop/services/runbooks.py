"""The runbook service: runbook files, the engine, runs in the state store, triggers.

Runbooks are read from ``<home>/runbooks`` and ``runbooks.paths``. Alerts and anomalies that
reach the incident engine are offered to every runbook's triggers; schedules are checked once
a minute. Runs are stored in ``runbook_runs`` at every change.

Restarts: approvals wait in memory, but a run keeps (column ``resume``, never shown) its trigger
event and given parameters until its first step starts. At start-up, once the runbook files are
loaded, runs that had not executed any step - waiting at the run's approval gate, or queued -
are resumed with the same id (the approval keeps its deadline; the API and dashboard can
approve it again); a run that was ``running`` or waiting at an ``approve`` step is marked
``interrupted`` (never re-run). See :meth:`RunbookEngine.recover`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select

from opsloop.act.runbooks import (
    InMemoryApprovals,
    Recovery,
    Runbook,
    RunbookEngine,
    RunRecord,
    TriggerEvent,
    load_runbooks,
    matching_trigger,
)
from opsloop.act.runbooks.records import RunStatus, StepRecord, StepStatus
from opsloop.act.runbooks.secrets import SecretResolver
from opsloop.config import Settings
from opsloop.store.state.db import StateDB
from opsloop.store.state.models import RunbookRunRow

log = logging.getLogger("opsloop.runbooks")
UNFINISHED = ("pending", "waiting_approval", "running")


def record_from_dict(d: dict[str, Any]) -> RunRecord:
    """Inverse of :meth:`RunRecord.to_dict`."""
    steps = [StepRecord(**{**s, "status": StepStatus(s["status"])}) for s in d.get("steps", [])]
    return RunRecord(**{**d, "status": RunStatus(d["status"]), "steps": steps})


class SqlRunStore:
    """A :class:`~opsloop.act.runbooks.RunStore` over the state store."""

    def __init__(self, db: StateDB, incident_of: Any = None) -> None:
        self.db = db
        self.incident_of = incident_of or (lambda rec: None)

    def save(self, record: RunRecord) -> None:
        data = record.to_dict()
        with self.db.session() as s:
            row = s.get(RunbookRunRow, record.id)
            if row is None:
                s.add(RunbookRunRow(
                    id=record.id, runbook=record.runbook, status=record.status.value,
                    incident_id=self.incident_of(record), created=record.created,
                    finished=record.finished, data=data, resume=record.resume,
                ))  # fmt: skip
            else:
                row.status, row.finished, row.data = record.status.value, record.finished, data
                row.resume = record.resume

    def unfinished(self) -> list[RunRecord]:
        with self.db.session() as s:
            rows = s.scalars(select(RunbookRunRow).where(RunbookRunRow.status.in_(UNFINISHED)))
            return [_with_resume(record_from_dict(r.data), r.resume) for r in rows]

    def incident_ids(self, run_ids: Sequence[str]) -> dict[str, str]:
        """``{run id: incident id}`` for the runs linked to an incident."""
        if not run_ids:
            return {}
        stmt = select(RunbookRunRow.id, RunbookRunRow.incident_id).where(
            RunbookRunRow.id.in_(list(run_ids)), RunbookRunRow.incident_id.is_not(None)
        )
        with self.db.session() as s:
            return {rid: inc for rid, inc in s.execute(stmt)}

    def get(self, run_id: str) -> dict[str, Any] | None:
        with self.db.session() as s:
            row = s.get(RunbookRunRow, run_id)
            return None if row is None else {**row.data, "incident_id": row.incident_id}

    def list(self, runbook: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        stmt = select(RunbookRunRow).order_by(RunbookRunRow.created.desc()).limit(limit)
        if runbook:
            stmt = stmt.where(RunbookRunRow.runbook == runbook)
        with self.db.session() as s:
            return [{**r.data, "incident_id": r.incident_id} for r in s.scalars(stmt)]


def _with_resume(rec: RunRecord, payload: dict[str, Any] | None) -> RunRecord:
    rec.resume = payload
    return rec


class _IncidentNotifier:
    """``notify`` steps: through the incident engine's receivers, and onto the incident."""

    def __init__(self, service: RunbookService) -> None:
        self.service = service

    def notify(self, receiver: str, message: str, run_id: str, runbook: str) -> None:
        self.service.on_notify(receiver, message, run_id, runbook)


class RunbookService:
    """Loads runbooks, runs them, and answers the API, CLI and dashboard."""

    def __init__(
        self,
        settings: Settings,
        db: StateDB,
        incidents: Any = None,
        learn: Any = None,
        *,
        recover: bool = True,
    ) -> None:
        """With ``recover`` (the server), runs left unfinished by a previous process are
        resumed or marked ``interrupted`` (:meth:`recover`); a short-lived process that shares
        the state store with a running server (a CLI) should pass ``False``."""
        self.settings = settings
        self.db = db
        self.incidents = incidents
        self._lock = threading.Lock()
        self._incident_by_run: dict[str, str] = {}
        self.store = SqlRunStore(db, lambda rec: self._incident_by_run.get(rec.id))
        cfg = settings.runbooks
        secrets = SecretResolver(Path(cfg.secrets_file)) if cfg.secrets_file else SecretResolver()
        self.approvals = InMemoryApprovals()
        self.engine = RunbookEngine(
            self.store, notifier=_IncidentNotifier(self), approvals=self.approvals,
            secrets=secrets, python_modules=cfg.python_modules, learn=learn,
        )  # fmt: skip
        if not cfg.enabled:
            self.engine.engage_kill_switch("runbooks.enabled = false")
        self.runbooks: dict[str, Runbook] = {}
        self.errors: list[str] = []
        self.reload()
        if recover:
            self.recover()

    def recover(self) -> Recovery:
        """Start-up: resume the runs a previous process left queued or waiting for approval,
        mark the others ``interrupted`` (needs the runbooks loaded: call after :meth:`reload`,
        once, before accepting runs)."""
        done = self.engine.recover(self.runbooks)
        self._incident_by_run.update(self.store.incident_ids(done.resumed))
        counts = {k: len(v) for k, v in vars(done).items()}
        if any(counts.values()):
            level = logging.WARNING if done.interrupted else logging.INFO
            log.log(level, "runbook runs recovered after a restart", extra={"fields": counts})
        return done

    # -- files -------------------------------------------------------------------------------
    def folders(self) -> list[Path]:
        """Where runbooks are read from."""
        return [self.settings.home / "runbooks", *(Path(p) for p in self.settings.runbooks.paths)]

    def reload(self) -> None:
        """Read every runbook file again; bad files are reported, never fatal."""
        found: dict[str, Runbook] = {}
        errors: list[str] = []
        for folder in self.folders():
            if not folder.is_dir():
                continue
            books, errs = load_runbooks(folder)
            errors += [str(e) for e in errs]
            for rb in books:
                if rb.name in found:
                    errors.append(f"{folder}: runbook name {rb.name!r} is used twice")
                found[rb.name] = rb
        with self._lock:
            self.runbooks, self.errors = found, errors
        for e in errors:
            log.warning("runbook not loaded", extra={"fields": {"error": e}})

    # -- runs --------------------------------------------------------------------------------
    def run(
        self, name: str, params: dict[str, Any], actor: str, dry_run: bool = False,
        wait: bool = False,
    ) -> RunRecord:  # fmt: skip
        """A manual run (or dry run) of runbook ``name``."""
        rb = self.runbooks.get(name)
        if rb is None:
            raise KeyError(name)
        event = TriggerEvent.manual(actor)
        if matching_trigger(rb, event) is None:
            raise PermissionError(f"runbook {name!r} has no manual trigger")
        if dry_run or wait:
            return self.engine.run(rb, event, params, dry_run=dry_run, requested_by=actor)
        return self.engine.start(rb, event, params, requested_by=actor)

    def on_alerts(self, alerts: Sequence[Any], incident_ids: Sequence[str | None]) -> list[str]:
        """Offer alerts to the runbooks' triggers; returns the ids of runs started."""
        started = []
        for alert, inc in zip(alerts, incident_ids, strict=True):
            started += self._offer(TriggerEvent.from_alert(alert), inc)
        return started

    def on_anomalies(
        self, anomalies: Sequence[Any], incident_ids: Sequence[str | None]
    ) -> list[str]:
        """Offer anomalies (e.g. exhaustion forecasts) to the runbooks' triggers."""
        started = []
        for anomaly, inc in zip(anomalies, incident_ids, strict=True):
            started += self._offer(TriggerEvent.from_anomaly(anomaly), inc)
        return started

    def _offer(self, event: TriggerEvent, incident_id: str | None) -> list[str]:
        started = []
        for rb in list(self.runbooks.values()):
            if matching_trigger(rb, event) is None:
                continue
            rec = self.engine.start(rb, event, None, requested_by="opsloop")
            if incident_id:
                self._incident_by_run[rec.id] = incident_id
                with self.db.session() as s:
                    row = s.get(RunbookRunRow, rec.id)
                    if row is not None:
                        row.incident_id = incident_id
                self._note(incident_id, f"runbook {rb.name} {rec.status.value} (run {rec.id})")
            started.append(rec.id)
        return started

    def on_notify(self, receiver: str, message: str, run_id: str, runbook: str) -> None:
        """A ``notify`` step: a note on the run's incident, and a notification if configured."""
        inc = self._incident_by_run.get(run_id)
        if inc:
            self._note(inc, f"runbook {runbook}: {message}")
        svc = self.incidents
        if svc is not None and svc.dispatcher is not None:
            from datetime import UTC, datetime

            from opsloop.act.notify import Notification

            n = Notification(inc or run_id, f"runbook {runbook}", "info", "firing", {},
                             [message[:1000]], created_at=datetime.now(UTC))  # fmt: skip
            svc.dispatcher.submit(receiver, n)

    def _note(self, incident_id: str, text: str) -> None:
        if self.incidents is None:
            return
        try:
            self.incidents.note(incident_id, "runbooks", text)
        except Exception:
            log.exception("could not add a note to incident %s", incident_id)

    def tick(self, now: float | None = None) -> list[str]:
        """Start the runbooks whose schedule fires this minute."""
        from datetime import datetime

        from opsloop.act.runbooks import scheduled_runbooks

        minute = datetime.fromtimestamp(time.time() if now is None else now)
        started = []
        for rb, event in scheduled_runbooks(list(self.runbooks.values()), minute):
            started.append(self.engine.start(rb, event, None, requested_by="schedule").id)
        return started

    def decide(self, run_id: str, approved: bool, actor: str, role: Any) -> None:
        """Approve or reject the run's pending gate."""
        gates = [r for r in self.approvals.pending() if r.run_id == run_id]
        if not gates:
            raise KeyError(run_id)
        self.approvals.decide(run_id, gates[0].gate, approved, actor, role=role)
