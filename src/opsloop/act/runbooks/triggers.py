"""Trigger events and which runbook trigger an event fires.

A :class:`TriggerEvent` is what starts a run: an alert, an anomaly, a schedule tick or a
manual request. Its :meth:`~TriggerEvent.context` is what ``${event.*}`` reads, and its ``key``
(with the runbook name) is the cooldown key: an alert's fingerprint, an anomaly's
``source/kind/key``, the cron expression, ``manual``.

Alert and anomaly triggers use opsloop's label matchers (``=``, ``!=``, ``=~``, ``!~``, from
:mod:`opsloop.act.incidents.matchers`); an alert trigger's ``severity`` is a minimum.

>>> from opsloop.act.incidents.alert import Alert, Severity
>>> ev = TriggerEvent.from_alert(Alert("UnitCrashLoop", Severity.ERROR, 0.0, {"unit": "nginx"}))
>>> ev.kind, ev.labels["unit"], ev.severity, len(ev.key)
('alert', 'nginx', 'error', 16)
"""

from __future__ import annotations

import time as _time
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal

from opsloop.act.incidents.alert import Alert, Severity, from_anomaly
from opsloop.act.incidents.matchers import matches_all
from opsloop.act.runbooks.schema import Runbook, Trigger
from opsloop.detect.anomaly import Anomaly, to_epoch

__all__ = ["EventKind", "TriggerEvent", "matching_trigger", "scheduled_runbooks"]

EventKind = Literal["alert", "anomaly", "schedule", "manual"]


@dataclass(frozen=True)
class TriggerEvent:
    """What starts a run. ``labels`` are strings; ``data`` holds anything else (JSON-able)."""

    kind: EventKind
    key: str
    name: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    severity: str = ""
    source: str = ""
    time: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)
    anomaly_kind: str = ""
    requested_by: str | None = None

    @classmethod
    def from_alert(cls, alert: Alert) -> TriggerEvent:
        """An alert event; labels include ``severity`` (as matchers see them)."""
        return cls(
            kind="alert",
            key=alert.fingerprint,
            name=alert.name,
            labels=dict(alert.match_labels),
            annotations=dict(alert.annotations),
            severity=alert.severity.value,
            source=alert.source,
            time=alert.starts_at,
        )

    @classmethod
    def from_anomaly(cls, anomaly: Anomaly) -> TriggerEvent:
        """An anomaly event; labels as :func:`~opsloop.act.incidents.alert.from_anomaly` makes
        them, ``source``/``anomaly_kind`` from the detector."""
        al = from_anomaly(anomaly)
        return cls(
            kind="anomaly",
            key=f"{anomaly.source}/{anomaly.kind}/{anomaly.key}",
            name=al.name,
            labels=dict(al.match_labels),
            annotations=dict(al.annotations),
            severity=al.severity.value,
            source=anomaly.source,
            time=to_epoch(anomaly.time),
            data={"score": float(anomaly.score), "evidence": list(anomaly.evidence)},
            anomaly_kind=anomaly.kind,
        )

    @classmethod
    def schedule(cls, cron: str, at: float | None = None) -> TriggerEvent:
        """A schedule tick of ``cron`` at epoch ``at`` (now by default)."""
        return cls(kind="schedule", key=cron, name=cron, time=_time.time() if at is None else at)

    @classmethod
    def manual(
        cls, requested_by: str | None = None, *, labels: dict[str, str] | None = None
    ) -> TriggerEvent:
        """Someone asked for a run (``labels`` let a caller fill ``${event.labels.*}``)."""
        return cls(
            kind="manual",
            key="manual",
            name="manual",
            labels=dict(labels or {}),
            time=_time.time(),
            requested_by=requested_by,
        )

    def context(self) -> dict[str, Any]:
        """The ``event`` template root."""
        return {
            "kind": self.kind,
            "key": self.key,
            "name": self.name,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "severity": self.severity,
            "source": self.source,
            "time": self.time,
            "data": dict(self.data),
        }

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-able: what a queued or waiting run keeps to be resumed after a
        restart (:meth:`from_dict` reads it back)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TriggerEvent:
        """Inverse of :meth:`to_dict` (unknown keys are ignored; ``kind`` and ``key`` are
        required).

        >>> ev = TriggerEvent.manual("bob", labels={"host": "db1"})
        >>> TriggerEvent.from_dict(ev.to_dict()) == ev
        True
        """
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def summary(self) -> dict[str, Any]:
        """What a run record keeps about its trigger."""
        out = {"kind": self.kind, "key": self.key, "name": self.name, "labels": dict(self.labels)}
        if self.requested_by:
            out["requested_by"] = self.requested_by
        return out


def _trigger_fires(trigger: Trigger, event: TriggerEvent) -> bool:
    if trigger.kind != event.kind:
        return False
    if trigger.alert is not None:
        t = trigger.alert
        if t.severity is not None:
            sev = Severity.parse(event.severity, default=Severity.INFO)
            if sev.rank < t.severity.rank:
                return False
        return matches_all(t.parsed, event.labels)
    if trigger.anomaly is not None:
        a = trigger.anomaly
        if a.source is not None and a.source != event.source:
            return False
        if a.kind is not None and a.kind != event.anomaly_kind:
            return False
        return matches_all(a.parsed, event.labels)
    if trigger.schedule is not None:
        return trigger.schedule.parsed.text == " ".join(event.key.split())
    return True  # manual


def matching_trigger(runbook: Runbook, event: TriggerEvent) -> Trigger | None:
    """The first of ``runbook``'s triggers that ``event`` fires (``None``: not this runbook,
    or the runbook is disabled)."""
    if not runbook.enabled:
        return None
    return next((t for t in runbook.triggers if _trigger_fires(t, event)), None)


def scheduled_runbooks(
    runbooks: list[Runbook], minute: datetime
) -> list[tuple[Runbook, TriggerEvent]]:
    """Runbooks whose schedule fires at ``minute`` (local time of the datetime passed in),
    each with its schedule event. The host calls this once per minute."""
    out: list[tuple[Runbook, TriggerEvent]] = []
    at = minute.timestamp() if minute.tzinfo else minute.replace(tzinfo=UTC).timestamp()
    for rb in runbooks:
        if not rb.enabled:
            continue
        for t in rb.triggers:
            if t.schedule is not None and t.schedule.parsed.matches(minute):
                out.append((rb, TriggerEvent.schedule(t.schedule.parsed.text, at)))
                break
    return out
