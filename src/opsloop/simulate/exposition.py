"""A scrapeable Prometheus endpoint serving the estate's latest metric values.

:class:`ExpositionServer` runs a stdlib HTTP server in a daemon thread (``127.0.0.1``, port
``0`` = an ephemeral one) and answers ``GET /metrics`` with the text format 0.0.4: one ``# HELP``
and ``# TYPE … gauge`` per family, then its series. :meth:`ExpositionServer.update` replaces the
page's samples after every tick.

Scraping suits real time (``speed 1``): opsloop stamps each scrape with its own clock, so samples
must be served *without* timestamps. At accelerated time a scraper sees only every n-th state and
stamps it wrongly, so the runner pushes the samples with their simulated timestamps to
``POST /api/v1/metrics`` instead; the page stays available for people to look at
(``with_timestamps=True`` then shows the simulated times).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opsloop.simulate.signals import Sample

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if value != value:  # NaN
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def render(
    samples: Iterable[Sample],
    *,
    help_texts: Mapping[str, str] | None = None,
    with_timestamps: bool = False,
) -> str:
    """Samples as Prometheus text (gauges), grouped by family in order of first appearance.

    >>> print(render([Sample("up", 1.0, 1.5, {"host": "web1"})], with_timestamps=True), end="")
    # TYPE up gauge
    up{host="web1"} 1.0 1500
    """
    families: dict[str, list[Sample]] = {}
    for s in samples:
        families.setdefault(s.name, []).append(s)
    lines: list[str] = []
    for name, group in families.items():
        text = (help_texts or {}).get(name)
        if text:
            lines.append(f"# HELP {name} {_escape_help(text)}")
        lines.append(f"# TYPE {name} gauge")
        for s in group:
            labels = ",".join(f'{k}="{_escape_label(v)}"' for k, v in sorted(s.labels.items()))
            head = f"{name}{{{labels}}}" if labels else name
            tail = f" {round(s.ts * 1000)}" if with_timestamps else ""
            lines.append(f"{head} {_number(s.value)}{tail}")
    return "\n".join(lines) + ("\n" if lines else "")


class ExpositionServer:
    """``GET /metrics`` on ``host:port`` in a background thread; :meth:`update` sets the page."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        help_texts: Mapping[str, str] | None = None,
        with_timestamps: bool = False,
    ) -> None:
        self.help_texts = dict(help_texts or {})
        self.with_timestamps = with_timestamps
        self._page = b""
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for)."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The page's URL, e.g. ``http://127.0.0.1:9464/metrics``."""
        host = self._server.server_address[0]
        return f"http://{host}:{self.port}/metrics"

    def update(self, samples: Iterable[Sample]) -> None:
        """Serve these samples from now on."""
        page = render(samples, help_texts=self.help_texts, with_timestamps=self.with_timestamps)
        with self._lock:
            self._page = page.encode("utf-8")

    def page(self) -> bytes:
        """The current page."""
        with self._lock:
            return self._page

    def start(self) -> ExpositionServer:
        """Serve in a daemon thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="simulate-exposition",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> ExpositionServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, outer.page(), CONTENT_TYPE)
                elif path == "/":
                    self._send(200, b"opsloop simulate: metrics at /metrics\n", "text/plain")
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler
