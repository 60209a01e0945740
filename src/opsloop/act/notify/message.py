"""What a receiver is told about an incident, and the payloads built from it.

A :class:`Notification` is an immutable snapshot of an incident at one moment (firing,
acknowledged or resolved). Three payload builders turn it into what receivers send:

* :func:`webhook_payload` — the generic webhook JSON, a stable versioned schema (below);
* :func:`slack_payload` — ``{"text": ..., "blocks": [...]}`` for Slack-compatible incoming
  webhooks (Slack, Mattermost, Rocket.Chat), with ``&``, ``<`` and ``>`` escaped as Slack asks
  so no label or title can inject mentions (``<!channel>``) or links;
* :func:`email_content` / :func:`build_email` — subject, plain text and simple HTML. Header
  values are made single-line: no CR, LF or other control character from a title, label or
  address ever reaches a header.

Generic webhook schema, ``"version": "1"`` (fields are only ever added within a version)::

    {
      "version": "1",
      "kind": "opsloop.incident",
      "incident_id": "inc-42",
      "title": "API latency high",
      "severity": "info" | "warning" | "critical",
      "status": "firing" | "acknowledged" | "resolved",
      "labels": {"service": "api", ...},        # sorted by name
      "alerts": ["p99 latency 2.3 s > 1 s", ...], # at most MAX_ALERTS summaries
      "alerts_total": 3,                         # how many the incident has in all
      "url": "https://opsloop.example/incidents/inc-42" | null,
      "group_key": "service=api",
      "created_at": "2024-05-01T12:00:00Z"       # UTC, ISO 8601
    }
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from types import MappingProxyType

__all__ = [
    "MAX_ALERTS",
    "SCHEMA_VERSION",
    "SEVERITIES",
    "STATUSES",
    "EmailContent",
    "Notification",
    "build_email",
    "email_content",
    "header_safe",
    "severity_rank",
    "slack_escape",
    "slack_payload",
    "webhook_payload",
]

SCHEMA_VERSION = "1"
SEVERITIES = ("info", "warning", "error", "critical")
"""Known severities, lowest first (routing compares by this order)."""
STATUSES = ("firing", "acknowledged", "resolved")
MAX_ALERTS = 10
"""Payloads carry at most this many alert summaries (the total is reported too)."""
MAX_SUMMARY_CHARS = 500
MAX_SUBJECT_CHARS = 200
_SLACK_SECTION_CHARS = 2900  # Slack refuses section text over 3000 characters
_SLACK_HEADER_CHARS = 150
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")


def severity_rank(severity: str) -> int:
    """Position of ``severity`` in :data:`SEVERITIES` (``ValueError`` when unknown).

    >>> severity_rank("info") < severity_rank("warning") < severity_rank("critical")
    True
    """
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        raise ValueError(
            f"unknown severity {severity!r} (use one of {', '.join(SEVERITIES)})"
        ) from None


def header_safe(value: str, limit: int = MAX_SUBJECT_CHARS) -> str:
    """One line fit for a mail header: control characters (CR, LF…) become a space.

    >>> header_safe("down\\r\\nBcc: evil@example.com")
    'down Bcc: evil@example.com'
    >>> header_safe("x" * 10, limit=5)
    'xxxx…'
    """
    text = _CONTROL.sub(" ", value).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Notification:
    """An incident as a receiver sees it at one moment.

    ``labels`` is copied into a read-only mapping and ``alerts`` into a tuple, so a
    notification cannot change while it waits in a queue. ``created_at`` must be
    timezone-aware (it is reported in UTC).

    >>> n = Notification("inc-1", "Disk full", "critical", "firing", {"host": "db1"},
    ...                  ["/ at 99%"], created_at=datetime(2024, 5, 1, 12, tzinfo=UTC))
    >>> n.labels["host"], n.alerts, n.group_key
    ('db1', ('/ at 99%',), '')
    """

    incident_id: str
    title: str
    severity: str
    status: str
    labels: Mapping[str, str] = field(default_factory=dict)
    alerts: Sequence[str] = ()
    url: str | None = None
    group_key: str = ""
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if not self.incident_id:
            raise ValueError("incident_id must not be empty")
        severity_rank(self.severity)
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r} (use one of {', '.join(STATUSES)})")
        if self.created_at.tzinfo is None:
            raise ValueError("created_at must be timezone-aware")
        if self.url is not None and not re.match(r"(?i)https?://", self.url):
            raise ValueError("url must be an http(s) URL")
        labels = {str(k): str(v) for k, v in self.labels.items()}
        object.__setattr__(self, "labels", MappingProxyType(dict(sorted(labels.items()))))
        object.__setattr__(self, "alerts", tuple(str(a) for a in self.alerts))

    @property
    def created_iso(self) -> str:
        """``created_at`` in UTC, ISO 8601 with a ``Z``."""
        return self.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")

    def shown_alerts(self) -> list[str]:
        """The first :data:`MAX_ALERTS` summaries, each clipped to a sane length."""
        return [_clip(a, MAX_SUMMARY_CHARS) for a in self.alerts[:MAX_ALERTS]]


def webhook_payload(n: Notification) -> dict[str, object]:
    """The generic webhook JSON body (schema in the module docstring).

    >>> n = Notification("inc-1", "Disk full", "critical", "firing", {"host": "db1"},
    ...                  created_at=datetime(2024, 5, 1, 12, tzinfo=UTC))
    >>> p = webhook_payload(n)
    >>> p["version"], p["status"], p["labels"], p["created_at"]
    ('1', 'firing', {'host': 'db1'}, '2024-05-01T12:00:00Z')
    """
    return {
        "version": SCHEMA_VERSION,
        "kind": "opsloop.incident",
        "incident_id": n.incident_id,
        "title": n.title,
        "severity": n.severity,
        "status": n.status,
        "labels": dict(n.labels),
        "alerts": n.shown_alerts(),
        "alerts_total": len(n.alerts),
        "url": n.url,
        "group_key": n.group_key,
        "created_at": n.created_iso,
    }


def slack_escape(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` as Slack's message formatting requires.

    >>> slack_escape("<!channel> a&b > c")
    '&lt;!channel&gt; a&amp;b &gt; c'
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_link(url: str, label: str) -> str:
    """``<url|label>`` with the URL unable to end the link early."""
    safe_url = slack_escape(url).replace("|", "%7C")
    return f"<{safe_url}|{slack_escape(label).replace('|', '¦')}>"


_STATUS_MARK = {"firing": "🔥", "acknowledged": "👀", "resolved": "✅"}


def slack_payload(n: Notification) -> dict[str, object]:
    """A Slack-compatible incoming-webhook body: fallback ``text`` plus Block Kit ``blocks``.

    >>> n = Notification("inc-1", "<!channel> & co", "warning", "firing", {"svc": "a<b"},
    ...                  created_at=datetime(2024, 5, 1, 12, tzinfo=UTC))
    >>> slack_payload(n)["text"]
    '[FIRING] [warning] &lt;!channel&gt; &amp; co'
    """
    title = _clip(" ".join(n.title.split()) or n.incident_id, _SLACK_HEADER_CHARS)
    text = f"[{n.status.upper()}] [{n.severity}] {slack_escape(title)}"
    headline = _slack_link(n.url, title) if n.url else slack_escape(title)
    lines = [
        f"{_STATUS_MARK[n.status]} *{headline}*",
        f"*Status:* {n.status}   *Severity:* {n.severity}   "
        f"*Incident:* `{slack_escape(n.incident_id)}`",
    ]
    blocks: list[dict[str, object]] = [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _clip("\n".join(lines), _SLACK_SECTION_CHARS)},
        }
    ]
    if n.alerts:
        lines = [f"• {slack_escape(' '.join(a.split()))}" for a in n.shown_alerts()]
        body = _fit(lines, "\n", len(n.alerts))
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": body}})
    if n.labels:
        pairs = [
            slack_escape(_clip(" ".join(f"{k}={v}".split()), MAX_SUMMARY_CHARS))
            for k, v in n.labels.items()
        ]
        labels = _fit(pairs, ", ", len(pairs))
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": labels}]})
    return {"text": text, "blocks": blocks}


def _fit(items: list[str], sep: str, total: int) -> str:
    """Join as many whole ``items`` as fit one Slack text, then say how many were left out.

    >>> _fit(["a" * 2000, "b" * 2000, "c"], ", ", 3)[-15:]
    'a, … and 2 more'
    """
    budget = _SLACK_SECTION_CHARS - 40  # room for the "and N more" line
    shown: list[str] = []
    used = 0
    for item in items:
        cost = len(item) + (len(sep) if shown else 0)
        if used + cost > budget:
            break
        shown.append(item)
        used += cost
    if total > len(shown):
        shown.append(f"… and {total - len(shown)} more")
    return sep.join(shown)


@dataclass(frozen=True)
class EmailContent:
    """The parts of a notification e-mail: a single-line subject, text and HTML bodies."""

    subject: str
    text: str
    html: str


def email_content(n: Notification) -> EmailContent:
    """Subject (header-safe), plain text and HTML (escaped) for ``n``.

    >>> n = Notification("inc-1", "Disk\\r\\nBcc: x@y", "critical", "firing",
    ...                  created_at=datetime(2024, 5, 1, 12, tzinfo=UTC))
    >>> email_content(n).subject
    '[opsloop] [FIRING] [critical] Disk Bcc: x@y'
    """
    subject = header_safe(f"[opsloop] [{n.status.upper()}] [{n.severity}] {n.title}")
    alerts = n.shown_alerts()
    more = len(n.alerts) - len(alerts)
    text_lines = [
        n.title,
        "",
        f"Status:   {n.status}",
        f"Severity: {n.severity}",
        f"Incident: {n.incident_id}",
        f"Created:  {n.created_iso}",
    ]
    if n.url:
        text_lines.append(f"Link:     {n.url}")
    if alerts:
        text_lines += ["", "Alerts:"] + [f"  - {a}" for a in alerts]
        if more:
            text_lines.append(f"  … and {more} more")
    if n.labels:
        text_lines += ["", "Labels:"] + [f"  {k}={v}" for k, v in n.labels.items()]
    esc = html.escape
    title_html = esc(n.title)
    if n.url:
        title_html = f'<a href="{esc(n.url, quote=True)}">{title_html}</a>'
    parts = [
        "<!doctype html><html><body>",
        f"<h2>{title_html}</h2>",
        "<table>",
        f"<tr><th align=left>Status</th><td>{esc(n.status)}</td></tr>",
        f"<tr><th align=left>Severity</th><td>{esc(n.severity)}</td></tr>",
        f"<tr><th align=left>Incident</th><td>{esc(n.incident_id)}</td></tr>",
        f"<tr><th align=left>Created</th><td>{esc(n.created_iso)}</td></tr>",
        "</table>",
    ]
    if alerts:
        items = "".join(f"<li>{esc(a)}</li>" for a in alerts)
        if more:
            items += f"<li>… and {more} more</li>"
        parts.append(f"<h3>Alerts</h3><ul>{items}</ul>")
    if n.labels:
        rows = "".join(f"<li><code>{esc(k)}={esc(v)}</code></li>" for k, v in n.labels.items())
        parts.append(f"<h3>Labels</h3><ul>{rows}</ul>")
    parts.append("</body></html>")
    return EmailContent(subject, "\n".join(text_lines) + "\n", "\n".join(parts) + "\n")


def build_email(n: Notification, from_addr: str, to_addrs: Sequence[str]) -> EmailMessage:
    """A ready-to-send multipart/alternative message; every header value is single-line.

    >>> n = Notification("inc-1", "Disk full", "critical", "firing", {"h": "a\\nBcc: x@y"},
    ...                  group_key="h=a\\r\\nBcc: x@y",
    ...                  created_at=datetime(2024, 5, 1, 12, tzinfo=UTC))
    >>> msg = build_email(n, "opsloop@example.com", ["ops@example.com"])
    >>> msg["Bcc"] is None and "\\n" not in msg["X-Opsloop-Group-Key"]
    True
    """
    content = email_content(n)
    msg = EmailMessage()
    msg["Subject"] = content.subject
    msg["From"] = header_safe(from_addr, 998)
    msg["To"] = ", ".join(header_safe(a, 998) for a in to_addrs)
    msg["Date"] = format_datetime(n.created_at.astimezone(UTC))
    domain = from_addr.rpartition("@")[2].strip(" >") or "opsloop.local"
    msg["Message-ID"] = make_msgid("opsloop", domain=header_safe(domain, 200))
    msg["X-Opsloop-Incident"] = header_safe(n.incident_id)
    msg["X-Opsloop-Status"] = n.status
    if n.group_key:
        msg["X-Opsloop-Group-Key"] = header_safe(n.group_key, 500)
    msg.set_content(content.text)
    msg.add_alternative(content.html, subtype="html")
    return msg
