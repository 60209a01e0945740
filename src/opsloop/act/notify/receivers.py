"""Receivers: where notifications go — a generic webhook, a Slack-compatible webhook, e-mail.

Every receiver has a ``name`` and ``async def send(n) -> DeliveryResult``. ``send`` never
raises for delivery problems: it returns a :class:`DeliveryResult` saying whether it worked,
the HTTP status or SMTP reply code, a short error, how long it took, and whether trying again
could help (``retryable``: HTTP 5xx and 429, timeouts, connection errors, SMTP 4xx replies).
The dispatcher (:mod:`opsloop.act.notify.dispatcher`) does the retrying.

Secrets stay secret: webhook header values (tokens), the path and query of a Slack webhook URL
(the URL *is* the credential), any ``user:password@`` in a URL and the SMTP password (read from
the environment variable ``password_env`` at send time, never stored) are masked in ``repr``
and removed from every error message.

Only ``http``/``https`` URLs are accepted; redirects are not followed (a redirect is reported as
a failure, so a webhook cannot be bounced elsewhere). The whole request, body included, is
bounded by ``timeout_s``.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import os
import smtplib
import ssl
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from opsloop.act.notify.message import Notification, build_email, slack_payload, webhook_payload

__all__ = [
    "DeliveryResult",
    "EmailReceiver",
    "Receiver",
    "ReceiverConfigError",
    "SlackReceiver",
    "WebhookReceiver",
    "receivers_from_config",
]

USER_AGENT = "opsloop-notify"
MAX_ERROR_CHARS = 300
_BODY_SNIPPET_BYTES = 512


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of one delivery attempt.

    ``status`` is the HTTP status or the SMTP reply code (``None`` when no reply came);
    ``retryable`` says whether the same notification may succeed if sent again.
    """

    ok: bool
    status: int | None = None
    error: str | None = None
    duration_s: float = 0.0
    retryable: bool = False
    retry_after_s: float | None = None


@runtime_checkable
class Receiver(Protocol):
    """Anything with a ``name`` that can ``send`` a :class:`Notification`."""

    name: str

    async def send(self, n: Notification) -> DeliveryResult:
        """Deliver ``n`` once; report, don't raise."""
        ...


def _scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***``, made single-line, printable and clipped.

    >>> _scrub("bad token abc123\\nmore\\x1b[31m", ["abc123", ""])
    'bad token *** more [31m'
    """
    for secret in sorted((s for s in secrets if s and len(s) >= 3), key=len, reverse=True):
        text = text.replace(secret, "***")
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def _check_http_url(url: str, what: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{what} must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError(f"{what} has no host")
    if any(c in url for c in "\r\n\t "):
        raise ValueError(f"{what} must not contain whitespace")


def _url_secrets(url: str, whole_path: bool) -> list[str]:
    """The parts of ``url`` that must not be shown: the password, the query, maybe the path."""
    parts = urlsplit(url)
    out = [parts.password or "", parts.query]
    if whole_path:
        out += [url, parts.path]
        out += [seg for seg in parts.path.split("/") if len(seg) >= 6]
    return out


def _public_url(url: str, hide_path: bool) -> str:
    """``url`` as safe to show: no credentials, no query, optionally no path.

    >>> _public_url("https://u:p@hooks.example.com/services/T1/B2/xyz?token=1", True)
    'https://hooks.example.com/***'
    >>> _public_url("https://u:p@hooks.example.com/in?token=1", False)
    'https://hooks.example.com/in?***'
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    if hide_path:
        return f"{parts.scheme}://{host}{port}/***"
    query = "?***" if parts.query else ""
    return f"{parts.scheme}://{host}{port}{parts.path}{query}"


@functools.cache
def _http_tls() -> ssl.SSLContext:
    """One verifying TLS context for all webhook requests (building one costs ~30 ms)."""
    import httpx

    return httpx.create_ssl_context()


@functools.cache
def _smtp_tls() -> ssl.SSLContext:
    return ssl.create_default_context()


def _retryable_http(status: int) -> bool:
    return status == 429 or status >= 500


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header given in seconds (HTTP dates are ignored)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if 0 <= seconds < 86_400 else None


class _HttpReceiver:
    """Shared HTTP POST logic for the webhook receivers."""

    name: str
    kind = "http"

    def __init__(
        self,
        name: str,
        url: str,
        headers: Mapping[str, str] | None,
        timeout_s: float,
        hide_path: bool,
    ) -> None:
        if not name:
            raise ValueError("a receiver needs a name")
        _check_http_url(url, f"receiver {name!r}: url")
        if timeout_s <= 0:
            raise ValueError(f"receiver {name!r}: timeout_s must be > 0")
        clean: dict[str, str] = {}
        for key, value in (headers or {}).items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ValueError(f"receiver {name!r}: header names and values must be strings")
            if any(c in key + value for c in "\r\n\0") or not key.strip():
                raise ValueError(f"receiver {name!r}: header {key!r} has a bad name or value")
            clean[key] = value
        self.name = name
        self._url = url
        self._headers = clean
        self.timeout_s = float(timeout_s)
        self._hide_path = hide_path

    @property
    def public_url(self) -> str:
        """The URL with credentials (and, for Slack, the path) masked."""
        return _public_url(self._url, self._hide_path)

    def _secrets(self) -> list[str]:
        return [*self._headers.values(), *_url_secrets(self._url, self._hide_path)]

    def __repr__(self) -> str:
        header_names = sorted(self._headers)
        return (
            f"{type(self).__name__}(name={self.name!r}, url={self.public_url!r}, "
            f"headers={header_names!r}, timeout_s={self.timeout_s})"
        )

    def _payload(self, n: Notification) -> dict[str, Any]:
        raise NotImplementedError

    async def send(self, n: Notification) -> DeliveryResult:
        """POST the payload once; 2xx is success."""
        import httpx

        body = json.dumps(self._payload(n), ensure_ascii=False).encode()
        headers = {
            "User-Agent": USER_AGENT,
            **self._headers,
            "Content-Type": "application/json; charset=utf-8",
        }
        start = time.monotonic()

        def done(**kw: Any) -> DeliveryResult:
            if kw.get("error"):
                kw["error"] = _scrub(kw["error"], self._secrets())
            return DeliveryResult(duration_s=time.monotonic() - start, **kw)

        try:
            async with (
                asyncio.timeout(self.timeout_s),
                httpx.AsyncClient(
                    timeout=self.timeout_s, follow_redirects=False, verify=_http_tls()
                ) as client,
                client.stream("POST", self._url, content=body, headers=headers) as resp,
            ):
                snippet = b""
                if not resp.is_success:
                    async for chunk in resp.aiter_bytes():
                        snippet += chunk
                        if len(snippet) >= _BODY_SNIPPET_BYTES:
                            break
        except (TimeoutError, httpx.TimeoutException):
            return done(ok=False, error=f"timed out after {self.timeout_s:g} s", retryable=True)
        except httpx.TransportError as exc:
            return done(ok=False, error=f"{type(exc).__name__}: {exc}", retryable=True)
        except httpx.HTTPError as exc:  # invalid URL/header at request time
            return done(ok=False, error=f"{type(exc).__name__}: {exc}", retryable=False)
        status = resp.status_code
        if resp.is_success:
            return done(ok=True, status=status)
        detail = snippet[:_BODY_SNIPPET_BYTES].decode("utf-8", "replace").strip()
        error = f"HTTP {status}" + (f": {detail}" if detail else "")
        if resp.is_redirect:
            error = f"HTTP {status}: redirects are not followed"
        return done(
            ok=False,
            status=status,
            error=error,
            retryable=_retryable_http(status),
            retry_after_s=_retry_after(resp.headers.get("retry-after")),
        )


class WebhookReceiver(_HttpReceiver):
    """POSTs the generic webhook JSON (:func:`~opsloop.act.notify.message.webhook_payload`).

    >>> r = WebhookReceiver("hook", "https://ops.example.com/in?key=s3cret",
    ...                     headers={"Authorization": "Bearer s3cret"})
    >>> r
    WebhookReceiver(name='hook', url='https://ops.example.com/in?***', headers=['Authorization'], timeout_s=10.0)
    """  # noqa: E501

    kind = "webhook"

    def __init__(
        self,
        name: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        super().__init__(name, url, headers, timeout_s, hide_path=False)

    def _payload(self, n: Notification) -> dict[str, Any]:
        return webhook_payload(n)


class SlackReceiver(_HttpReceiver):
    """POSTs :func:`~opsloop.act.notify.message.slack_payload` to an incoming-webhook URL.

    The URL's path is the credential, so it is never shown:

    >>> SlackReceiver("chat", "https://hooks.slack.com/services/T0/B0/abcdef")
    SlackReceiver(name='chat', url='https://hooks.slack.com/***', headers=[], timeout_s=10.0)
    """

    kind = "slack"

    def __init__(self, name: str, url: str, timeout_s: float = 10.0) -> None:
        super().__init__(name, url, None, timeout_s, hide_path=True)

    def _payload(self, n: Notification) -> dict[str, Any]:
        return slack_payload(n)


def _check_address(addr: str, what: str) -> str:
    if not isinstance(addr, str) or any(ord(c) < 32 or ord(c) == 127 for c in addr):
        raise ValueError(f"{what} must be a single-line string")
    _, bare = parseaddr(addr)
    if not bare or "@" not in bare or bare.startswith("@") or bare.endswith("@"):
        raise ValueError(f"{what} {addr!r} is not an e-mail address")
    return addr


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _smtp_retryable(code: int | None) -> bool:
    return code is None or 400 <= code < 500


class EmailReceiver:
    """Sends the notification as e-mail over SMTP (stdlib ``smtplib`` in a worker thread).

    ``starttls`` upgrades a plain connection (port 587); ``implicit_tls`` connects over TLS from
    the start (port 465). With ``username`` the password is read from the environment variable
    named ``password_env`` on each send. Credentials are only sent over TLS, unless the server
    is on loopback (a local relay).

    >>> EmailReceiver("mail", "smtp.example.com", 587, "opsloop@example.com",
    ...               ["ops@example.com"], username="bot", password_env="SMTP_PASSWORD")
    EmailReceiver(name='mail', host='smtp.example.com', port=587, to=['ops@example.com'], starttls=True, username='bot', password_env='SMTP_PASSWORD')
    """  # noqa: E501

    kind = "email"

    def __init__(
        self,
        name: str,
        host: str,
        port: int = 587,
        from_addr: str = "",
        to_addrs: Sequence[str] = (),
        starttls: bool = True,
        username: str | None = None,
        password_env: str | None = None,
        timeout_s: float = 10.0,
        implicit_tls: bool = False,
    ) -> None:
        if not name:
            raise ValueError("a receiver needs a name")
        if not host or any(c in host for c in "\r\n\t /"):
            raise ValueError(f"receiver {name!r}: bad SMTP host {host!r}")
        if not 0 < int(port) < 65536:
            raise ValueError(f"receiver {name!r}: port must be 1-65535")
        if isinstance(to_addrs, str):
            to_addrs = [to_addrs]
        if not to_addrs:
            raise ValueError(f"receiver {name!r}: to_addrs must list at least one address")
        _check_address(from_addr, f"receiver {name!r}: from_addr")
        for addr in to_addrs:
            _check_address(addr, f"receiver {name!r}: to_addrs entry")
        if starttls and implicit_tls:
            raise ValueError(f"receiver {name!r}: choose starttls or implicit_tls, not both")
        if username and not password_env:
            raise ValueError(f"receiver {name!r}: username needs password_env")
        if username and not (starttls or implicit_tls) and not _is_loopback(host):
            raise ValueError(
                f"receiver {name!r}: refusing to send SMTP credentials without TLS "
                "(set starttls or implicit_tls)"
            )
        if timeout_s <= 0:
            raise ValueError(f"receiver {name!r}: timeout_s must be > 0")
        self.name = name
        self.host = host
        self.port = int(port)
        self.from_addr = from_addr
        self.to_addrs = tuple(to_addrs)
        self.starttls = starttls
        self.implicit_tls = implicit_tls
        self.username = username
        self.password_env = password_env
        self.timeout_s = float(timeout_s)

    def __repr__(self) -> str:
        return (
            f"EmailReceiver(name={self.name!r}, host={self.host!r}, port={self.port}, "
            f"to={list(self.to_addrs)!r}, starttls={self.starttls}, "
            f"username={self.username!r}, password_env={self.password_env!r})"
        )

    def _password(self) -> str | None:
        return os.environ.get(self.password_env) if self.password_env else None

    def _deliver(self, n: Notification, password: str | None) -> tuple[int, str | None]:
        """Blocking SMTP conversation: (reply code, error naming refused recipients, if any)."""
        msg = build_email(n, self.from_addr, self.to_addrs)
        smtp: smtplib.SMTP
        if self.implicit_tls:
            smtp = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout_s, context=_smtp_tls()
            )
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
        with smtp:
            smtp.ehlo()
            if self.starttls:
                smtp.starttls(context=_smtp_tls())
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, password or "")
            refused = smtp.send_message(msg, self.from_addr, list(self.to_addrs))
        if refused:
            return 250, "recipients refused: " + ", ".join(sorted(refused))
        return 250, None

    async def send(self, n: Notification) -> DeliveryResult:
        """Deliver once; SMTP 4xx replies, timeouts and connection errors are retryable."""
        start = time.monotonic()
        password = self._password()

        def done(**kw: Any) -> DeliveryResult:
            if kw.get("error"):
                kw["error"] = _scrub(kw["error"], [password or ""])
            return DeliveryResult(duration_s=time.monotonic() - start, **kw)

        if self.username and password is None:
            return done(ok=False, error=f"environment variable {self.password_env} is not set")
        try:
            async with asyncio.timeout(self.timeout_s * 2):
                code, partial = await asyncio.to_thread(self._deliver, n, password)
        except TimeoutError:
            return done(ok=False, error=f"timed out after {self.timeout_s:g} s", retryable=True)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [c for c, _ in exc.recipients.values()]
            code = min(codes) if codes else None
            return done(
                ok=False,
                status=code,
                error="all recipients refused: " + ", ".join(sorted(exc.recipients)),
                retryable=all(_smtp_retryable(c) for c in codes),
            )
        except smtplib.SMTPResponseException as exc:
            reply = exc.smtp_error.decode("utf-8", "replace") if exc.smtp_error else ""
            return done(
                ok=False,
                status=exc.smtp_code,
                error=f"SMTP {exc.smtp_code}: {reply}",
                retryable=_smtp_retryable(exc.smtp_code),
            )
        except (smtplib.SMTPNotSupportedError, ssl.SSLCertVerificationError) as exc:
            # the server lacks AUTH/STARTTLS, or its certificate is wrong: a config problem
            return done(ok=False, error=f"{type(exc).__name__}: {exc}", retryable=False)
        except (smtplib.SMTPException, OSError) as exc:
            # disconnects, refused connections, socket timeouts, TLS failures
            return done(ok=False, error=f"{type(exc).__name__}: {exc}", retryable=True)
        if partial:
            return done(ok=True, status=code, error=partial)
        return done(ok=True, status=code)


class ReceiverConfigError(ValueError):
    """A receiver definition is invalid; ``path`` says where (``receivers.pager.url``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


_KINDS: dict[str, tuple[type, set[str], set[str]]] = {
    "webhook": (WebhookReceiver, {"url"}, {"headers", "timeout_s"}),
    "slack": (SlackReceiver, {"url"}, {"timeout_s"}),
    "email": (
        EmailReceiver,
        {"host", "from_addr", "to_addrs"},
        {"port", "starttls", "implicit_tls", "username", "password_env", "timeout_s"},
    ),
}


def receivers_from_config(
    config: Mapping[str, Mapping[str, Any]], path: str = "receivers"
) -> dict[str, Receiver]:
    """Build receivers from ``{name: {"type": "webhook"|"slack"|"email", ...}}``.

    >>> rs = receivers_from_config({"ops": {"type": "slack", "url": "https://h.example/x"}})
    >>> rs["ops"].name
    'ops'
    >>> receivers_from_config({"ops": {"type": "sms"}})
    Traceback (most recent call last):
    ...
    opsloop.act.notify.receivers.ReceiverConfigError: receivers.ops.type: unknown receiver type 'sms' (use email, slack, webhook)
    """  # noqa: E501
    if not isinstance(config, Mapping):
        raise ReceiverConfigError(path, "must be a table of named receivers")
    out: dict[str, Receiver] = {}
    for name, spec in config.items():
        where = f"{path}.{name}"
        if not isinstance(spec, Mapping):
            raise ReceiverConfigError(where, "must be a table")
        kind = spec.get("type")
        if kind not in _KINDS:
            raise ReceiverConfigError(
                f"{where}.type",
                f"unknown receiver type {kind!r} (use {', '.join(sorted(_KINDS))})",
            )
        cls, required, optional = _KINDS[kind]
        keys = set(spec) - {"type"}
        for key in sorted(keys - required - optional):
            raise ReceiverConfigError(f"{where}.{key}", f"unknown key for a {kind} receiver")
        for key in sorted(required - keys):
            raise ReceiverConfigError(f"{where}.{key}", "is required")
        try:
            out[name] = cls(name, **{k: spec[k] for k in keys})
        except (TypeError, ValueError) as exc:
            raise ReceiverConfigError(where, str(exc)) from None
    return out
