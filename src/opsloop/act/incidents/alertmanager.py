"""Parse incoming alert payloads into :class:`~opsloop.act.incidents.alert.Alert` s.

Two shapes are accepted (already JSON-decoded):

* the **Alertmanager webhook**, version 4 - :func:`parse_alertmanager`;
* the **generic JSON alert** of opsloop's API - :func:`parse_generic`: ``name``, ``severity``,
  ``labels``, ``annotations``, ``starts_at``, ``ends_at``, optional ``status``,
  ``fingerprint``, ``generator_url``, ``summary``, ``description``. Times are RFC 3339 strings
  or epoch seconds.

:func:`parse_payload` takes either (or a list / ``{"alerts": [...]}`` of generic alerts).
Malformed input raises :class:`PayloadError` naming the offending field, e.g.
``alerts[1].labels.alertname: missing``.

Alertmanager time rules: ``endsAt`` equal to Go's zero time ``0001-01-01T00:00:00Z`` (or
absent) means firing; for an alert whose ``status`` is ``firing`` a future ``endsAt`` is only
Alertmanager's resolve timeout, so it is dropped (``ends_at = None``). A ``resolved`` alert
without an end takes ``now`` when the caller passes it, else its start.

>>> batch = parse_alertmanager({
...     "version": "4", "groupKey": "{}:{alertname=\\"Down\\"}", "status": "firing",
...     "receiver": "opsloop", "groupLabels": {"alertname": "Down"}, "commonLabels": {},
...     "commonAnnotations": {}, "externalURL": "http://am:9093",
...     "alerts": [{"status": "firing", "labels": {"alertname": "Down", "severity": "page"},
...                 "annotations": {}, "startsAt": "2024-05-01T10:00:00Z",
...                 "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "ab12"}]})
>>> a = batch.alerts[0]
>>> a.name, a.severity.value, a.status, a.fingerprint, a.source
('Down', 'critical', 'firing', 'ab12', 'alertmanager')
>>> try:
...     parse_generic({"name": "x", "severity": "loud", "starts_at": 0})
... except PayloadError as e:
...     print(e.path, "|", e.message)
severity | unknown severity 'loud'; use one of critical, error, warning, info
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opsloop.act.incidents.alert import Alert, Severity

__all__ = [
    "MAX_ALERTS",
    "AlertmanagerBatch",
    "PayloadError",
    "parse_alertmanager",
    "parse_generic",
    "parse_payload",
    "parse_time",
]

MAX_ALERTS = 10_000
"""Most alerts one payload may carry."""

_ZERO_TIME_YEAR = 1
_FRACTION = re.compile(r"(\.\d{6})\d+")
_MAX_LABELS = 256


class PayloadError(ValueError):
    """Malformed payload; ``path`` names the field (``alerts[2].labels``), ``""`` for the root."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


@dataclass(frozen=True)
class AlertmanagerBatch:
    """One Alertmanager webhook notification: its group metadata and the parsed alerts."""

    receiver: str
    status: str
    group_key: str
    group_labels: dict[str, str] = field(default_factory=dict)
    common_labels: dict[str, str] = field(default_factory=dict)
    common_annotations: dict[str, str] = field(default_factory=dict)
    external_url: str = ""
    truncated_alerts: int = 0
    alerts: list[Alert] = field(default_factory=list)


# -- small typed readers ----------------------------------------------------------------------


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _obj(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PayloadError(path, f"expected an object, got {_type(value)}")
    return value


def _type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def _str(d: Mapping[str, Any], key: str, path: str, *, required: bool, default: str = "") -> str:
    if key not in d or d[key] is None:
        if required:
            raise PayloadError(_join(path, key), "missing")
        return default
    v = d[key]
    if not isinstance(v, str):
        raise PayloadError(_join(path, key), f"expected a string, got {_type(v)}")
    return v


def _labels(d: Mapping[str, Any], key: str, path: str, *, lenient: bool) -> dict[str, str]:
    p = _join(path, key)
    if key not in d or d[key] is None:
        return {}
    raw = _obj(d[key], p)
    if len(raw) > _MAX_LABELS:
        raise PayloadError(p, f"more than {_MAX_LABELS} entries")
    out: dict[str, str] = {}
    for k, v in raw.items():
        if not isinstance(k, str) or not k:
            raise PayloadError(p, f"bad name {k!r}")
        if isinstance(v, str):
            out[k] = v
        elif lenient and isinstance(v, int | float) and not isinstance(v, bool):
            out[k] = f"{v:g}" if isinstance(v, float) else str(v)
        else:
            raise PayloadError(_join(p, k), f"expected a string, got {_type(v)}")
    return out


def parse_time(value: Any, path: str = "") -> float | None:
    """Epoch seconds from an RFC 3339 string or a number; ``None`` for Go's zero time / null.

    Fractions beyond microseconds (Go writes nanoseconds) are truncated; a time without an
    offset is UTC.

    >>> parse_time("2024-05-01T10:00:00.123456789Z")
    1714557600.123456
    >>> parse_time("0001-01-01T00:00:00Z") is None, parse_time(None) is None, parse_time(5)
    (True, True, 5.0)
    >>> parse_time("yesterday", "alerts[0].startsAt")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    opsloop.act.incidents.alertmanager.PayloadError: alerts[0].startsAt: not an RFC 3339 time: ...
    """
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise PayloadError(path, "time must be finite")
        return float(value)
    if not isinstance(value, str):
        raise PayloadError(path, f"expected a time string or epoch seconds, got {_type(value)}")
    text = value.strip()
    if not text:
        return None
    try:
        t = datetime.fromisoformat(_FRACTION.sub(r"\1", text))
    except ValueError:
        raise PayloadError(path, f"not an RFC 3339 time: {value!r}") from None
    if t.year == _ZERO_TIME_YEAR:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.timestamp()


def _status(d: Mapping[str, Any], path: str, default: str | None) -> str:
    s = _str(d, "status", path, required=default is None, default=default or "")
    if s not in ("firing", "resolved"):
        raise PayloadError(_join(path, "status"), f"expected 'firing' or 'resolved', got {s!r}")
    return s


def _end(
    status: str, start: float, end: float | None, path: str, now: float | None
) -> float | None:
    if status == "firing":
        return None
    if end is None:
        end = start if now is None else max(now, start)
    if end < start:
        raise PayloadError(path, "ends before it starts")
    return end


# -- Alertmanager -----------------------------------------------------------------------------


def parse_alertmanager(payload: Any, *, now: float | None = None) -> AlertmanagerBatch:
    """An Alertmanager webhook (version 4) as a batch of alerts.

    Each alert's ``status`` is its own (falling back to the notification's); ``alertname``
    and ``startsAt`` are required; severity comes from the ``severity`` label through
    :meth:`Severity.parse`, unknown or absent meaning warning.
    """
    d = _obj(payload, "")
    version = d.get("version")
    if version is None:
        raise PayloadError("version", "missing")
    if str(version) != "4":
        raise PayloadError("version", f"unsupported Alertmanager webhook version {version!r}")
    status = _status(d, "", None)
    raw_alerts = d.get("alerts")
    if not isinstance(raw_alerts, list):
        raise PayloadError("alerts", f"expected a list, got {_type(raw_alerts)}")
    if len(raw_alerts) > MAX_ALERTS:
        raise PayloadError("alerts", f"more than {MAX_ALERTS} alerts")
    truncated = d.get("truncatedAlerts", 0)
    if not isinstance(truncated, int) or isinstance(truncated, bool) or truncated < 0:
        raise PayloadError("truncatedAlerts", "expected a non-negative integer")
    alerts = [_am_alert(a, f"alerts[{i}]", status, now) for i, a in enumerate(raw_alerts)]
    return AlertmanagerBatch(
        receiver=_str(d, "receiver", "", required=False),
        status=status,
        group_key=_str(d, "groupKey", "", required=False),
        group_labels=_labels(d, "groupLabels", "", lenient=False),
        common_labels=_labels(d, "commonLabels", "", lenient=False),
        common_annotations=_labels(d, "commonAnnotations", "", lenient=False),
        external_url=_str(d, "externalURL", "", required=False),
        truncated_alerts=truncated,
        alerts=alerts,
    )


def _am_alert(raw: Any, path: str, group_status: str, now: float | None) -> Alert:
    d = _obj(raw, path)
    status = _status(d, path, group_status)
    labels = _labels(d, "labels", path, lenient=False)
    name = labels.get("alertname", "")
    if not name:
        raise PayloadError(_join(path, "labels.alertname"), "missing")
    start = parse_time(d.get("startsAt"), _join(path, "startsAt"))
    if start is None:
        raise PayloadError(_join(path, "startsAt"), "missing")
    end = parse_time(d.get("endsAt"), _join(path, "endsAt"))
    return Alert(
        name=name,
        severity=Severity.parse(labels.get("severity", ""), default=Severity.WARNING),
        starts_at=start,
        labels=labels,
        annotations=_labels(d, "annotations", path, lenient=False),
        ends_at=_end(status, start, end, _join(path, "endsAt"), now),
        source="alertmanager",
        generator_url=_str(d, "generatorURL", path, required=False),
        fingerprint=_str(d, "fingerprint", path, required=False),
    )


# -- generic JSON -----------------------------------------------------------------------------


def parse_generic(payload: Any, *, now: float | None = None, path: str = "") -> Alert:
    """One generic JSON alert.

    ``name`` is required; ``severity`` defaults to warning and must be a known name or alias;
    label and annotation values may be strings or numbers; ``starts_at`` defaults to ``now``
    (required when ``now`` is not given); ``status`` defaults to resolved when ``ends_at`` is
    given, else firing. ``summary``/``description`` become annotations of that name.

    >>> a = parse_generic({"name": "Backup late", "labels": {"host": "nas", "try": 3},
    ...                    "starts_at": "2024-05-01T10:00:00+02:00", "ends_at": 1714550500})
    >>> a.status, a.labels["try"], a.starts_at, a.source
    ('resolved', '3', 1714550400.0, 'api')
    >>> parse_generic({"name": "x", "labels": {"a": ["b"]}, "starts_at": 0},
    ...               path="alerts[3]")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    opsloop.act.incidents.alertmanager.PayloadError: alerts[3].labels.a: expected a string, got...
    """
    d = _obj(payload, path)
    name = _str(d, "name", path, required=True).strip()
    if not name:
        raise PayloadError(_join(path, "name"), "must not be empty")
    sev_text = _str(d, "severity", path, required=False, default="warning")
    try:
        severity = Severity.parse(sev_text)
    except ValueError as e:
        raise PayloadError(_join(path, "severity"), str(e)) from None
    labels = _labels(d, "labels", path, lenient=True)
    if labels.get("alertname", name) != name:
        raise PayloadError(_join(path, "labels.alertname"), "differs from name")
    annotations = _labels(d, "annotations", path, lenient=True)
    for key in ("summary", "description"):
        text = _str(d, key, path, required=False)
        if text:
            annotations[key] = text
    start = parse_time(d.get("starts_at"), _join(path, "starts_at"))
    if start is None:
        if now is None:
            raise PayloadError(_join(path, "starts_at"), "missing")
        start = float(now)
    end = parse_time(d.get("ends_at"), _join(path, "ends_at"))
    status = _status(d, path, "resolved" if end is not None else "firing")
    return Alert(
        name=name,
        severity=severity,
        starts_at=start,
        labels=labels,
        annotations=annotations,
        ends_at=_end(status, start, end, _join(path, "ends_at"), now),
        source="api",
        generator_url=_str(d, "generator_url", path, required=False),
        fingerprint=_str(d, "fingerprint", path, required=False),
    )


def parse_payload(payload: Any, *, now: float | None = None) -> list[Alert]:
    """Alerts from any accepted shape: Alertmanager webhook (has ``version``), a list of
    generic alerts, ``{"alerts": [generic...]}``, or one generic alert.

    >>> [a.name for a in parse_payload([{"name": "a", "starts_at": 0}, {"name": "b"}], now=9)]
    ['a', 'b']
    >>> parse_payload({"alerts": [{"name": "a"}, 7]}, now=0)
    Traceback (most recent call last):
    ...
    opsloop.act.incidents.alertmanager.PayloadError: alerts[1]: expected an object, got a number
    """
    if isinstance(payload, Mapping) and "version" in payload:
        return parse_alertmanager(payload, now=now).alerts
    if isinstance(payload, Mapping) and "alerts" in payload:
        items, base = payload["alerts"], "alerts"
        if not isinstance(items, list):
            raise PayloadError("alerts", f"expected a list, got {_type(items)}")
    elif isinstance(payload, list):
        items, base = payload, ""
    else:
        return [parse_generic(payload, now=now)]
    if len(items) > MAX_ALERTS:
        raise PayloadError(base, f"more than {MAX_ALERTS} alerts")
    return [parse_generic(x, now=now, path=f"{base}[{i}]") for i, x in enumerate(items)]
