"""The in-memory incident: its alerts, why each joined, its lifecycle, merge and split.

An :class:`IncidentView` is immutable; every function here returns a new view, so the caller
(the persistence layer) decides what to store. Lifecycle: ``open -> acknowledged -> resolved``
(``acknowledged -> open`` by :func:`unacknowledge`); *resolved is final* - a resolved incident
takes no new alerts (a new incident opens instead, unlike Keep issue #2481), it only records
late resolves of alerts it already holds.

Derived facts: ``severity`` = the most severe alert; ``title`` = the most severe alert (ties:
the earliest) with its service/host; ``likely_cause`` = the alert seen first; ``first_signal``
/ ``last_signal`` = the earliest / latest firing signal of any alert.

>>> from opsloop.act.incidents.alert import Alert, Severity
>>> a = Alert(name="HighLatency", severity=Severity.WARNING, starts_at=100.0,
...           labels={"service": "api", "host": "web1"})
>>> inc = new_incident("i1", a, group_key="service=api,host=web1", now=100.0, reason="new")
>>> inc.title, inc.severity.value, inc.status.value
('HighLatency on service=api, host=web1', 'warning', 'open')
>>> resolve(acknowledge(inc, 130.0, "ana"), 200.0, "ana").status.value
'resolved'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from opsloop.act.incidents.alert import Alert, Severity, max_severity

__all__ = [
    "IncidentAlert",
    "IncidentStatus",
    "IncidentView",
    "LifecycleError",
    "Link",
    "acknowledge",
    "add_alert",
    "due_for_auto_resolve",
    "expire_stale",
    "human_duration",
    "is_stale",
    "merge",
    "new_incident",
    "resolve",
    "split",
    "unacknowledge",
]

TITLE_LABELS = ("service", "host", "instance")


class LifecycleError(ValueError):
    """A transition the lifecycle does not allow (e.g. acknowledging a resolved incident)."""


class IncidentStatus(StrEnum):
    """``open`` -> ``acknowledged`` -> ``resolved`` (final)."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


def human_duration(seconds: float) -> str:
    """A short duration for reasons: ``40 s``, ``6 min``, ``2.5 h``, ``3 d``.

    >>> human_duration(40.2), human_duration(90), human_duration(360), human_duration(9000)
    ('40 s', '90 s', '6 min', '2.5 h')
    >>> human_duration(3 * 86400)
    '3 d'
    """
    s = abs(seconds)
    if s < 120:
        return f"{s:.0f} s"
    if s < 90 * 60:
        return f"{s / 60:.0f} min"
    if s < 48 * 3600:
        return f"{s / 3600:.2g} h"
    return f"{s / 86400:.0f} d"


@dataclass(frozen=True)
class Link:
    """Why an alert belongs to an incident (or another event in its history), and when."""

    fingerprint: str
    reason: str
    at: float


def is_stale(stored: Alert, update: Alert) -> bool:
    """Whether firing ``update`` re-sends the already resolved episode of ``stored``.

    >>> from opsloop.act.incidents.alert import Alert, Severity
    >>> a = Alert(name="A", severity=Severity.INFO, starts_at=10.0, ends_at=50.0)
    >>> resend, again = a.with_changes(ends_at=None), a.with_changes(starts_at=60.0, ends_at=None)
    >>> is_stale(a, resend), is_stale(a, again)
    (True, False)
    """
    return update.firing and stored.ends_at is not None and update.starts_at <= stored.starts_at


@dataclass(frozen=True)
class IncidentAlert:
    """An alert held by an incident: its latest state and when its signals were seen.

    ``first_seen``/``last_seen`` are signal (event) times of its firing updates; ``count`` is
    how many updates arrived.
    """

    alert: Alert
    first_seen: float
    last_seen: float
    count: int = 1

    def updated(self, alert: Alert) -> IncidentAlert:
        """This entry after ``alert`` (same fingerprint) arrives.

        A firing update of a resolved alert that starts no later than the stored one is a
        stale re-send of the ended episode: it is counted but keeps the resolved state.
        """
        if is_stale(self.alert, alert):
            return dataclasses.replace(self, count=self.count + 1)
        t = alert.starts_at
        return IncidentAlert(alert, min(self.first_seen, t), max(self.last_seen, t), self.count + 1)


@dataclass(frozen=True)
class IncidentView:
    """An incident as the correlator and lifecycle see it (immutable)."""

    id: str
    group_key: str
    alerts: Mapping[str, IncidentAlert]
    created_at: float
    updated_at: float
    status: IncidentStatus = IncidentStatus.OPEN
    links: tuple[Link, ...] = ()
    acknowledged_at: float | None = None
    acknowledged_by: str = ""
    resolved_at: float | None = None
    resolved_by: str = ""
    resolution: str = ""
    merged_into: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    # -- derived ------------------------------------------------------------------------------
    @property
    def fingerprints(self) -> frozenset[str]:
        """The fingerprints of the incident's alerts."""
        return frozenset(self.alerts)

    @property
    def is_resolved(self) -> bool:
        """Whether the incident is resolved (final)."""
        return self.status is IncidentStatus.RESOLVED

    @property
    def first_signal(self) -> float:
        """The earliest signal time of any alert."""
        return min(e.first_seen for e in self.alerts.values())

    @property
    def last_signal(self) -> float:
        """The latest firing signal time of any alert."""
        return max(e.last_seen for e in self.alerts.values())

    @property
    def severity(self) -> Severity:
        """The most severe alert's severity (resolved alerts included: it does not drop)."""
        return max_severity(e.alert.severity for e in self.alerts.values())

    @property
    def labels(self) -> dict[str, tuple[str, ...]]:
        """The union of the alerts' labels: each name with its sorted distinct values."""
        out: dict[str, set[str]] = {}
        for e in self.alerts.values():
            for k, v in e.alert.labels.items():
                out.setdefault(k, set()).add(v)
        return {k: tuple(sorted(v)) for k, v in sorted(out.items())}

    @property
    def likely_cause(self) -> Alert:
        """The alert whose signal came first - the best first guess at the cause."""
        return min(self.alerts.values(), key=lambda e: (e.first_seen, e.alert.fingerprint)).alert

    @property
    def headline_alert(self) -> Alert:
        """The most severe alert (ties: the earliest)."""
        return min(
            self.alerts.values(),
            key=lambda e: (-e.alert.severity.rank, e.first_seen, e.alert.fingerprint),
        ).alert

    @property
    def title(self) -> str:
        """``<most severe alert> on service=..., host=...`` plus ``(+N more)``."""
        a = self.headline_alert
        where = ", ".join(f"{k}={a.labels[k]}" for k in TITLE_LABELS if a.labels.get(k))
        text = a.name + (f" on {where}" if where else "")
        more = len(self.alerts) - 1
        return text + (f" (+{more} more)" if more else "")

    @property
    def firing_alerts(self) -> list[Alert]:
        """The alerts still firing."""
        return [e.alert for e in self.alerts.values() if e.alert.firing]

    def reasons(self, fingerprint: str) -> list[str]:
        """The recorded reasons for ``fingerprint`` (why it joined, merges, splits)."""
        return [link.reason for link in self.links if link.fingerprint == fingerprint]

    # -- persistence --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (:meth:`from_dict` inverts it)."""
        return {
            "id": self.id,
            "group_key": self.group_key,
            "status": self.status.value,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "alerts": [
                {
                    "alert": e.alert.to_dict(),
                    "first_seen": e.first_seen,
                    "last_seen": e.last_seen,
                    "count": e.count,
                }
                for e in self.alerts.values()
            ],
            "links": [
                {"fingerprint": k.fingerprint, "reason": k.reason, "at": k.at} for k in self.links
            ],
            "acknowledged_at": self.acknowledged_at,
            "acknowledged_by": self.acknowledged_by,
            "resolved_at": self.resolved_at,
            "resolved_by": self.resolved_by,
            "resolution": self.resolution,
            "merged_into": self.merged_into,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> IncidentView:
        """Inverse of :meth:`to_dict`."""
        entries = [
            IncidentAlert(Alert.from_dict(x["alert"]), x["first_seen"], x["last_seen"], x["count"])
            for x in d["alerts"]
        ]
        return cls(
            id=d["id"],
            group_key=d["group_key"],
            alerts={e.alert.fingerprint: e for e in entries},
            created_at=d["created_at"],
            updated_at=d["updated_at"],
            status=IncidentStatus(d["status"]),
            links=tuple(Link(**x) for x in d.get("links", [])),
            acknowledged_at=d.get("acknowledged_at"),
            acknowledged_by=d.get("acknowledged_by", ""),
            resolved_at=d.get("resolved_at"),
            resolved_by=d.get("resolved_by", ""),
            resolution=d.get("resolution", ""),
            merged_into=d.get("merged_into"),
            extra=dict(d.get("extra", {})),
        )


# -- building ----------------------------------------------------------------------------------


def new_incident(id: str, alert: Alert, *, group_key: str, now: float, reason: str) -> IncidentView:
    """A new open incident holding ``alert``."""
    t = alert.starts_at
    return IncidentView(
        id=id,
        group_key=group_key,
        alerts={alert.fingerprint: IncidentAlert(alert, t, t)},
        created_at=now,
        updated_at=now,
        links=(Link(alert.fingerprint, reason, now),),
    )


def add_alert(inc: IncidentView, alert: Alert, *, now: float, reason: str) -> IncidentView:
    """``inc`` with ``alert`` added, or its entry updated when the fingerprint is known.

    A resolved incident only accepts updates of alerts it holds (late resolves).

    >>> from opsloop.act.incidents.alert import Alert, Severity
    >>> a = Alert(name="A", severity=Severity.INFO, starts_at=0.0)
    >>> inc = new_incident("i", a, group_key="k", now=0.0, reason="new")
    >>> add_alert(inc, a.with_changes(ends_at=9.0), now=9.0, reason="resolve").alerts[
    ...     a.fingerprint].alert.status
    'resolved'
    """
    fp = alert.fingerprint
    entry = inc.alerts.get(fp)
    if inc.is_resolved and entry is None:
        raise LifecycleError(f"incident {inc.id} is resolved; it takes no new alerts")
    if entry is None:
        t = alert.starts_at
        entry = IncidentAlert(alert, t, t)
        links = (*inc.links, Link(fp, reason, now))
    else:
        entry = entry.updated(alert)
        links = inc.links
    return dataclasses.replace(
        inc, alerts={**inc.alerts, fp: entry}, links=links, updated_at=max(inc.updated_at, now)
    )


# -- lifecycle ---------------------------------------------------------------------------------


def acknowledge(inc: IncidentView, now: float, by: str = "") -> IncidentView:
    """``open -> acknowledged`` (idempotent when already acknowledged)."""
    if inc.is_resolved:
        raise LifecycleError(f"incident {inc.id} is resolved")
    if inc.status is IncidentStatus.ACKNOWLEDGED:
        return inc
    return dataclasses.replace(
        inc, status=IncidentStatus.ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=by,
        updated_at=now,
    )  # fmt: skip


def unacknowledge(inc: IncidentView, now: float) -> IncidentView:
    """``acknowledged -> open`` (idempotent when open)."""
    if inc.is_resolved:
        raise LifecycleError(f"incident {inc.id} is resolved")
    return dataclasses.replace(
        inc, status=IncidentStatus.OPEN, acknowledged_at=None, acknowledged_by="", updated_at=now
    )


def resolve(inc: IncidentView, now: float, by: str = "", reason: str = "") -> IncidentView:
    """``open | acknowledged -> resolved`` (a resolved incident is returned unchanged)."""
    if inc.is_resolved:
        return inc
    return dataclasses.replace(
        inc, status=IncidentStatus.RESOLVED, resolved_at=now, resolved_by=by,
        resolution=reason, updated_at=now,
    )  # fmt: skip


def due_for_auto_resolve(inc: IncidentView, now: float, quiet_s: float) -> bool:
    """Whether every alert is resolved and none ended within the last ``quiet_s`` seconds.

    >>> from opsloop.act.incidents.alert import Alert, Severity
    >>> a = Alert(name="A", severity=Severity.INFO, starts_at=0.0)
    >>> inc = new_incident("i", a, group_key="k", now=0.0, reason="new")
    >>> due_for_auto_resolve(inc, 1e9, 300)
    False
    >>> done = add_alert(inc, a.with_changes(ends_at=100.0), now=100.0, reason="")
    >>> due_for_auto_resolve(done, 399.0, 300), due_for_auto_resolve(done, 400.0, 300)
    (False, True)
    """
    if inc.is_resolved or not inc.alerts:
        return False
    ends = [e.alert.ends_at for e in inc.alerts.values()]
    if any(t is None for t in ends):
        return False
    return now - max(t for t in ends if t is not None) >= quiet_s


def expire_stale(
    inc: IncidentView, now: float, timeout_s: float, source_prefix: str = "opsloop:"
) -> IncidentView:
    """Resolve firing alerts from ``source_prefix`` not seen for ``timeout_s`` seconds.

    opsloop's detectors report point events that never "resolve"; like Alertmanager's
    ``resolve_timeout`` (default 5 min) such an alert ends at ``last_seen + timeout_s`` once
    nothing refreshed it. Other sources send explicit resolves and are left alone.
    """
    changed = {}
    for fp, e in inc.alerts.items():
        a = e.alert
        if a.firing and a.source.startswith(source_prefix) and now - e.last_seen >= timeout_s:
            changed[fp] = dataclasses.replace(
                e, alert=a.with_changes(ends_at=e.last_seen + timeout_s)
            )
    if not changed:
        return inc
    return dataclasses.replace(inc, alerts={**inc.alerts, **changed}, updated_at=now)


# -- merge and split ---------------------------------------------------------------------------


def _combine(a: IncidentAlert, b: IncidentAlert) -> IncidentAlert:
    latest = a if a.last_seen >= b.last_seen else b
    return IncidentAlert(
        latest.alert, min(a.first_seen, b.first_seen), max(a.last_seen, b.last_seen),
        a.count + b.count,
    )  # fmt: skip


def merge(
    into: IncidentView, other: IncidentView, *, now: float
) -> tuple[IncidentView, IncidentView]:
    """Merge ``other`` into ``into``: returns ``(merged, absorbed)``.

    ``merged`` keeps ``into``'s id and holds both incidents' alerts (an alert in both keeps
    the later state); it is open unless both were acknowledged. ``absorbed`` is ``other``
    resolved with ``merged_into`` set, for the store to keep as a pointer. Resolved incidents
    cannot be merged.
    """
    if into.id == other.id:
        raise LifecycleError("cannot merge an incident into itself")
    for inc in (into, other):
        if inc.is_resolved:
            raise LifecycleError(f"incident {inc.id} is resolved")
    alerts = dict(into.alerts)
    for fp, e in other.alerts.items():
        alerts[fp] = _combine(alerts[fp], e) if fp in alerts else e
    both_acked = IncidentStatus.OPEN not in (into.status, other.status)
    merged = dataclasses.replace(
        into,
        alerts=alerts,
        status=IncidentStatus.ACKNOWLEDGED if both_acked else IncidentStatus.OPEN,
        links=(*into.links, *other.links, Link("", f"merged incident {other.id}", now)),
        updated_at=now,
        created_at=min(into.created_at, other.created_at),
    )
    if not both_acked:
        merged = dataclasses.replace(merged, acknowledged_at=None, acknowledged_by="")
    absorbed = dataclasses.replace(
        resolve(other, now, reason=f"merged into {into.id}"), merged_into=into.id
    )
    return merged, absorbed


def split(
    inc: IncidentView,
    fingerprints: Iterable[str],
    *,
    new_id: str,
    now: float,
    group_key: str | None = None,
) -> tuple[IncidentView, IncidentView]:
    """Move the alerts ``fingerprints`` out of ``inc`` into a new open incident ``new_id``.

    Returns ``(rest, moved)``. At least one alert must move and one stay. ``moved`` gets
    ``group_key`` or ``"split:<inc.id>"``.
    """
    fps = set(fingerprints)
    if inc.is_resolved:
        raise LifecycleError(f"incident {inc.id} is resolved")
    if not fps:
        raise LifecycleError("nothing to split off")
    unknown = fps - set(inc.alerts)
    if unknown:
        raise LifecycleError(f"not in incident {inc.id}: {', '.join(sorted(unknown))}")
    if fps >= set(inc.alerts):
        raise LifecycleError("a split must leave at least one alert behind")
    note = f"split from incident {inc.id}"
    moved = IncidentView(
        id=new_id,
        group_key=group_key or f"split:{inc.id}",
        alerts={fp: e for fp, e in inc.alerts.items() if fp in fps},
        created_at=now,
        updated_at=now,
        links=(
            *(link for link in inc.links if link.fingerprint in fps),
            *(Link(fp, note, now) for fp in sorted(fps)),
        ),
    )
    rest = dataclasses.replace(
        inc,
        alerts={fp: e for fp, e in inc.alerts.items() if fp not in fps},
        links=(
            *(link for link in inc.links if link.fingerprint not in fps),
            Link("", f"split off {len(fps)} alert(s) into incident {new_id}", now),
        ),
        updated_at=now,
    )
    return rest, moved
