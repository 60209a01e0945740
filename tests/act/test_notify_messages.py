"""Notification payloads: webhook schema v1, Slack escaping, e-mail safety, doctests."""

from __future__ import annotations

import doctest
import email
import json
from datetime import UTC, datetime, timedelta, timezone
from email import policy

import pytest

import opsloop.act.notify.message
import opsloop.act.notify.receivers
import opsloop.act.notify.routing
from opsloop.act.notify.message import (
    MAX_ALERTS,
    Notification,
    build_email,
    email_content,
    header_safe,
    slack_escape,
    slack_payload,
    webhook_payload,
)

WHEN = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)


def make(**kw) -> Notification:
    base = dict(
        incident_id="inc-42",
        title="API latency high",
        severity="critical",
        status="firing",
        labels={"service": "api", "env": "prod"},
        alerts=["p99 latency 2.3 s > 1 s"],
        url="https://opsloop.example/incidents/inc-42",
        group_key="service=api",
        created_at=WHEN,
    )
    base.update(kw)
    return Notification(**base)


@pytest.mark.parametrize(
    "module",
    [
        opsloop.act.notify.message,
        opsloop.act.notify.receivers,
        opsloop.act.notify.routing,
    ],
)
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_webhook_payload_is_the_documented_v1_schema():
    p = webhook_payload(make())
    assert p == {
        "version": "1",
        "kind": "opsloop.incident",
        "incident_id": "inc-42",
        "title": "API latency high",
        "severity": "critical",
        "status": "firing",
        "labels": {"env": "prod", "service": "api"},
        "alerts": ["p99 latency 2.3 s > 1 s"],
        "alerts_total": 1,
        "url": "https://opsloop.example/incidents/inc-42",
        "group_key": "service=api",
        "created_at": "2024-05-01T12:30:00Z",
    }
    assert list(p["labels"]) == ["env", "service"]  # sorted, stable
    assert json.loads(json.dumps(p)) == p


def test_webhook_payload_caps_alerts_and_reports_utc():
    tz = timezone(timedelta(hours=2))
    n = make(
        alerts=[f"a{i}" for i in range(25)], url=None, created_at=datetime(2024, 1, 1, tzinfo=tz)
    )
    p = webhook_payload(n)
    assert len(p["alerts"]) == MAX_ALERTS and p["alerts_total"] == 25
    assert p["url"] is None
    assert p["created_at"] == "2023-12-31T22:00:00Z"


def test_notification_is_a_snapshot():
    labels = {"service": "api"}
    alerts = ["one"]
    n = make(labels=labels, alerts=alerts)
    labels["service"] = "changed"
    alerts.append("two")
    assert n.labels["service"] == "api" and n.alerts == ("one",)
    with pytest.raises(TypeError):
        n.labels["x"] = "y"  # type: ignore[index]
    with pytest.raises(AttributeError):
        n.title = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"status": "open"}, "unknown status"),
        ({"severity": "fatal"}, "unknown severity"),
        ({"created_at": datetime(2024, 1, 1)}, "timezone-aware"),
        ({"url": "javascript:alert(1)"}, r"http\(s\) URL"),
        ({"incident_id": ""}, "incident_id"),
    ],
)
def test_notification_validation(kw, message):
    with pytest.raises(ValueError, match=message):
        make(**kw)


def _all_slack_text(payload: dict) -> list[str]:
    out = [payload["text"]]
    for block in payload["blocks"]:
        if "text" in block:
            out.append(block["text"]["text"])
        for el in block.get("elements", []):
            out.append(el["text"])
    return out


def test_slack_escapes_mentions_links_and_ampersands():
    evil = "<!channel> deploy & rollback <https://evil.example|click>"
    n = make(
        title=evil,
        url=None,
        alerts=["x < y && <@U123>"],
        labels={"svc": "<!here>", "a&b": "c>d"},
    )
    p = slack_payload(n)
    assert set(p) == {"text", "blocks"}
    for text in _all_slack_text(p):
        assert "<" not in text and ">" not in text, text
    joined = "\n".join(_all_slack_text(p))
    assert "&lt;!channel&gt; deploy &amp; rollback" in joined
    assert "x &lt; y &amp;&amp; &lt;@U123&gt;" in joined
    assert "a&amp;b=c&gt;d" in joined and "svc=&lt;!here&gt;" in joined
    assert "&amp;lt;" not in joined  # escaped once, not twice


def test_slack_links_only_the_dashboard_url():
    n = make(title="a|b <x>", url="https://opsloop.example/i?a=1&b=|2>")
    p = slack_payload(n)
    section = p["blocks"][0]["text"]["text"]
    assert section.count("<") == 1 and section.count(">") == 1
    link = section[section.index("<") : section.index(">") + 1]
    assert link == "<https://opsloop.example/i?a=1&amp;b=%7C2&gt;|a¦b &lt;x&gt;>"
    assert p["text"].startswith("[FIRING] [critical] a|b &lt;x&gt;")


def test_slack_respects_block_limits_and_says_what_was_left_out():
    n = make(
        title="t" * 500,
        alerts=["y" * 2000] * 30,
        labels={f"k{i:02}": "v" * 100 for i in range(60)},
    )
    p = slack_payload(n)
    texts = _all_slack_text(p)
    assert all(len(t) <= 3000 for t in texts)
    alerts, labels = texts[2], texts[3]
    assert alerts.endswith("more") and "… and " in alerts
    shown = alerts.count("• ")
    assert alerts.endswith(f"… and {30 - shown} more") and 1 <= shown < MAX_ALERTS
    assert labels.startswith("k00=") and labels.endswith("more")


@pytest.mark.parametrize("bad", ["\r\n", "\n", "\r", "\x00", "\u2028", "\x85", "\t"])
def test_header_safe_strips_every_line_break(bad):
    out = header_safe(f"title{bad}Bcc: evil@example.com")
    assert out == "title Bcc: evil@example.com"


def test_email_content_escapes_html_and_keeps_text():
    n = make(title="<script>alert(1)</script>", alerts=["a & b"], labels={"k": "<v>"})
    c = email_content(n)
    assert "<script>" not in c.html and "&lt;script&gt;" in c.html
    assert "a &amp; b" in c.html and "k=&lt;v&gt;" in c.html
    assert '<a href="https://opsloop.example/incidents/inc-42">' in c.html
    assert "<script>alert(1)</script>" in c.text
    assert "Link:     https://opsloop.example/incidents/inc-42" in c.text
    assert c.subject == "[opsloop] [FIRING] [critical] <script>alert(1)</script>"


def test_build_email_never_lets_cr_lf_into_headers():
    n = make(
        incident_id="inc\r\nBcc: a@evil.example",
        title="Disk full\r\nBcc: b@evil.example\r\n\r\nbody injection",
        labels={"host": "db1\r\nBcc: c@evil.example"},
        group_key="host=db1\nBcc: d@evil.example",
    )
    msg = build_email(n, "opsloop@example.com", ["ops@example.com", "oncall@example.com"])
    raw = msg.as_bytes()
    head = raw.split(b"\n\n", 1)[0]
    assert not any(line.lower().startswith(b"bcc:") for line in head.splitlines())
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert parsed["Bcc"] is None
    for key, value in parsed.items():
        assert "\r" not in value and "\n" not in value, key
    assert parsed["Subject"].strip() == (  # long headers are folded, then unfolded
        "[opsloop] [FIRING] [critical] Disk full Bcc: b@evil.example body injection"
    )
    assert parsed["To"] == "ops@example.com, oncall@example.com"
    assert parsed.get_content_type() == "multipart/alternative"
    types = [part.get_content_type() for part in parsed.iter_parts()]
    assert types == ["text/plain", "text/html"]


def test_slack_escape_order():
    assert slack_escape("&lt;") == "&amp;lt;"
