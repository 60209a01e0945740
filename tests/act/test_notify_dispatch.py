"""Receivers and the dispatcher over loopback: a recording HTTP server and a tiny SMTP sink."""

from __future__ import annotations

import asyncio
import email
import json
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from opsloop.act.notify import (
    DeliveryAttempt,
    Dispatcher,
    EmailReceiver,
    Notification,
    ReceiverConfigError,
    SlackReceiver,
    WebhookReceiver,
    receivers_from_config,
    webhook_payload,
)

SECRET = "tok-9f8e7d6c5b4a"


def note(incident_id: str = "inc-1", status: str = "firing", **kw) -> Notification:
    return Notification(
        incident_id=incident_id,
        title=kw.pop("title", "API latency high"),
        severity=kw.pop("severity", "critical"),
        status=status,
        labels=kw.pop("labels", {"service": "api"}),
        alerts=kw.pop("alerts", ["p99 2.3 s"]),
        url="https://opsloop.example/incidents/" + incident_id,
        created_at=datetime(2024, 5, 1, 12, tzinfo=UTC),
        **kw,
    )


def run(coro, timeout: float = 5.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(predicate, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


# -- a recording HTTP server ----------------------------------------------------------------------


class HttpState:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()
        self.release = threading.Event()

    def paths(self) -> list[str]:
        with self.lock:
            return [p for p, _, _ in self.requests]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # quiet
        pass

    def reply(self, status: int, body: bytes = b"ok", headers: dict | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        state: HttpState = self.server.state  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        path = self.path.split("?")[0]
        with state.lock:
            state.requests.append((self.path, dict(self.headers), body))
            state.hits[path] = hit = state.hits.get(path, 0) + 1
        if path == "/ok":
            self.reply(200)
        elif path.startswith("/flaky/"):  # /flaky/N: 503 for the first N requests
            self.reply(503 if hit <= int(path.rsplit("/", 1)[1]) else 204, b"busy")
        elif path == "/bad":
            self.reply(400, b"invalid_payload")
        elif path == "/limited":
            self.reply(429 if hit == 1 else 200, headers={"Retry-After": "0"})
        elif path == "/moved":
            self.reply(302, headers={"Location": "http://127.0.0.1:1/elsewhere"})
        elif path == "/hang":
            state.release.wait(5)
            self.reply(200)
        else:
            self.reply(404)


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # clients that gave up: not our problem
        pass


@pytest.fixture
def http() -> Iterator[tuple[str, HttpState]]:
    server = QuietServer(("127.0.0.1", 0), Handler)
    server.state = HttpState()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server.state  # type: ignore[attr-defined]
    server.state.release.set()  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fast(receivers, record=None, **kw) -> Dispatcher:
    kw.setdefault("base_backoff_s", 0.01)
    kw.setdefault("max_backoff_s", 0.05)
    return Dispatcher(receivers, record=record, **kw)


def outcomes(attempts: list[DeliveryAttempt], receiver: str | None = None) -> list[tuple]:
    return [
        (a.attempt, a.outcome, a.status)
        for a in attempts
        if receiver is None or a.receiver == receiver
    ]


# -- HTTP receivers -------------------------------------------------------------------------------


def test_webhook_retries_5xx_then_delivers_and_records_every_attempt(http):
    base, state = http
    hook = WebhookReceiver(
        "hook", f"{base}/flaky/2?key={SECRET}", headers={"Authorization": f"Bearer {SECRET}"}
    )
    seen: list[DeliveryAttempt] = []

    async def go():
        d = fast({"hook": hook}, record=seen.append)
        await d.start()
        assert d.submit("hook", note("inc-1", "firing"))
        assert d.submit("hook", note("inc-1", "resolved"))
        await until(lambda: sum(a.ok for a in seen) == 2)
        await d.stop(1)

    run(go())
    assert outcomes(seen) == [
        (1, "retry", 503),
        (2, "retry", 503),
        (3, "delivered", 204),
        (1, "delivered", 204),
    ]
    assert seen[0].error == "HTTP 503: busy" and seen[0].receiver == "hook"
    assert all(a.incident_id == "inc-1" and a.duration_s >= 0 for a in seen)
    assert seen[0].at <= seen[1].at <= seen[2].at
    bodies = [json.loads(b) for _, _, b in state.requests]
    assert [b["status"] for b in bodies] == ["firing"] * 3 + ["resolved"]  # order kept
    assert bodies[0] == webhook_payload(note("inc-1", "firing"))
    headers = state.requests[0][1]
    assert headers["Authorization"] == f"Bearer {SECRET}"
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert headers["User-Agent"] == "opsloop-notify"


def test_400_is_not_retried(http):
    base, state = http
    seen: list[DeliveryAttempt] = []

    async def go():
        d = fast({"hook": WebhookReceiver("hook", f"{base}/bad")}, record=seen.append)
        await d.start()
        d.submit("hook", note())
        await until(lambda: seen)
        await asyncio.sleep(0.1)  # a retry would come within the (tiny) backoff
        await d.stop(1)

    run(go())
    assert outcomes(seen) == [(1, "failed", 400)]
    assert seen[0].error == "HTTP 400: invalid_payload"
    assert state.paths() == ["/bad"]


def test_429_is_retried_and_redirects_are_not_followed(http):
    base, state = http
    seen: list[DeliveryAttempt] = []
    receivers = {
        "limited": WebhookReceiver("limited", f"{base}/limited"),
        "moved": WebhookReceiver("moved", f"{base}/moved"),
    }

    async def go():
        d = fast(receivers, record=seen.append)
        await d.start()
        d.submit("limited", note())
        d.submit("moved", note())
        await until(lambda: len(seen) == 3)
        await d.stop(1)

    run(go())
    assert outcomes(seen, "limited") == [(1, "retry", 429), (2, "delivered", 200)]
    assert outcomes(seen, "moved") == [(1, "failed", 302)]
    assert "redirects are not followed" in next(a.error for a in seen if a.receiver == "moved")
    assert sorted(state.paths()) == ["/limited", "/limited", "/moved"]


def test_a_hanging_receiver_times_out_without_delaying_the_others(http):
    base, state = http
    seen: list[DeliveryAttempt] = []
    receivers = {
        "slow": WebhookReceiver("slow", f"{base}/hang", timeout_s=0.4),
        "quick": WebhookReceiver("quick", f"{base}/ok"),
    }

    async def go():
        d = fast(receivers, record=seen.append, max_attempts=2)
        await d.start()
        for i in range(3):
            d.submit("slow", note(f"inc-{i}"))
        await until(lambda: "/hang" in state.paths())
        started = time.monotonic()
        for i in range(3):
            d.submit("quick", note(f"inc-{i}"))
        await until(lambda: len([a for a in seen if a.receiver == "quick"]) == 3)
        quick_s = time.monotonic() - started
        assert quick_s < 0.3, quick_s  # the hung request is still open meanwhile
        assert not [a for a in seen if a.receiver == "slow"]
        await until(lambda: len([a for a in seen if a.receiver == "slow"]) >= 2)
        await d.stop(0.05)

    run(go())
    assert outcomes(seen, "quick") == [(1, "delivered", 200)] * 3
    slow = [a for a in seen if a.receiver == "slow"]
    assert outcomes(slow[:2]) == [(1, "retry", None), (2, "failed", None)]
    assert slow[0].error == "timed out after 0.4 s" and 0.35 < slow[0].duration_s < 1.0
    # what stop() cut short or never started is recorded as dropped
    assert [a.outcome for a in slow[2:]] == ["dropped"] * (len(slow) - 2)
    assert {a.incident_id for a in slow if a.outcome == "dropped"} == {"inc-1", "inc-2"}


def test_connection_errors_are_retried_then_given_up_and_secrets_stay_hidden():
    port = closed_port()
    hook = WebhookReceiver(
        "hook",
        f"http://user:pw-{SECRET}@127.0.0.1:{port}/in?token={SECRET}",
        headers={"X-Token": SECRET},
    )
    slack = SlackReceiver("chat", f"http://127.0.0.1:{port}/services/T000/B000/{SECRET}")
    seen: list[DeliveryAttempt] = []

    async def go():
        d = fast({"hook": hook, "chat": slack}, record=seen.append, max_attempts=3)
        await d.start()
        d.submit("hook", note())
        d.submit("chat", note())
        await until(lambda: len(seen) == 6)
        await d.stop(1)

    run(go())
    for name in ("hook", "chat"):
        assert outcomes(seen, name) == [(1, "retry", None), (2, "retry", None), (3, "failed", None)]
    assert all(a.error and "ConnectError" in a.error for a in seen)
    text = repr(seen) + repr(hook) + repr(slack) + hook.public_url + slack.public_url
    assert SECRET not in text and "T000" not in text
    assert slack.public_url == f"http://127.0.0.1:{port}/***"
    assert hook.public_url == f"http://127.0.0.1:{port}/in?***"


def test_slack_receiver_posts_text_and_blocks(http):
    base, state = http
    chat = SlackReceiver("chat", f"{base}/ok")
    result = run(chat.send(note(title="<!channel> & friends")))
    assert result.ok and result.status == 200 and result.error is None
    body = json.loads(state.requests[0][2])
    assert set(body) == {"text", "blocks"}
    assert body["text"] == "[FIRING] [critical] &lt;!channel&gt; &amp; friends"


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/x", "file:///etc/passwd", "gopher://x", "http://", "example.com/hook"],
)
def test_only_http_urls(url):
    with pytest.raises(ValueError, match=r"http|host"):
        WebhookReceiver("hook", url)
    with pytest.raises(ValueError, match=r"http|host"):
        SlackReceiver("chat", url)


def test_header_values_cannot_smuggle_lines():
    with pytest.raises(ValueError, match="bad name or value"):
        WebhookReceiver("hook", "https://x.example/", headers={"X-A": "1\r\nX-B: 2"})


# -- the dispatcher itself ------------------------------------------------------------------------


class Recorder:
    """A receiver that records what it is sent and reports a fixed result."""

    def __init__(self, name: str, ok: bool = True, raises: bool = False) -> None:
        self.name, self.ok, self.raises = name, ok, raises
        self.sent: list[Notification] = []

    async def send(self, n: Notification):
        from opsloop.act.notify import DeliveryResult

        self.sent.append(n)
        if self.raises:
            raise RuntimeError(f"boom {SECRET}")
        return DeliveryResult(ok=self.ok, status=200 if self.ok else 503, retryable=True)


def test_submit_never_blocks_and_drops_when_full():
    seen: list[DeliveryAttempt] = []
    d = Dispatcher({"r": Recorder("r")}, queue_size=2, record=seen.append)
    started = time.monotonic()
    results = [d.submit("r", note(f"inc-{i}")) for i in range(5)]
    assert time.monotonic() - started < 0.1
    assert results == [True, True, False, False, False]
    assert d.pending("r") == 2 and d.pending() == 2
    assert [(a.incident_id, a.outcome, a.attempt, a.ok) for a in seen] == [
        (f"inc-{i}", "dropped", 0, False) for i in (2, 3, 4)
    ]
    assert seen[0].error == "queue full (2 waiting)"
    assert d.submit("nope", note()) is False
    assert seen[-1].error == "unknown receiver 'nope'" and seen[-1].receiver == "nope"


def test_queued_before_start_is_delivered_after_and_stop_refuses_new_work():
    rec = Recorder("r")
    seen: list[DeliveryAttempt] = []

    async def go():
        d = fast({"r": rec}, record=seen.append)
        d.submit("r", note("early"))
        await d.start()
        await d.start()  # idempotent
        await until(lambda: rec.sent)
        await d.stop(1)
        assert d.submit("r", note("late")) is False
        with pytest.raises(RuntimeError):
            await d.start()

    run(go())
    assert [(a.incident_id, a.outcome) for a in seen] == [
        ("early", "delivered"),
        ("late", "dropped"),
    ]


def test_stop_drains_what_it_can_and_records_the_rest_as_dropped():
    down = Recorder("down", ok=False)
    seen: list[DeliveryAttempt] = []

    async def go():
        d = Dispatcher(
            {"down": down}, record=seen.append, base_backoff_s=10, max_backoff_s=10
        )  # the first retry waits 5-10 s: stop() must not
        await d.start()
        for i in range(3):
            d.submit("down", note(f"inc-{i}"))
        await until(lambda: seen)
        t0 = time.monotonic()
        await d.stop(drain_timeout_s=0.05)
        assert time.monotonic() - t0 < 0.5

    run(go())
    assert [(a.incident_id, a.attempt, a.outcome) for a in seen] == [
        ("inc-0", 1, "retry"),
        ("inc-0", 1, "dropped"),
        ("inc-1", 0, "dropped"),
        ("inc-2", 0, "dropped"),
    ]
    assert seen[1].error == "dispatcher stopped during delivery"
    assert seen[2].error == "dispatcher stopped before delivery"


def test_submit_from_another_thread():
    rec = Recorder("r")

    async def go():
        d = fast({"r": rec})
        await d.start()
        thread = threading.Thread(target=lambda: [d.submit("r", note(f"t{i}")) for i in range(20)])
        thread.start()
        await asyncio.to_thread(thread.join)
        await until(lambda: len(rec.sent) == 20)
        await d.stop(1)
        assert len(d.recent) == 20 and all(a.ok for a in d.recent)

    run(go())
    assert [n.incident_id for n in rec.sent] == [f"t{i}" for i in range(20)]


def test_a_raising_receiver_or_record_does_not_kill_the_worker():
    bad = Recorder("bad", raises=True)

    def record(attempt: DeliveryAttempt) -> None:
        raise OSError("disk full")

    async def go():
        d = fast({"bad": bad}, record=record, max_attempts=2)
        await d.start()
        d.submit("bad", note("a"))
        d.submit("bad", note("b"))
        await until(lambda: len(d.recent) == 4)
        await d.stop(1)
        return list(d.recent)

    attempts = run(go())
    assert [(a.incident_id, a.attempt, a.outcome) for a in attempts] == [
        ("a", 1, "retry"),
        ("a", 2, "failed"),
        ("b", 1, "retry"),
        ("b", 2, "failed"),
    ]
    assert attempts[0].error == "receiver raised RuntimeError"  # not the message (may hold secrets)


def test_backoff_is_exponential_jittered_capped_and_honours_retry_after():
    d = Dispatcher({}, base_backoff_s=1.0, max_backoff_s=8.0)
    for attempt, full in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 8), (9, 8)]:
        values = [d.backoff_s(attempt) for _ in range(200)]
        assert all(full * 0.5 <= v < full for v in values)
        assert max(values) - min(values) > full * 0.2  # jitter spreads retries
    assert d.backoff_s(1, retry_after_s=5) == 5
    assert d.backoff_s(1, retry_after_s=600) == 8


@pytest.mark.parametrize(
    "kw", [{"max_attempts": 0}, {"base_backoff_s": 2, "max_backoff_s": 1}, {"queue_size": 0}]
)
def test_dispatcher_arguments_are_checked(kw):
    with pytest.raises(ValueError):
        Dispatcher({}, **kw)


# -- e-mail over a tiny SMTP sink -----------------------------------------------------------------


class SmtpState:
    def __init__(self) -> None:
        self.commands: list[str] = []
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.fail_mail = 0  # answer MAIL FROM with 451 this many times


class SmtpHandler(socketserver.StreamRequestHandler):
    def say(self, *lines: str) -> None:
        out = "".join(
            f"{line[:3]}{'-' if i < len(lines) - 1 else ' '}{line[4:]}\r\n"
            for i, line in enumerate(lines)
        )
        self.wfile.write(out.encode())

    def handle(self):
        state: SmtpState = self.server.state  # type: ignore[attr-defined]
        self.say("220 sink ESMTP")
        sender, rcpts = "", []
        while line := self.rfile.readline():
            cmd = line.decode().rstrip("\r\n")
            state.commands.append(cmd)
            verb = cmd.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.say("250 sink", "250 8BITMIME", "250 AUTH PLAIN LOGIN")
            elif verb == "MAIL":
                if state.fail_mail > 0:
                    state.fail_mail -= 1
                    self.say("451 4.3.0 try again later")
                else:
                    sender, rcpts = cmd[10:], []
                    self.say("250 ok")
            elif verb == "RCPT":
                if "reject" in cmd:
                    self.say("550 5.1.1 no such user")
                else:
                    rcpts.append(cmd[8:])
                    self.say("250 ok")
            elif verb == "DATA":
                self.say("354 go ahead")
                data = b""
                while (chunk := self.rfile.readline()) != b".\r\n":
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                state.messages.append((sender, rcpts, data))
                self.say("250 2.0.0 queued")
            elif verb == "AUTH":
                self.say("535 5.7.8 authentication failed")
            elif verb in ("RSET", "NOOP"):
                self.say("250 ok")
            elif verb == "QUIT":
                self.say("221 bye")
                return
            else:
                self.say("502 not implemented")


class SmtpSink(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def smtp() -> Iterator[tuple[int, SmtpState]]:
    server = SmtpSink(("127.0.0.1", 0), SmtpHandler)
    server.state = SmtpState()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield server.server_address[1], server.state  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


def mail_receiver(port: int, **kw) -> EmailReceiver:
    kw.setdefault("to_addrs", ["ops@example.com", "oncall@example.com"])
    return EmailReceiver(
        "mail",
        "127.0.0.1",
        port,
        from_addr="opsloop@example.com",
        starttls=False,
        timeout_s=2,
        **kw,
    )


def test_email_is_delivered_and_labels_cannot_inject_headers(smtp):
    port, state = smtp
    evil = note(
        "inc-7\r\nBcc: a@evil.example",
        title="Disk full\r\nBcc: b@evil.example\r\n\r\nfake body",
        labels={"host": "db1\r\nBcc: c@evil.example", "x\nBcc": "d@evil.example"},
        group_key="host=db1\nBcc: e@evil.example",
    )
    result = run(mail_receiver(port).send(evil))
    assert result.ok and result.status == 250 and result.error is None
    [(sender, rcpts, data)] = state.messages
    assert sender == "<opsloop@example.com>"
    assert rcpts == ["<ops@example.com>", "<oncall@example.com>"]  # no Bcc slipped in
    assert not any("evil" in c for c in state.commands if c.upper().startswith("RCPT"))
    head = data.split(b"\r\n\r\n", 1)[0]
    assert not any(line.lower().startswith(b"bcc") for line in head.split(b"\r\n"))
    msg = email.message_from_bytes(data, policy=policy.default)
    assert msg["Bcc"] is None
    for key, value in msg.items():
        assert "\n" not in value and "\r" not in value, key
    assert msg["Subject"].strip() == (
        "[opsloop] [FIRING] [critical] Disk full Bcc: b@evil.example fake body"
    )
    assert msg["X-Opsloop-Incident"] == "inc-7 Bcc: a@evil.example"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "host=db1" in text and "Status:   firing" in text
    assert "<h2>" in html


def test_smtp_4xx_is_retried_by_the_dispatcher(smtp):
    port, state = smtp
    state.fail_mail = 1
    seen: list[DeliveryAttempt] = []

    async def go():
        d = fast({"mail": mail_receiver(port)}, record=seen.append)
        await d.start()
        d.submit("mail", note())
        await until(lambda: any(a.ok for a in seen))
        await d.stop(1)

    run(go())
    assert outcomes(seen) == [(1, "retry", 451), (2, "delivered", 250)]
    assert "try again later" in seen[0].error
    assert len(state.messages) == 1


def test_refused_recipients(smtp):
    port, _ = smtp
    some = run(mail_receiver(port, to_addrs=["ops@example.com", "reject@example.com"]).send(note()))
    assert some.ok and some.error == "recipients refused: reject@example.com"
    none = run(mail_receiver(port, to_addrs=["reject@example.com"]).send(note()))
    assert not none.ok and none.status == 550 and not none.retryable
    assert none.error == "all recipients refused: reject@example.com"


def test_smtp_auth_failure_is_final_and_never_shows_the_password(smtp, monkeypatch):
    port, state = smtp
    password = "hunter2-" + SECRET
    monkeypatch.setenv("NOTIFY_TEST_SMTP_PASSWORD", password)
    rec = mail_receiver(port, username="bot", password_env="NOTIFY_TEST_SMTP_PASSWORD")
    result = run(rec.send(note()))
    assert not result.ok and result.status == 535 and not result.retryable
    assert "authentication failed" in result.error
    assert password not in repr(result) + repr(rec) and SECRET not in repr(rec)
    assert any(c.startswith("AUTH") for c in state.commands) and not state.messages

    monkeypatch.delenv("NOTIFY_TEST_SMTP_PASSWORD")
    missing = run(rec.send(note()))
    assert not missing.ok and not missing.retryable
    assert missing.error == "environment variable NOTIFY_TEST_SMTP_PASSWORD is not set"


def test_smtp_down_is_retryable():
    result = run(mail_receiver(closed_port()).send(note()))
    assert not result.ok and result.retryable and result.status is None
    assert "ConnectionRefusedError" in result.error


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"from_addr": "a@b.example\r\nBcc: x@evil.example"}, "single-line"),
        ({"to_addrs": ["ops@example.com\nBcc: x@evil.example"]}, "single-line"),
        ({"to_addrs": []}, "at least one"),
        ({"to_addrs": ["not-an-address"]}, "not an e-mail address"),
        ({"host": "smtp.example.com", "username": "u", "password_env": "P"}, "without TLS"),
        ({"username": "u"}, "password_env"),
        ({"starttls": True, "implicit_tls": True}, "not both"),
    ],
)
def test_email_receiver_validation(kw, message):
    args = dict(
        name="mail",
        host="127.0.0.1",
        port=25,
        from_addr="opsloop@example.com",
        to_addrs=["ops@example.com"],
        starttls=False,
    )
    args.update(kw)
    with pytest.raises(ValueError, match=message):
        EmailReceiver(**args)


# -- receivers from config ------------------------------------------------------------------------


def test_receivers_from_config():
    receivers = receivers_from_config(
        {
            "hook": {"type": "webhook", "url": "https://x.example/in", "headers": {"A": "b"}},
            "chat": {"type": "slack", "url": "https://hooks.example/services/x", "timeout_s": 3},
            "mail": {
                "type": "email",
                "host": "smtp.example.com",
                "from_addr": "opsloop@example.com",
                "to_addrs": ["ops@example.com"],
            },
        }
    )
    assert {k: type(v).__name__ for k, v in receivers.items()} == {
        "hook": "WebhookReceiver",
        "chat": "SlackReceiver",
        "mail": "EmailReceiver",
    }
    assert receivers["chat"].timeout_s == 3


@pytest.mark.parametrize(
    ("config", "path", "message"),
    [
        ({"x": []}, "receivers.x", "must be a table"),
        ({"x": {"type": "slack"}}, "receivers.x.url", "is required"),
        ({"x": {"type": "slack", "url": "https://a.example", "headers": {}}},
         "receivers.x.headers", "unknown key"),
        ({"x": {"type": "webhook", "url": "ftp://a"}}, "receivers.x", "http:// or https://"),
    ],
)  # fmt: skip
def test_receiver_config_errors(config, path, message):
    with pytest.raises(ReceiverConfigError) as info:
        receivers_from_config(config)
    assert info.value.path == path and message in info.value.message


def test_a_receiver_that_never_returns_is_cut_off(monkeypatch):
    import opsloop.act.notify.dispatcher as dispatcher_module

    class Stuck:
        name = "stuck"
        timeout_s = 0.01  # its own timeout is ignored by its send()

        async def send(self, n):
            await asyncio.sleep(60)

    monkeypatch.setattr(dispatcher_module, "_guard_s", lambda receiver: 0.05)
    seen: list[DeliveryAttempt] = []

    async def go():
        d = fast({"stuck": Stuck()}, record=seen.append, max_attempts=2)
        await d.start()
        d.submit("stuck", note())
        await until(lambda: len(seen) == 2)
        await d.stop(1)

    run(go())
    assert outcomes(seen) == [(1, "retry", None), (2, "failed", None)]
    assert seen[0].error == "receiver did not answer in time"


def test_email_with_non_ascii_text(smtp):
    port, state = smtp
    n = note(title="Überlast — 東京 disk", labels={"zone": "süd"})
    assert run(mail_receiver(port).send(n)).ok
    msg = email.message_from_bytes(state.messages[0][2], policy=policy.default)
    assert msg["Subject"].strip() == "[opsloop] [FIRING] [critical] Überlast — 東京 disk"
    assert "zone=süd" in msg.get_body(("plain",)).get_content()
