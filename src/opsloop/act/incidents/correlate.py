"""The correlator: which incident does a new or updated alert belong to, and why.

:meth:`Correlator.correlate` takes one alert and the current incidents and returns a
:class:`Decision` - the action, the new/updated :class:`~.incident.IncidentView` and a reason a
human can read. In order:

1. **dedup** - an open incident already holds the fingerprint: the alert is updated there
   (re-sends, resolves, repeated anomalies on the same series). A *resolved* incident only
   records resolves of its alerts; a firing alert whose incident is resolved opens a new
   incident (resolved incidents never reopen), unless it is a stale re-send older than the
   recorded end, which is ignored.
2. **group join** - an open incident has an alert with the same values of the ``group_by``
   labels (default ``service``, ``host``; missing = ``""``; at least one present) and either
   its signals are within ``group_window_s`` (default 10 min) of this alert, or one of those
   alerts is still firing (explicitly resolved sources only: opsloop anomalies are point
   events). Reason: ``service=api, host=db1; group window 10 min, 2 min after the last signal``.
3. **co-occurrence join** - an open incident has a signal on the same ``host`` within
   ``cooccur_window_s`` (default 5 min): ``same host db1, 40 s apart``. When the kinds have
   been seen together often (learned, :class:`~.cooccur.CooccurrenceStats`), the reason says
   so, and a join is allowed up to ``learned_window_s`` (default 15 min):
   ``same host db1, 9 min apart; A and B co-occurred on one host 9 of the last 10 times``.
4. otherwise a **new** incident; a resolved alert with no incident is **ignored**.

The correlator's only state is the learned co-occurrence statistics (persist
``correlator.stats.to_dict()``); incidents are passed in and returned, never kept.

>>> from opsloop.act.incidents.alert import Alert, Severity
>>> c = Correlator()
>>> log = Alert(name="logs.frequency.burst", severity=Severity.WARNING, starts_at=1000.0,
...             labels={"host": "db1", "service": "postgres", "key": "17"})
>>> d1 = c.correlate(log, [], now=1000.0, new_id="inc-1")
>>> d1.action, d1.reason
('new', 'new incident for service=postgres, host=db1')
>>> cpu = Alert(name="metrics.detector.metric_anomaly", severity=Severity.ERROR,
...             starts_at=1040.0, labels={"host": "db1", "metric": "cpu"})
>>> d2 = c.correlate(cpu, [d1.incident], now=1041.0)
>>> d2.action, d2.incident_id, d2.reason
('join', 'inc-1', 'same host db1, 40 s apart')
>>> d2.incident.severity.value, d2.incident.likely_cause.name
('error', 'logs.frequency.burst')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from opsloop.act.incidents.alert import Alert, signal_kind
from opsloop.act.incidents.cooccur import CooccurrenceStats
from opsloop.act.incidents.incident import (
    IncidentView,
    add_alert,
    human_duration,
    is_stale,
    new_incident,
)

__all__ = ["DEFAULT_GROUP_BY", "Correlator", "CorrelatorConfig", "Decision", "group_key"]

DEFAULT_GROUP_BY: tuple[str, ...] = ("service", "host")
# learned co-occurrence looks at the most recent alerts of a host only (bounded cost)
LEARNED_SAMPLE = 32

Action = Literal["dedup", "join", "new", "ignore"]


def group_key(alert: Alert, group_by: Sequence[str] = DEFAULT_GROUP_BY) -> str | None:
    """``name=value,...`` over ``group_by`` (missing = ``""``), or ``None`` when all are missing.

    >>> from opsloop.act.incidents.alert import Alert, Severity
    >>> a = Alert(name="X", severity=Severity.INFO, starts_at=0.0, labels={"host": "db1"})
    >>> group_key(a), group_key(a, ["team"]) is None
    ('service=,host=db1', True)
    """
    values = [alert.labels.get(k, "") for k in group_by]
    if not any(values):
        return None
    return ",".join(f"{k}={v}" for k, v in zip(group_by, values, strict=True))


def _key_text(key: str) -> str:
    return ", ".join(p for p in key.split(",") if not p.endswith("="))


def _gap(t: float, first: float, last: float) -> float:
    """Distance from ``t`` to the interval ``[first, last]`` (0 inside)."""
    if t < first:
        return first - t
    return max(0.0, t - last)


@dataclass(frozen=True)
class CorrelatorConfig:
    """Correlation settings (seconds). See the module docstring for what each one does."""

    group_by: tuple[str, ...] = DEFAULT_GROUP_BY
    group_window_s: float = 600.0
    cooccur_label: str = "host"
    cooccur_window_s: float = 300.0
    learned_window_s: float = 900.0
    learned_min_count: int = 5
    learned_min_ratio: float = 0.8
    history: int = 10


@dataclass(frozen=True)
class Decision:
    """What to do with an alert: ``action``, the resulting incident (``None`` when ignored) and
    a human-readable ``reason``."""

    action: Action
    incident: IncidentView | None
    reason: str

    @property
    def incident_id(self) -> str | None:
        """The id of the incident the alert went to."""
        return None if self.incident is None else self.incident.id


@dataclass(frozen=True)
class _Candidate:
    rank: int  # 0 group, 1 co-occurrence, 2 learned co-occurrence
    gap: float
    incident: IncidentView
    reason: str


class Correlator:
    """Places alerts into incidents (see the module docstring).

    ``kind_of`` names an alert's signal kind for co-occurrence learning (default
    :func:`~opsloop.act.incidents.alert.signal_kind`); ``stats`` restores learned state.
    """

    def __init__(
        self,
        config: CorrelatorConfig | None = None,
        stats: CooccurrenceStats | None = None,
        kind_of: Callable[[Alert], str] = signal_kind,
    ) -> None:
        self.config = config or CorrelatorConfig()
        self.stats = stats or CooccurrenceStats(
            window_s=self.config.cooccur_window_s, history=self.config.history
        )
        self.kind_of = kind_of
        # id(view) -> (view, alerts by group key, alerts by co-occurrence label): see _index
        self._indexes: dict[
            int, tuple[IncidentView, dict[str, list[str]], dict[str, list[str]]]
        ] = {}

    def correlate(
        self,
        alert: Alert,
        incidents: Sequence[IncidentView],
        *,
        now: float,
        new_id: str | None = None,
    ) -> Decision:
        """Decide where ``alert`` goes; returns the updated or new incident in the decision.

        ``new_id`` names a new incident (default ``inc-<fingerprint>-<start seconds>``).
        Incidents with ``merged_into`` set are skipped.
        """
        live = [i for i in incidents if i.merged_into is None]
        fp = alert.fingerprint
        holders = sorted((i for i in live if fp in i.alerts), key=lambda i: i.last_signal)
        open_holders = [i for i in holders if not i.is_resolved]
        if open_holders:
            inc = open_holders[-1]
            entry = inc.alerts[fp]
            updated = add_alert(inc, alert, now=now, reason="")
            self._carry(inc, updated, alert)
            what = "resolved" if not alert.firing else f"signal {entry.count + 1}"
            return Decision("dedup", updated, f"same fingerprint {fp} ({what})")
        note = ""
        if holders:
            inc = holders[-1]
            stored = inc.alerts[fp].alert
            if not alert.firing:
                updated = add_alert(inc, alert, now=now, reason="")
                return Decision("dedup", updated, f"late resolve in resolved incident {inc.id}")
            if is_stale(stored, alert):
                return Decision("ignore", None, f"stale re-send; incident {inc.id} is resolved")
            note = f"; re-fired after incident {inc.id} was resolved"
        if not alert.firing:
            return Decision("ignore", None, "resolved alert with no open incident")

        best = self._best_join(alert, [i for i in live if not i.is_resolved])
        self._learn(alert)
        if best is not None:
            updated = add_alert(best.incident, alert, now=now, reason=best.reason + note)
            self._carry(best.incident, updated, alert)
            return Decision("join", updated, best.reason + note)
        key = group_key(alert, self.config.group_by)
        reason = "new incident" + (f" for {_key_text(key)}" if key else "") + note
        inc_id = new_id or f"inc-{fp}-{int(alert.starts_at)}"
        created = new_incident(
            inc_id, alert, group_key=key or f"fingerprint={fp}", now=now, reason=reason
        )
        return Decision("new", created, reason)

    # -- joins --------------------------------------------------------------------------------
    def _best_join(self, alert: Alert, incidents: Sequence[IncidentView]) -> _Candidate | None:
        found = [c for inc in incidents for c in self._candidates(alert, inc)]
        if not found:
            return None
        return min(found, key=lambda c: (c.rank, c.gap, -c.incident.last_signal))

    def _index(self, inc: IncidentView) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        """The incident's alert fingerprints by group key and by co-occurrence label value.

        Incident views are immutable, so the index of one view object never goes stale; it
        makes a join check a dict lookup instead of a scan of every alert of every incident.
        :meth:`_carry` derives the index of an updated view from its predecessor's.
        """
        hit = self._indexes.get(id(inc))
        if hit is not None and hit[0] is inc:
            return hit[1], hit[2]
        groups: dict[str, list[str]] = {}
        hosts: dict[str, list[str]] = {}
        for fp, e in inc.alerts.items():
            self._add_to_index(groups, hosts, fp, e.alert)
        self._remember(inc, groups, hosts)
        return groups, hosts

    def _add_to_index(
        self, groups: dict[str, list[str]], hosts: dict[str, list[str]], fp: str, alert: Alert
    ) -> None:
        k = group_key(alert, self.config.group_by)
        if k is not None:
            groups.setdefault(k, []).append(fp)
        h = alert.labels.get(self.config.cooccur_label)
        if h:
            hosts.setdefault(h, []).append(fp)

    def _remember(
        self, inc: IncidentView, groups: dict[str, list[str]], hosts: dict[str, list[str]]
    ) -> None:
        if len(self._indexes) > 20_000:
            self._indexes.clear()
        self._indexes[id(inc)] = (inc, groups, hosts)

    def _carry(self, old: IncidentView, new: IncidentView, alert: Alert) -> None:
        """Index ``new`` (``old`` plus ``alert``) by copying only the lists that change."""
        hit = self._indexes.get(id(old))
        if hit is None or hit[0] is not old:
            return
        groups, hosts = dict(hit[1]), dict(hit[2])
        if alert.fingerprint not in old.alerts:
            k = group_key(alert, self.config.group_by)
            if k is not None:
                groups[k] = [*groups.get(k, []), alert.fingerprint]
            h = alert.labels.get(self.config.cooccur_label)
            if h:
                hosts[h] = [*hosts.get(h, []), alert.fingerprint]
        self._remember(new, groups, hosts)

    def _candidates(self, alert: Alert, inc: IncidentView) -> list[_Candidate]:
        cfg, t, out = self.config, alert.starts_at, []
        key = group_key(alert, cfg.group_by)
        groups, hosts = self._index(inc)
        if key is not None:
            same = [inc.alerts[fp] for fp in groups.get(key, ())]
            if same:
                gap = _gap(t, inc.first_signal, inc.last_signal)
                firing = [
                    e.alert for e in same
                    if e.alert.firing and not e.alert.source.startswith("opsloop:")
                ]  # fmt: skip
                window = f"group window {human_duration(cfg.group_window_s)}"
                if gap <= cfg.group_window_s:
                    when = "within the incident" if gap == 0 else f"{human_duration(gap)} apart"
                    out.append(_Candidate(0, gap, inc, f"{_key_text(key)}; {window}, {when}"))
                elif firing:
                    why = f"{firing[0].name} still firing"
                    out.append(_Candidate(0, gap, inc, f"{_key_text(key)}; {why}"))
        host = alert.labels.get(cfg.cooccur_label, "")
        if host:
            there = [inc.alerts[fp] for fp in hosts.get(host, ())]
            if there:
                gap = min(_gap(t, e.first_seen, e.last_seen) for e in there)
                where = f"same {cfg.cooccur_label} {host}, {human_duration(gap)} apart"
                recent = sorted(there, key=lambda e: e.last_seen)[-LEARNED_SAMPLE:]
                learned = self._learned(alert, [e.alert for e in recent])
                if gap <= cfg.cooccur_window_s:
                    reason = where + (f"; {learned}" if learned else "")
                    out.append(_Candidate(1, gap, inc, reason))
                elif learned and gap <= cfg.learned_window_s:
                    out.append(_Candidate(2, gap, inc, f"{where}; {learned}"))
        return out

    def _learned(self, alert: Alert, others: Sequence[Alert]) -> str | None:
        kind = self.kind_of(alert)
        best = self.stats.best([kind], {self.kind_of(a) for a in others})
        if best is None:
            return None
        a, b, n, total = best
        if n < self.config.learned_min_count or n / total < self.config.learned_min_ratio:
            return None
        return self.stats.describe(a, b)

    def _learn(self, alert: Alert) -> None:
        host = alert.labels.get(self.config.cooccur_label, "")
        if host:
            self.stats.observe(host, self.kind_of(alert), alert.starts_at)
