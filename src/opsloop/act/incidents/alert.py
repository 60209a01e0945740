"""The normalised alert every signal becomes before it reaches the incident engine.

Alertmanager webhooks, the generic JSON API and opsloop's own detectors all produce an
:class:`Alert`: a label set (which *is* the alert's identity), annotations for humans, a
severity, a start and - once resolved - an end. ``ends_at is None`` means *firing*.

Fingerprint
    When a source gives one (Alertmanager does), it is kept. Otherwise it is the Alertmanager
    algorithm, so the same label set gets the same id here and in Alertmanager: 64-bit FNV-1a
    over the label names in sorted order, each name and value followed by the byte ``0xff``,
    printed as 16 lowercase hex digits (``model.LabelSet.Fingerprint`` in prometheus/common).
    The label set includes ``alertname``; annotations, severity (unless it is a label) and
    times do not take part, so a re-sent or re-fired alert keeps its fingerprint.

>>> a = Alert(name="DiskFull", severity=Severity.WARNING, labels={"host": "db1"}, starts_at=60.0)
>>> a.labels["alertname"], a.status, len(a.fingerprint)
('DiskFull', 'firing', 16)
>>> a.fingerprint == label_fingerprint({"alertname": "DiskFull", "host": "db1"})
True
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from opsloop.detect.anomaly import Anomaly, to_epoch

__all__ = [
    "Alert",
    "Severity",
    "anomaly_severity",
    "from_anomaly",
    "label_fingerprint",
    "max_severity",
    "signal_kind",
]

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_MASK = (1 << 64) - 1
_SEP = 0xFF

_ALIASES = {
    "critical": "critical", "crit": "critical", "fatal": "critical", "page": "critical",
    "emergency": "critical", "emerg": "critical", "alert": "critical", "p1": "critical",
    "error": "error", "err": "error", "high": "error", "major": "error", "p2": "error",
    "warning": "warning", "warn": "warning", "medium": "warning", "minor": "warning",
    "p3": "warning",
    "info": "info", "information": "info", "informational": "info", "low": "info",
    "notice": "info", "none": "info", "debug": "info", "p4": "info", "p5": "info",
}  # fmt: skip


class Severity(StrEnum):
    """How bad an alert is; ordered by :attr:`rank` (critical > error > warning > info).

    >>> [Severity.parse(s).value for s in ("CRIT", "page", "P3", "err")]
    ['critical', 'critical', 'warning', 'error']
    >>> Severity.parse("whatever", default=Severity.INFO)
    <Severity.INFO: 'info'>
    >>> Severity.ERROR.rank > Severity.WARNING.rank
    True
    """

    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """3 for critical down to 0 for info."""
        return _RANK[self]

    @classmethod
    def parse(cls, text: str, default: Severity | None = None) -> Severity:
        """A severity from a name or a common alias (case-insensitive).

        Aliases: crit/fatal/page/emergency/alert/p1 = critical; err/high/major/p2 = error;
        warn/medium/minor/p3 = warning; information/low/notice/none/debug/p4/p5 = info.
        Unknown text gives ``default``, or raises ``ValueError`` when there is none.
        """
        found = _ALIASES.get(text.strip().lower())
        if found is not None:
            return cls(found)
        if default is None:
            raise ValueError(
                f"unknown severity {text!r}; use one of critical, error, warning, info"
            )
        return default


_RANK = {Severity.CRITICAL: 3, Severity.ERROR: 2, Severity.WARNING: 1, Severity.INFO: 0}


def max_severity(severities: Iterable[Severity], default: Severity = Severity.INFO) -> Severity:
    """The most severe of ``severities`` (``default`` when empty).

    >>> max_severity([Severity.INFO, Severity.ERROR, Severity.WARNING])
    <Severity.ERROR: 'error'>
    """
    return max(severities, key=lambda s: s.rank, default=default)


def label_fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's fingerprint of a label set: FNV-1a 64 over sorted ``name 0xff value 0xff``.

    >>> label_fingerprint({})
    'cbf29ce484222325'
    >>> label_fingerprint({"b": "2", "a": "1"}) == label_fingerprint({"a": "1", "b": "2"})
    True
    """
    h = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode():
                h = ((h ^ byte) * _FNV_PRIME) & _MASK
            h = ((h ^ _SEP) * _FNV_PRIME) & _MASK
    return f"{h:016x}"


@dataclass(frozen=True)
class Alert:
    """One normalised alert (immutable; use :meth:`with_changes` for an updated copy).

    ``labels`` always holds ``alertname`` equal to ``name``. ``starts_at``/``ends_at`` are epoch
    seconds; ``ends_at is None`` while firing. ``source`` is ``"alertmanager"``, ``"api"`` or
    ``"opsloop:<detector source>"``. An empty ``fingerprint`` is computed from the labels.

    >>> a = Alert(name="X", severity=Severity.INFO, starts_at=0.0)
    >>> b = a.with_changes(ends_at=30.0)
    >>> b.status, b.fingerprint == a.fingerprint
    ('resolved', True)
    """

    name: str
    severity: Severity
    starts_at: float
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    ends_at: float | None = None
    source: str = "api"
    generator_url: str = ""
    fingerprint: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("an alert needs a name")
        if not math.isfinite(self.starts_at):
            raise ValueError("starts_at must be finite")
        if self.ends_at is not None and not math.isfinite(self.ends_at):
            raise ValueError("ends_at must be finite or None")
        labels = {str(k): str(v) for k, v in self.labels.items()}
        labels.setdefault("alertname", self.name)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(
            self, "annotations", {str(k): str(v) for k, v in self.annotations.items()}
        )
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", label_fingerprint(labels))

    @property
    def status(self) -> Literal["firing", "resolved"]:
        """``"firing"`` while ``ends_at`` is ``None``, else ``"resolved"``."""
        return "firing" if self.ends_at is None else "resolved"

    @property
    def firing(self) -> bool:
        """True while the alert has no end."""
        return self.ends_at is None

    @property
    def match_labels(self) -> dict[str, str]:
        """The labels matchers see: the labels plus ``severity`` when it is not a label.

        >>> Alert(name="X", severity=Severity.ERROR, starts_at=0.0).match_labels["severity"]
        'error'
        """
        return {"severity": self.severity.value, **self.labels}

    @property
    def last_time(self) -> float:
        """The latest time the alert tells about: its end, or its start while firing."""
        return self.starts_at if self.ends_at is None else self.ends_at

    def with_changes(self, **changes: Any) -> Alert:
        """A copy with ``changes`` applied (fingerprint kept unless given)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (:meth:`from_dict` inverts it)."""
        return {
            "fingerprint": self.fingerprint,
            "name": self.name,
            "severity": self.severity.value,
            "status": self.status,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "source": self.source,
            "generator_url": self.generator_url,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Alert:
        """Inverse of :meth:`to_dict` (trusted input; see ``alertmanager.parse_generic``)."""
        return cls(
            name=d["name"],
            severity=Severity(d["severity"]),
            starts_at=float(d["starts_at"]),
            labels=dict(d.get("labels", {})),
            annotations=dict(d.get("annotations", {})),
            ends_at=None if d.get("ends_at") is None else float(d["ends_at"]),
            source=d.get("source", "api"),
            generator_url=d.get("generator_url", ""),
            fingerprint=d.get("fingerprint", ""),
        )


# -- from opsloop anomalies -------------------------------------------------------------------

_LABEL_DETAILS = ("host", "service", "job", "instance", "namespace", "pod", "container", "model")


def anomaly_severity(a: Anomaly) -> Severity:
    """The severity of an anomaly: ``details["severity"]`` when a detector sets it, else by kind.

    ========================  =====================================================
    kind                      severity
    ========================  =====================================================
    new_template              info (novelty alone rarely needs a human)
    rare_template             info
    burst                     warning; error when z (the score) >= 10
    silence                   warning (a regular log stream went quiet)
    session, session_order    warning
    metric_anomaly            warning; error when 1 - score <= 1e-5 (p-value)
    exhaustion_forecast       set by the forecast (info / warning / error by how
                              surely it lands within the horizon); records without
                              it: warning, error when score >= 0.75 (ETA in the
                              first quarter of the horizon)
    anything else             warning
    ========================  =====================================================

    >>> anomaly_severity(Anomaly("logs.frequency", "burst", 12.0, 0.0, "T1"))
    <Severity.ERROR: 'error'>
    >>> anomaly_severity(Anomaly("logs.novelty", "new_template", 1.0, 0.0, "T1"))
    <Severity.INFO: 'info'>
    >>> anomaly_severity(Anomaly("x", "y", 0.0, 0.0, "k", details={"severity": "critical"}))
    <Severity.CRITICAL: 'critical'>
    """
    given = a.details.get("severity")
    if isinstance(given, str):
        return Severity.parse(given, default=Severity.WARNING)
    kind, s = a.kind, float(a.score)
    if kind in ("new_template", "rare_template"):
        return Severity.INFO
    if kind == "burst":
        return Severity.ERROR if s >= 10.0 else Severity.WARNING
    if kind == "metric_anomaly":
        return Severity.ERROR if 1.0 - s <= 1e-5 else Severity.WARNING
    if kind == "exhaustion_forecast":
        return Severity.ERROR if s >= 0.75 else Severity.WARNING
    return Severity.WARNING


def from_anomaly(a: Anomaly) -> Alert:
    """The alert of an opsloop :class:`~opsloop.detect.anomaly.Anomaly`.

    * name (``alertname``): ``"<source>.<kind>"``, e.g. ``metrics.detector.metric_anomaly``;
    * labels: the series labels ``details["labels"]`` (metrics), then ``details[k]`` for
      ``host``, ``service``, ``job``, ``instance``, ``namespace``, ``pod``, ``container``,
      ``model`` when present; ``metric`` = ``details["name"]`` for metric series, else
      ``key`` = the anomaly key (template id, session key...). So repeats on the same series
      or template share a fingerprint (dedup) while different sessions do not;
    * annotations: ``summary`` (first evidence line), ``description`` (all lines), ``score``,
      ``kind``, ``detector`` and ``template`` when the detector gave one;
    * severity: :func:`anomaly_severity`; ``starts_at``: the anomaly time; firing.

    >>> m = Anomaly("metrics.detector", "metric_anomaly", 0.9995, 120.0, "cpu{...}",
    ...             ["cpu = 97 is unusual"], {"name": "cpu", "labels": {"host": "db1"}})
    >>> al = from_anomaly(m)
    >>> al.name, al.labels["host"], al.labels["metric"], al.source, al.severity.value
    ('metrics.detector.metric_anomaly', 'db1', 'cpu', 'opsloop:metrics.detector', 'warning')
    >>> al.annotations["summary"]
    'cpu = 97 is unusual'
    """
    d = a.details
    labels: dict[str, str] = {}
    series = d.get("labels")
    if isinstance(series, Mapping):
        labels.update({str(k): str(v) for k, v in series.items()})
    for k in _LABEL_DETAILS:
        v = d.get(k)
        if isinstance(v, str | int) and not isinstance(v, bool) and str(v):
            labels.setdefault(k, str(v))
    if isinstance(d.get("name"), str) and d["name"]:
        labels["metric"] = d["name"]
    else:
        labels["key"] = str(a.key)
    name = f"{a.source}.{a.kind}"
    labels["alertname"] = name
    annotations = {"kind": a.kind, "detector": a.source, "score": f"{float(a.score):.6g}"}
    if a.evidence:
        annotations["summary"] = a.evidence[0]
        annotations["description"] = "\n".join(a.evidence)
    if isinstance(d.get("template"), str):
        annotations["template"] = d["template"]
    return Alert(
        name=name,
        severity=anomaly_severity(a),
        starts_at=to_epoch(a.time),
        labels=labels,
        annotations=annotations,
        source=f"opsloop:{a.source}",
    )


_TEMPLATE_KINDS = frozenset({"burst", "silence", "new_template", "rare_template"})


def signal_kind(alert: Alert) -> str:
    """What kind of signal an alert is, for learning which kinds occur together.

    The alert name, refined for opsloop's own detectors by the metric name, or by the template
    id for per-template log kinds (a burst of template 17 and one of template 4 are different
    signals; session anomalies are not refined, each session key being new).

    >>> signal_kind(Alert(name="HighCPU", severity=Severity.INFO, starts_at=0.0))
    'HighCPU'
    >>> signal_kind(from_anomaly(Anomaly("logs.frequency", "burst", 5.0, 0.0, "17")))
    'logs.frequency.burst:17'
    """
    if alert.source.startswith("opsloop:"):
        if alert.labels.get("metric"):
            return f"{alert.name}:{alert.labels['metric']}"
        if alert.annotations.get("kind") in _TEMPLATE_KINDS and alert.labels.get("key"):
            return f"{alert.name}:{alert.labels['key']}"
    return alert.name
