"""The incident service: alerts and anomalies in, incidents stored, notifications out.

Wraps the pure engine in :mod:`opsloop.act.incidents` with persistence (the state store) and
timing. One lock serialises decisions so correlation sees a consistent set of live incidents;
every intake commits before it returns, so an acknowledged alert survives ``kill -9``.

Live incidents (not resolved, or resolved within the last ``group_window_s``) are cached in
memory and reloaded from the store on start. :meth:`IncidentService.tick` runs every few
seconds: it ends stale opsloop alerts, auto-resolves quiet incidents and plans notifications
(Alertmanager's group wait / interval / repeat) for the alerts that are neither silenced nor
inhibited.
"""

from __future__ import annotations

import collections
import logging
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from opsloop.act.incidents import (
    Alert,
    Correlator,
    CorrelatorConfig,
    GroupState,
    IncidentView,
    NotificationPlanner,
    Severity,
    Silence,
    acknowledge,
    add_alert,
    due_for_auto_resolve,
    expire_stale,
    from_anomaly,
    inhibited,
    is_silenced,
    merge,
    new_incident,
    resolve,
)
from opsloop.act.incidents.correlate import group_key
from opsloop.act.incidents.incident import IncidentStatus, LifecycleError
from opsloop.act.incidents.inhibit import DEFAULT_RULES, InhibitRule
from opsloop.config import IncidentSettings, NotifySettings
from opsloop.detect.anomaly import Anomaly
from opsloop.store.state.db import StateDB
from opsloop.store.state.models import (
    AlertJournal,
    DeliveryRow,
    EngineState,
    FeedbackRow,
    IncidentEvent,
    IncidentRow,
    SilenceRow,
)

log = logging.getLogger("opsloop.incidents")
FEEDBACK_LABELS = ("true_problem", "noise", "duplicate")
JOURNAL_MARK = "incidents.journal"


def _dt(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, UTC)


class NotFound(LookupError):
    """No such incident or silence."""


class IncidentService:
    """Intake, correlation, lifecycle, silences, feedback and notifications."""

    def __init__(
        self, db: StateDB, cfg: IncidentSettings, notify: NotifySettings | None = None
    ) -> None:
        self.db = db
        self.cfg = cfg
        self.correlator = Correlator(
            CorrelatorConfig(
                group_by=tuple(cfg.group_by),
                group_window_s=cfg.group_window_s,
                cooccur_window_s=cfg.cooccur_window_s,
            )
        )
        self.planner = NotificationPlanner(
            group_wait=cfg.group_wait_s,
            group_interval=cfg.group_interval_s,
            repeat_interval=cfg.repeat_interval_s,
        )
        self.rules: Sequence[InhibitRule] = (
            DEFAULT_RULES
            if cfg.inhibit is None
            else [InhibitRule.from_dict(r) for r in cfg.inhibit]
        )
        self.min_severity = Severity.parse(cfg.min_anomaly_severity)
        self._lock = threading.RLock()
        self._live: dict[str, IncidentView] = {}
        self._groups: dict[str, GroupState] = {}
        self._touched: set[str] = set()  # incidents changed since the last tick
        self._stored: set[str] = set()  # incident ids known to have a row
        self._dirty: set[str] = set()  # incidents changed since their last snapshot
        self._flush_lock = threading.Lock()
        self._journal_mark = 0  # journal entries up to this id are in the snapshots
        self._journal_max = 0
        self._silences: list[Silence] = []
        self._deliveries: collections.deque[Any] = collections.deque(maxlen=100_000)
        self.dispatcher: Any = None
        self.route: Any = None
        self._notify_cfg = notify or NotifySettings()
        self._load()

    # -- start-up ----------------------------------------------------------------------------
    def _load(self) -> None:
        horizon = _dt(time.time() - self.cfg.group_window_s)
        with self.db.session() as s:
            rows = s.scalars(
                select(IncidentRow).where(
                    (IncidentRow.status != IncidentStatus.RESOLVED.value)
                    | (IncidentRow.updated_at >= horizon)
                )
            ).all()
            self._live = {r.id: IncidentView.from_dict(r.data) for r in rows}
            self._stored = set(self._live)
            mark = s.get(EngineState, JOURNAL_MARK)
            self._journal_mark = int(mark.value["id"]) if mark else 0
            entries = s.scalars(
                select(AlertJournal)
                .where(AlertJournal.id > self._journal_mark)
                .order_by(AlertJournal.id)
            ).all()
            replay = [(e.id, e.at, e.incident_id, e.action, e.reason, e.alert) for e in entries]
        for jid, at, inc_id, action, reason, data in replay:
            self._apply(inc_id, action, reason, Alert.from_dict(data), at)
            self._journal_max = jid
        if replay:
            log.info("replayed alert journal", extra={"fields": {"entries": len(replay)}})
            self.flush()
            self._silences = [Silence.from_dict(r.data) for r in s.scalars(select(SilenceRow))]

    def build_notifications(self) -> None:
        """Create the dispatcher and routing tree from ``[notify]`` (start it with ``start``)."""
        from opsloop.act.notify import Dispatcher, load_route, receivers_from_config

        receivers = receivers_from_config(self._notify_cfg.receivers, path="notify.receivers")
        if not receivers:
            return
        route_cfg = self._notify_cfg.route or {
            "receiver": next(iter(receivers)),
            "routes": [{"receiver": r, "continue": True} for r in list(receivers)[1:]],
        }
        self.route = load_route(route_cfg, set(receivers), path="notify.route")
        self.dispatcher = Dispatcher(receivers, record=self._deliveries.append)

    # -- intake ------------------------------------------------------------------------------
    def intake(
        self, alerts: Iterable[Alert], actor: str = "api", now: float | None = None
    ) -> list[dict[str, Any]]:
        """Correlate and store ``alerts``; durable when this returns. One result per alert."""
        now = time.time() if now is None else now
        out: list[dict[str, Any]] = []
        with self._lock:
            journal: list[AlertJournal] = []
            events: list[IncidentEvent] = []
            for alert in alerts:
                decision = self.correlator.correlate(
                    alert, list(self._live.values()), now=now, new_id=self._new_id(now)
                )
                silenced = is_silenced(alert, self._silences, now)
                inc = decision.incident
                out.append(
                    {"fingerprint": alert.fingerprint, "action": decision.action,
                     "incident_id": decision.incident_id, "reason": decision.reason,
                     "silenced": silenced}
                )  # fmt: skip
                if inc is None:
                    continue
                self._live[inc.id] = inc
                self._dirty.add(inc.id)
                self._touched.add(inc.id)
                journal.append(
                    AlertJournal(at=now, incident_id=inc.id, action=decision.action,
                                 reason=decision.reason, alert=alert.to_dict())
                )  # fmt: skip
                if decision.action != "dedup" or not alert.firing:
                    events.append(
                        IncidentEvent(
                            incident_id=inc.id, at=_dt(now), actor=actor,
                            kind="resolved_alert" if not alert.firing else decision.action,
                            message=f"{alert.name}: {decision.reason}",
                            details={"fingerprint": alert.fingerprint, "alert": alert.name,
                                     "labels": dict(alert.labels), "silenced": silenced},
                        )
                    )  # fmt: skip
            if journal or events:
                with self.db.session() as s:
                    s.add_all(journal)
                    s.add_all(events)
                    s.flush()
                    if journal:
                        self._journal_max = max(self._journal_max, journal[-1].id)
        return out

    def _apply(self, inc_id: str, action: str, reason: str, alert: Alert, at: float) -> None:
        """Re-apply a journalled decision (on start, after the last snapshot)."""
        inc = self._live.get(inc_id)
        if action == "new" or inc is None:
            key = group_key(alert, self.cfg.group_by) or f"fingerprint={alert.fingerprint}"
            inc = new_incident(inc_id, alert, group_key=key, now=at, reason=reason)
        else:
            inc = add_alert(inc, alert, now=at, reason=reason if action == "join" else "")
        self._live[inc_id] = inc
        self._dirty.add(inc_id)

    def flush(self) -> None:
        """Snapshot the incidents changed since the last flush; trim the journal.

        Views are immutable, so the changed ones are picked up under the intake lock and
        written without it: intake is never stalled by a snapshot.
        """
        from sqlalchemy import delete

        with self._flush_lock:
            with self._lock:
                dirty = [self._live[i] for i in self._dirty if i in self._live]
                self._dirty.clear()
                mark = self._journal_max
            if not dirty and mark <= self._journal_mark:
                return
            try:
                # one short transaction per incident, so intake commits interleave with the
                # snapshot instead of waiting for one long write
                for inc in dirty:
                    self._store([inc], [])
                with self.db.session() as s:
                    row = s.get(EngineState, JOURNAL_MARK)
                    if row is None:
                        s.add(EngineState(key=JOURNAL_MARK, value={"id": mark}))
                    else:
                        row.value = {"id": mark}
                    s.execute(delete(AlertJournal).where(AlertJournal.id <= mark))
            except BaseException:
                with self._lock:
                    self._dirty.update(i.id for i in dirty)
                raise
            self._journal_mark = mark

    def intake_anomalies(self, anomalies: Sequence[Anomaly]) -> list[dict[str, Any]]:
        """Alerts from opsloop's own detectors (those at or above ``min_anomaly_severity``)."""
        alerts = [from_anomaly(a) for a in anomalies]
        alerts = [a for a in alerts if a.severity.rank >= self.min_severity.rank]
        if not alerts:
            return []
        return self.intake(alerts, actor="opsloop")

    def _new_id(self, now: float) -> str:
        return f"inc-{datetime.fromtimestamp(now, UTC):%Y%m%d}-{secrets.token_hex(4)}"

    def _store(self, incidents: Iterable[IncidentView], events: Iterable[IncidentEvent]) -> None:
        from sqlalchemy import update

        with self.db.session() as s:
            for inc in incidents:
                values = {
                    "status": inc.status.value, "severity": inc.severity.value,
                    "title": inc.title[:500], "group_key": (inc.group_key or "")[:500],
                    "created_at": _dt(inc.created_at), "updated_at": _dt(inc.updated_at),
                    "resolved_at": _dt(inc.resolved_at), "merged_into": inc.merged_into,
                    "data": inc.to_dict(),
                }  # fmt: skip
                if inc.id in self._stored:  # no need to load the old JSON just to replace it
                    s.execute(update(IncidentRow).where(IncidentRow.id == inc.id).values(**values))
                    continue
                row = s.get(IncidentRow, inc.id)
                if row is None:
                    s.add(IncidentRow(id=inc.id, **values))
                else:
                    for k, v in values.items():
                        setattr(row, k, v)
            s.add_all(list(events))
        self._stored.update(i.id for i in incidents)

    # -- lifecycle ---------------------------------------------------------------------------
    def get(self, incident_id: str) -> IncidentView:
        """One incident (live or from the store)."""
        with self._lock:
            if incident_id in self._live:
                return self._live[incident_id]
        with self.db.session() as s:
            row = s.get(IncidentRow, incident_id)
            if row is None:
                raise NotFound(incident_id)
            return IncidentView.from_dict(row.data)

    def _change(
        self, incident_id: str, actor: str, kind: str, message: str, fn: Any
    ) -> IncidentView:
        with self._lock:
            inc = self.get(incident_id)
            updated = fn(inc)
            if updated.is_resolved:
                self._live.pop(updated.id, None)
                self._live[updated.id] = updated  # kept until it ages out of the window
            else:
                self._live[updated.id] = updated
            self._touched.add(updated.id)
            event = IncidentEvent(incident_id=incident_id, at=_dt(time.time()), actor=actor,
                                  kind=kind, message=message, details={})  # fmt: skip
            self._store([updated], [event])
            self._audit(actor, f"incident.{kind}", incident_id)
            return updated

    def acknowledge(self, incident_id: str, actor: str) -> IncidentView:
        """open → acknowledged."""
        now = time.time()
        return self._change(incident_id, actor, "acknowledged", f"acknowledged by {actor}",
                            lambda i: acknowledge(i, now, by=actor))  # fmt: skip

    def resolve(self, incident_id: str, actor: str, reason: str = "") -> IncidentView:
        """→ resolved (by hand)."""
        now = time.time()
        return self._change(incident_id, actor, "resolved", reason or f"resolved by {actor}",
                            lambda i: resolve(i, now, by=actor, reason=reason))  # fmt: skip

    def note(self, incident_id: str, actor: str, text: str) -> None:
        """Add a note to the timeline."""
        self.get(incident_id)
        with self.db.session() as s:
            s.add(IncidentEvent(incident_id=incident_id, at=_dt(time.time()), actor=actor,
                                kind="note", message=text, details={}))  # fmt: skip
        self._audit(actor, "incident.note", incident_id)

    def merge(self, into_id: str, other_id: str, actor: str) -> IncidentView:
        """Move every alert of ``other_id`` into ``into_id``; ``other_id`` is closed."""
        if into_id == other_id:
            raise LifecycleError("an incident cannot be merged into itself")
        now = time.time()
        with self._lock:
            merged, absorbed = merge(self.get(into_id), self.get(other_id), now=now)
            self._live[merged.id] = merged
            self._live[absorbed.id] = absorbed
            self._touched.update((merged.id, absorbed.id))
            events = [
                IncidentEvent(incident_id=into_id, at=_dt(now), actor=actor, kind="merge",
                              message=f"{other_id} merged in by {actor}", details={}),
                IncidentEvent(incident_id=other_id, at=_dt(now), actor=actor, kind="merge",
                              message=f"merged into {into_id} by {actor}", details={}),
            ]  # fmt: skip
            self._store([merged, absorbed], events)
            self._audit(actor, "incident.merge", into_id, other=other_id)
            return merged

    def split(self, incident_id: str, fingerprints: Sequence[str], actor: str) -> IncidentView:
        """Move the alerts ``fingerprints`` out into a new incident; returns the new one."""
        from opsloop.act.incidents.incident import split

        now = time.time()
        with self._lock:
            rest, moved = split(
                self.get(incident_id), fingerprints, new_id=self._new_id(now), now=now
            )
            self._live[rest.id] = rest
            self._live[moved.id] = moved
            self._touched.update((rest.id, moved.id))
            events = [
                IncidentEvent(incident_id=rest.id, at=_dt(now), actor=actor, kind="split",
                              message=f"{len(moved.alerts)} alert(s) split out to {moved.id}",
                              details={"fingerprints": list(fingerprints)}),
                IncidentEvent(incident_id=moved.id, at=_dt(now), actor=actor, kind="split",
                              message=f"split out of {rest.id} by {actor}", details={}),
            ]  # fmt: skip
            self._store([rest, moved], events)
            self._audit(actor, "incident.split", rest.id, new=moved.id)
            return moved

    def _audit(self, actor: str, action: str, target: str, **details: Any) -> None:
        from opsloop.store.state.audit import AuditLog

        AuditLog(self.db).record(actor, action, target=target, **details)

    def feedback(
        self, incident_id: str, actor: str, label: str, fingerprint: str | None = None,
        note: str = "",
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Record a verdict on the incident (each of its alerts) or one alert of it."""
        if label not in FEEDBACK_LABELS:
            raise ValueError(f"label must be one of {', '.join(FEEDBACK_LABELS)}")
        inc = self.get(incident_id)
        entries = list(inc.alerts.values())
        if fingerprint is not None:
            entries = [e for e in entries if e.alert.fingerprint == fingerprint]
            if not entries:
                raise NotFound(fingerprint)
        rows = []
        with self.db.session() as s:
            for e in entries:
                a = e.alert
                row = FeedbackRow(
                    incident_id=incident_id, fingerprint=a.fingerprint, detector=a.source,
                    signal=a.name, label=label, actor=actor, at=_dt(time.time()), note=note,
                    details={"labels": dict(a.labels), "starts_at": a.starts_at},
                )  # fmt: skip
                s.add(row)
                rows.append(row)
            what = f"marked {label}" + (f" ({fingerprint})" if fingerprint else "")
            s.add(IncidentEvent(incident_id=incident_id, at=_dt(time.time()), actor=actor,
                                kind="feedback", message=what, details={}))  # fmt: skip
        self._audit(actor, "incident.feedback", incident_id, label=label, fingerprint=fingerprint)
        return [_feedback_json(r) for r in rows]

    def feedback_list(self, detector: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Stored verdicts, newest first: the training labels of the detectors."""
        stmt = select(FeedbackRow).order_by(FeedbackRow.id.desc()).limit(limit)
        if detector:
            stmt = stmt.where(FeedbackRow.detector == detector)
        with self.db.session() as s:
            return [_feedback_json(r) for r in s.scalars(stmt)]

    # -- reads -------------------------------------------------------------------------------
    def list(
        self, status: str | None = None, severity: str | None = None, q: str | None = None,
        limit: int = 50, offset: int = 0,
    ) -> tuple[list[IncidentView], int]:  # fmt: skip
        """Incidents, newest activity first, with the total matching count."""
        from sqlalchemy import func

        self.flush()
        stmt = select(IncidentRow).where(IncidentRow.merged_into.is_(None))
        if status:
            stmt = stmt.where(IncidentRow.status == status)
        if severity:
            stmt = stmt.where(IncidentRow.severity == severity)
        if q:
            stmt = stmt.where(IncidentRow.title.ilike(f"%{q}%"))
        with self.db.session() as s:
            total = s.scalar(select(func.count()).select_from(stmt.subquery())) or 0
            rows = s.scalars(
                stmt.order_by(IncidentRow.updated_at.desc()).limit(limit).offset(offset)
            ).all()
            return [IncidentView.from_dict(r.data) for r in rows], int(total)

    def timeline(self, incident_id: str) -> list[dict[str, Any]]:
        """Every event of an incident, oldest first."""
        with self.db.session() as s:
            rows = s.scalars(
                select(IncidentEvent)
                .where(IncidentEvent.incident_id == incident_id)
                .order_by(IncidentEvent.id)
            ).all()
            return [
                {"at": r.at.timestamp(), "actor": r.actor, "kind": r.kind, "message": r.message,
                 "details": r.details}
                for r in rows
            ]  # fmt: skip

    def deliveries(self, incident_id: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Recorded notification attempts, newest first."""
        self.flush_deliveries()
        stmt = select(DeliveryRow).order_by(DeliveryRow.id.desc()).limit(limit)
        if incident_id:
            stmt = stmt.where(DeliveryRow.incident_id == incident_id)
        with self.db.session() as s:
            return [
                {"receiver": r.receiver, "incident_id": r.incident_id, "attempt": r.attempt,
                 "outcome": r.outcome, "ok": r.ok, "status": r.status, "error": r.error,
                 "at": r.at.timestamp(), "duration_s": r.duration_s}
                for r in s.scalars(stmt)
            ]  # fmt: skip

    # -- silences ----------------------------------------------------------------------------
    def silences(self) -> list[Silence]:
        """Every silence (expired ones included)."""
        with self._lock:
            return list(self._silences)

    def add_silence(
        self, matchers: str, starts_at: float, ends_at: float, actor: str, comment: str = ""
    ) -> Silence:
        """Create a silence (a ``ValueError`` for bad matchers or times)."""
        if ends_at <= starts_at:
            raise ValueError("ends_at must be after starts_at")
        silence = Silence.create(
            f"sil-{secrets.token_hex(6)}", matchers, starts_at, ends_at, actor, comment
        )
        with self._lock:
            with self.db.session() as s:
                s.add(SilenceRow(id=silence.id, created_by=actor, starts_at=_dt(starts_at),
                                 ends_at=_dt(ends_at), data=silence.to_dict()))  # fmt: skip
            self._silences.append(silence)
        self._audit(actor, "silence.create", silence.id, matchers=matchers, comment=comment)
        return silence

    def expire_silence(self, silence_id: str, actor: str) -> Silence:
        """End a silence now."""
        now = time.time()
        with self._lock:
            found = next((s for s in self._silences if s.id == silence_id), None)
            if found is None:
                raise NotFound(silence_id)
            ended = found.expire(now)
            with self.db.session() as s:
                row = s.get(SilenceRow, silence_id)
                if row is not None:
                    row.ends_at = _dt(ended.ends_at)
                    row.data = ended.to_dict()
            self._silences = [ended if s.id == silence_id else s for s in self._silences]
        self._audit(actor, "silence.expire", silence_id)
        return ended

    def purge_resolved(self, days: int, now: float | None = None) -> int:
        """Delete incidents resolved more than ``days`` ago, with their timeline and delivery
        records; feedback is kept (it is training data). Returns incidents removed."""
        from sqlalchemy import delete

        self.flush()
        cutoff = _dt((time.time() if now is None else now) - days * 86400)
        with self._lock, self.db.session() as s:
            ids = list(
                s.scalars(
                    select(IncidentRow.id).where(
                        IncidentRow.status == IncidentStatus.RESOLVED.value,
                        IncidentRow.resolved_at < cutoff,
                    )
                )
            )
            for chunk in range(0, len(ids), 500):
                part = ids[chunk : chunk + 500]
                s.execute(delete(IncidentEvent).where(IncidentEvent.incident_id.in_(part)))
                s.execute(delete(DeliveryRow).where(DeliveryRow.incident_id.in_(part)))
                s.execute(delete(IncidentRow).where(IncidentRow.id.in_(part)))
            for i in ids:
                self._live.pop(i, None)
                self._stored.discard(i)
                self._dirty.discard(i)
        return len(ids)

    # -- time --------------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> int:
        """End stale alerts, auto-resolve quiet incidents, send due notifications.

        Returns the number of notifications submitted.
        """
        now = time.time() if now is None else now
        sent = 0
        with self._lock:
            changed, events = [], []
            sources = self._inhibition_sources()
            for inc_id, inc in list(self._live.items()):
                if inc.merged_into is not None:
                    continue
                updated = expire_stale(inc, now, self.cfg.stale_after_s)
                if not updated.is_resolved and due_for_auto_resolve(
                    updated, now, self.cfg.auto_resolve_quiet_s
                ):
                    updated = resolve(updated, now, by="opsloop", reason="all alerts resolved")
                    events.append(IncidentEvent(incident_id=inc_id, at=_dt(now), actor="opsloop",
                                                kind="resolved", message="auto-resolved: all "
                                                "alerts ended", details={}))  # fmt: skip
                if updated != inc:
                    self._live[inc_id] = updated
                    changed.append(updated)
                state = self._groups.get(inc_id)
                due = state is None or now >= state.next_flush_at or inc_id in self._touched
                if due:
                    sent += self._plan(updated, now, sources)
                if (
                    updated.is_resolved
                    and (updated.resolved_at or now) < now - self.cfg.group_window_s
                ):
                    self._live.pop(inc_id, None)
                    self._groups.pop(inc_id, None)
            self._touched.clear()
            if changed or events:
                self._store(changed, events)
        self.flush()
        self.flush_deliveries()
        return sent

    def _inhibition_sources(self) -> dict[tuple[int, tuple[str, ...]], list[Alert]]:
        """Firing alerts that can inhibit, indexed by rule and the values of its equal labels.

        Checking a target then costs one lookup per rule instead of a scan of every firing
        alert (the scan made each tick quadratic in the number of alerts).
        """
        index: dict[tuple[int, tuple[str, ...]], list[Alert]] = {}
        for inc in self._live.values():
            for a in inc.firing_alerts:
                for k, rule in enumerate(self.rules):
                    if all(m.matches(a.match_labels) for m in rule.source_matchers):
                        key = (k, tuple(a.match_labels.get(x, "") for x in rule.equal))
                        index.setdefault(key, []).append(a)
        return index

    def _inhibited(
        self, alert: Alert, sources: dict[tuple[int, tuple[str, ...]], list[Alert]]
    ) -> bool:
        for k, rule in enumerate(self.rules):
            key = (k, tuple(alert.match_labels.get(x, "") for x in rule.equal))
            candidates = sources.get(key)
            if candidates and inhibited(alert, candidates, [rule]) is not None:
                return True
        return False

    def _plan(
        self, inc: IncidentView, now: float, sources: dict[tuple[int, tuple[str, ...]], list[Alert]]
    ) -> int:
        if self.dispatcher is None or self.route is None:
            return 0
        notifiable_firing, resolved = set(), set()
        for e in inc.alerts.values():
            a = e.alert
            if is_silenced(a, self._silences, now):
                continue
            if a.firing:
                if not self._inhibited(a, sources):
                    notifiable_firing.add(a.fingerprint)
            else:
                resolved.add(a.fingerprint)
        state = self._groups.get(inc.id)
        if state is None:
            if not notifiable_firing:
                return 0
            state = self.planner.new_group(inc.id, now, inc.first_signal)
        state, due = self.planner.plan(state, notifiable_firing, resolved, now)
        self._groups[inc.id] = state
        if due is None:
            return 0
        return self._send(inc, due, now)

    def _send(self, inc: IncidentView, due: Any, now: float) -> int:
        from opsloop.act.notify import Notification

        firing = [inc.alerts[fp].alert for fp in due.firing if fp in inc.alerts]
        status = "resolved" if not firing else (
            "acknowledged" if inc.status is IncidentStatus.ACKNOWLEDGED else "firing")  # fmt: skip
        summaries = [f"{a.name}: {a.annotations.get('summary') or dict(a.labels)}" for a in firing]
        labels = {k: ",".join(v) for k, v in inc.labels.items()}
        base = self.cfg.external_url.rstrip("/")
        n = Notification(
            inc.id, inc.title, inc.severity.value, status, labels, summaries or ["all resolved"],
            url=f"{base}/incidents/{inc.id}" if base else None, group_key=inc.id,
            created_at=datetime.fromtimestamp(now, UTC),
        )  # fmt: skip
        count = 0
        for receiver in self.route.route(labels, inc.severity.value):
            if self.dispatcher.submit(receiver, n):
                count += 1
        return count

    def flush_deliveries(self) -> None:
        """Store the delivery attempts recorded since the last flush."""
        rows = []
        while self._deliveries:
            d = self._deliveries.popleft()
            rows.append(DeliveryRow(
                receiver=d.receiver, incident_id=d.incident_id, attempt=d.attempt,
                outcome=d.outcome, ok=d.ok, status=str(d.status or "")[:100],
                error=str(d.error or ""), at=d.at if d.at.tzinfo else d.at.replace(tzinfo=UTC),
                duration_s=float(d.duration_s or 0.0),
            ))  # fmt: skip
        if rows:
            with self.db.session() as s:
                s.add_all(rows)


def _feedback_json(r: FeedbackRow) -> dict[str, Any]:
    return {
        "incident_id": r.incident_id, "fingerprint": r.fingerprint, "detector": r.detector,
        "signal": r.signal, "label": r.label, "actor": r.actor,
        "at": r.at.timestamp() if r.at else None, "note": r.note, "details": r.details,
    }  # fmt: skip


def incident_json(inc: IncidentView) -> dict[str, Any]:
    """The API form of an incident."""
    d = inc.to_dict()
    d.update(
        title=inc.title, severity=inc.severity.value, first_signal=inc.first_signal,
        last_signal=inc.last_signal, labels={k: list(v) for k, v in inc.labels.items()},
        likely_cause=inc.likely_cause.to_dict() if inc.likely_cause else None,
        firing=len(inc.firing_alerts),
    )  # fmt: skip
    return d


__all__ = ["FEEDBACK_LABELS", "IncidentService", "NotFound", "incident_json"]
