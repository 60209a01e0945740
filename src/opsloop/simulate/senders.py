"""Ship the estate's signals into opsloop through its public interfaces only.

* :class:`HttpLogSender`: NDJSON batches to ``POST /api/v1/logs`` (``message``, ``timestamp``,
  ``host``, ``level``, ``source`` = ``host/app``, plus ``service`` and ``pid`` as fields).
* :class:`SyslogSender`: RFC 5424 messages over UDP (one per datagram) or TCP (octet-counted
  frames, RFC 6587), with the simulated time in the header.
* :class:`MetricPusher`: JSON samples with their simulated timestamps to ``POST /api/v1/metrics``.
* :class:`PredictionSender`: one scoring request per customer to
  ``POST /api/v1/models/{model}/predict`` (``{"records": [...]}``, our own ``X-Request-ID``) and
  delayed labels to ``POST /api/v1/models/{model}/labels``
  (``{"labels": [{"request_id", "label"}]}``).

Every HTTP call goes through one :class:`Transport` with the bearer token. Connection errors,
timeouts, 429 and 5xx are retried with exponential backoff; after the last try the endpoint is
paused for a few seconds (what comes meanwhile is dropped and counted) so a stopped opsloop does
not stall the simulation. A 4xx is never retried and never raised: it is counted per endpoint and
status, and reported once per endpoint and status through ``on_problem``. A 404 or 501 (no such
model, no label sink) pauses the endpoint for longer. :meth:`Transport.report` sums it all up.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from opsloop.simulate.signals import LogEvent, PredictionRequest, Sample

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
LONG_PAUSE_STATUSES = frozenset({404, 501})
SEVERITIES = {
    "emergency": 0, "alert": 1, "critical": 2, "error": 3,
    "warning": 4, "notice": 5, "info": 6, "debug": 7,
}  # fmt: skip
FACILITIES = {
    "kern": 0, "user": 1, "daemon": 3, "auth": 4, "syslog": 5, "cron": 9,
    "local0": 16, "local1": 17, "local7": 23,
}  # fmt: skip
MAX_SYSLOG_BYTES = 8192


@dataclass
class EndpointStats:
    """What happened to the calls of one endpoint."""

    requests: int = 0
    items: int = 0
    failed: int = 0
    dropped: int = 0
    rejected_items: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    last_problem: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain values for a report."""
        return {
            "requests": self.requests, "items": self.items, "failed": self.failed,
            "dropped": self.dropped, "rejected_items": self.rejected_items,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "last_problem": self.last_problem,
        }  # fmt: skip


def _warn(message: str) -> None:
    log.warning("%s", message)


class Transport:
    """HTTP calls to opsloop with the bearer token, retries, pauses and statistics."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        client: httpx.Client | None = None,
        retries: int = 3,
        backoff_s: float = 0.25,
        pause_s: float = 5.0,
        long_pause_s: float = 30.0,
        timeout_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        on_problem: Callable[[str], None] = _warn,
    ) -> None:
        from opsloop import __version__

        self.base_url = base_url.rstrip("/")
        self.client = client or httpx.Client(timeout=timeout_s)
        self._owns_client = client is None
        self.headers = {
            "Authorization": f"Bearer {token}",
            "User-Agent": f"opsloop-simulate/{__version__}",
        }
        self.retries = retries
        self.backoff_s = backoff_s
        self.pause_s = pause_s
        self.long_pause_s = long_pause_s
        self.sleep = sleep
        self.monotonic = monotonic
        self.on_problem = on_problem
        self.stats: dict[str, EndpointStats] = {}
        self._paused_until: dict[str, float] = {}
        self._reported: set[tuple[str, int | str]] = set()

    def _problem(self, endpoint: str, key: int | str, message: str) -> None:
        st = self.stats[endpoint]
        st.last_problem = message
        if (endpoint, key) not in self._reported:
            self._reported.add((endpoint, key))
            self.on_problem(message)

    def post(
        self,
        endpoint: str,
        path: str,
        *,
        content: bytes,
        content_type: str,
        items: int = 1,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response | None:
        """POST with retries; the final response (2xx or 4xx), or ``None`` when none came."""
        st = self.stats.setdefault(endpoint, EndpointStats())
        if self.monotonic() < self._paused_until.get(endpoint, 0.0):
            st.dropped += items
            return None
        hdrs = {**self.headers, "Content-Type": content_type, **(headers or {})}
        url = self.base_url + path
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            why: str
            try:
                resp = self.client.post(url, content=content, headers=hdrs)
            except httpx.HTTPError as exc:
                why = f"{type(exc).__name__}: {exc}"
            else:
                st.requests += 1
                st.statuses[resp.status_code] = st.statuses.get(resp.status_code, 0) + 1
                if resp.status_code < 400:
                    st.items += items
                    return resp
                if resp.status_code not in RETRY_STATUSES:
                    self._rejected(endpoint, path, resp, items)
                    return resp
                why = f"HTTP {resp.status_code}"
                retry_after = resp.headers.get("Retry-After", "")
                if retry_after.isdigit():
                    delay = max(delay, min(float(retry_after), 10.0))
            if attempt < self.retries:
                self.sleep(delay)
                delay *= 2
        st.failed += items
        self._paused_until[endpoint] = self.monotonic() + self.pause_s
        self._problem(endpoint, "unavailable",
                      f"{endpoint}: opsloop unavailable at {url} ({why}); "
                      f"pausing {self.pause_s:g}s and dropping meanwhile")  # fmt: skip
        return None

    def _rejected(self, endpoint: str, path: str, resp: httpx.Response, items: int) -> None:
        st = self.stats[endpoint]
        st.rejected_items += items
        if resp.status_code in LONG_PAUSE_STATUSES:
            self._paused_until[endpoint] = self.monotonic() + self.long_pause_s
        detail = resp.text[:300].replace("\n", " ")
        self._problem(endpoint, resp.status_code,
                      f"{endpoint}: POST {path} answered {resp.status_code}: {detail}")  # fmt: skip

    def note_partial(self, endpoint: str, rejected: list[Any]) -> None:
        """Count items a 2xx answer listed as rejected, and report the first reason."""
        if not rejected:
            return
        st = self.stats.setdefault(endpoint, EndpointStats())
        st.rejected_items += len(rejected)
        first = rejected[0]
        reason = first.get("reason", first) if isinstance(first, dict) else first
        self._problem(endpoint, "partial", f"{endpoint}: opsloop rejected some items: {reason}")

    def preflight(self) -> str | None:
        """Why the simulator cannot feed this opsloop, or ``None`` when it can.

        Checks that ``/api/health`` answers and that the token is accepted
        (``/api/v1/me``) with a role that may post (operator or admin).
        """
        try:
            health = self.client.get(self.base_url + "/api/health")
            me = self.client.get(self.base_url + "/api/v1/me", headers=self.headers)
        except httpx.HTTPError as exc:
            return f"cannot reach opsloop at {self.base_url}: {type(exc).__name__}: {exc}"
        if health.status_code != 200:
            return f"{self.base_url}/api/health answered {health.status_code}: is it opsloop?"
        if me.status_code in (401, 403):
            return f"opsloop at {self.base_url} refused the token ({me.status_code})"
        if me.status_code != 200:
            return f"{self.base_url}/api/v1/me answered {me.status_code}"
        role = me.json().get("role") if "json" in me.headers.get("content-type", "") else None
        if role not in ("operator", "admin"):
            return f"the token's role is {role!r}; posting needs operator or admin"
        return None

    def report(self) -> dict[str, Any]:
        """Statistics per endpoint."""
        return {k: v.to_dict() for k, v in sorted(self.stats.items())}

    def close(self) -> None:
        """Close the HTTP client (when this transport made it)."""
        if self._owns_client:
            self.client.close()


def _json_answer(resp: httpx.Response | None) -> dict[str, Any]:
    if resp is None or resp.status_code >= 300:
        return {}
    try:
        data = resp.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


class HttpLogSender:
    """Log events as NDJSON to ``POST /api/v1/logs``, one request per batch."""

    ENDPOINT = "logs"

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    @staticmethod
    def encode(events: Sequence[LogEvent]) -> bytes:
        """The NDJSON body for ``events``."""
        lines = []
        for e in events:
            obj: dict[str, Any] = {
                "message": e.message, "timestamp": round(e.ts, 3), "host": e.host,
                "level": e.level, "source": e.source, "service": e.app,
            }  # fmt: skip
            if e.pid is not None:
                obj["pid"] = e.pid
            lines.append(json.dumps(obj, separators=(",", ":")))
        return ("\n".join(lines) + "\n").encode("utf-8")

    def send(self, events: Sequence[LogEvent]) -> None:
        """Ship ``events`` (nothing when empty)."""
        if not events:
            return
        resp = self.transport.post(
            self.ENDPOINT, "/api/v1/logs?source=simulate", content=self.encode(events),
            content_type="application/x-ndjson", items=len(events),
        )  # fmt: skip
        self.transport.note_partial(self.ENDPOINT, _json_answer(resp).get("rejected") or [])


class MetricPusher:
    """Samples with their timestamps as JSON to ``POST /api/v1/metrics``."""

    ENDPOINT = "metrics"

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    @staticmethod
    def encode(samples: Sequence[Sample]) -> bytes:
        """The JSON body for ``samples``."""
        body = {
            "samples": [
                {"name": s.name, "value": s.value, "timestamp": round(s.ts, 3),
                 "labels": dict(s.labels)}
                for s in samples
            ]
        }  # fmt: skip
        return json.dumps(body, separators=(",", ":")).encode("utf-8")

    def send(self, samples: Sequence[Sample]) -> None:
        """Push ``samples`` (nothing when empty)."""
        if not samples:
            return
        resp = self.transport.post(
            self.ENDPOINT, "/api/v1/metrics", content=self.encode(samples),
            content_type="application/json", items=len(samples),
        )  # fmt: skip
        self.transport.note_partial(self.ENDPOINT, _json_answer(resp).get("rejected") or [])


class PredictionSender:
    """Scoring requests and delayed labels for one served model."""

    def __init__(self, transport: Transport, model: str) -> None:
        self.transport = transport
        self.model = model
        self._name = quote(model, safe="")

    def predict(self, request: PredictionRequest, request_id: str) -> str | None:
        """Score one customer; the request id opsloop filed it under, or ``None`` on failure."""
        body = json.dumps({"records": [request.record]}).encode("utf-8")
        resp = self.transport.post(
            "predict", f"/api/v1/models/{self._name}/predict", content=body,
            content_type="application/json", headers={"X-Request-ID": request_id},
        )  # fmt: skip
        if resp is None or resp.status_code >= 300:
            return None
        answer = _json_answer(resp).get("request_id")
        return answer if isinstance(answer, str) and answer else request_id

    def labels(self, items: Sequence[tuple[str, int]]) -> None:
        """Send the true outcomes of earlier predictions, by request id."""
        if not items:
            return
        body = {"labels": [{"request_id": rid, "label": lab} for rid, lab in items]}
        self.transport.post(
            "labels", f"/api/v1/models/{self._name}/labels",
            content=json.dumps(body).encode("utf-8"), content_type="application/json",
            items=len(items),
        )  # fmt: skip


def rfc5424(event: LogEvent) -> bytes:
    """One RFC 5424 message for ``event`` (no framing).

    >>> rfc5424(LogEvent(0.5, "db1", "postgres", "info", "LOG:  hi", "syslog", "local0", 42))
    b'<134>1 1970-01-01T00:00:00.500000Z db1 postgres 42 - - LOG:  hi'
    """
    pri = FACILITIES.get(event.facility, 3) * 8 + SEVERITIES.get(event.level, 6)
    ts = datetime.fromtimestamp(event.ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    app = "".join(c for c in event.app if 33 <= ord(c) <= 126)[:48] or "-"
    host = "".join(c for c in event.host if 33 <= ord(c) <= 126)[:255] or "-"
    procid = str(event.pid) if event.pid is not None else "-"
    message = event.message.replace("\r", " ").replace("\n", " ")
    data = f"<{pri}>1 {ts} {host} {app} {procid} - - {message}".encode()
    return data[:MAX_SYSLOG_BYTES]


class SyslogSender:
    """RFC 5424 messages to opsloop's syslog listener over UDP or TCP."""

    ENDPOINT = "syslog"

    def __init__(
        self,
        host: str,
        port: int,
        proto: str = "udp",
        *,
        on_problem: Callable[[str], None] = _warn,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if proto not in ("udp", "tcp"):
            raise ValueError("proto must be 'udp' or 'tcp'")
        self.address = (host, port)
        self.proto = proto
        self.on_problem = on_problem
        self.monotonic = monotonic
        self.stats = EndpointStats()
        self._sock: socket.socket | None = None
        self._paused_until = 0.0
        self._reported = False

    def _connect(self) -> socket.socket:
        if self._sock is None:
            if self.proto == "udp":
                family = socket.getaddrinfo(*self.address, type=socket.SOCK_DGRAM)[0][0]
                self._sock = socket.socket(family, socket.SOCK_DGRAM)
            else:
                self._sock = socket.create_connection(self.address, timeout=5.0)
        return self._sock

    def _drop_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def send(self, events: Sequence[LogEvent]) -> None:
        """Send ``events``; on a socket error retry once, then pause and drop."""
        if not events:
            return
        if self.monotonic() < self._paused_until:
            self.stats.dropped += len(events)
            return
        messages = [rfc5424(e) for e in events]
        if self.proto == "tcp":
            payload = b"".join(str(len(m)).encode() + b" " + m for m in messages)
        for attempt in range(2):
            try:
                sock = self._connect()
                if self.proto == "udp":
                    for m in messages:
                        sock.sendto(m, self.address)
                else:
                    sock.sendall(payload)
            except OSError as exc:
                self._drop_socket()
                if attempt == 0:
                    continue
                self.stats.failed += len(events)
                self.stats.last_problem = f"syslog {self.proto}://{self.address[0]}:" \
                    f"{self.address[1]}: {exc}"  # fmt: skip
                self._paused_until = self.monotonic() + 5.0
                if not self._reported:
                    self._reported = True
                    self.on_problem(self.stats.last_problem + "; pausing 5s and dropping")
                return
            self.stats.requests += 1
            self.stats.items += len(events)
            return

    def close(self) -> None:
        """Close the socket."""
        self._drop_socket()
