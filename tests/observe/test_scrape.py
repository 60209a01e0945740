"""Scraping over loopback: a tiny http.server serving exposition pages, good and bad."""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from opsloop.observe.counter_rate import CounterRate
from opsloop.observe.scrape import Scraper, ScrapeResult, ScrapeTarget, scrape_once
from opsloop.store.telemetry.metrics import MetricSample

PROM_PAGE = """# HELP reqs_total Requests served.
# TYPE reqs_total counter
reqs_total{{code="200"}} {count}
# TYPE temp gauge
temp{{job="inner",room="a"}} 21.5
# TYPE lat histogram
lat_bucket{{le="0.5"}} 3
lat_bucket{{le="+Inf"}} 4
lat_sum 1.25
lat_count 4
# TYPE rpc summary
rpc{{quantile="0.5"}} NaN
rpc{{quantile="0.99"}} 0.2
rpc_sum 7
rpc_count 9
stamped 5 1700000000000
this line is broken
"""

OM_PAGE = """# TYPE jobs counter
jobs_total 7 # {trace_id="abc"} 1.0
jobs_created 1700000000.0
# TYPE build info
build_info{version="1.0"} 1
# EOF
"""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits = 0
    accepts: list[str] = []
    release = threading.Event()

    def log_message(self, format, *args):  # quiet
        pass

    def send_body(self, body: bytes, ctype: str, status: int = 200, extra=None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        Handler.accepts.append(self.headers.get("Accept", ""))
        if self.path == "/metrics":
            Handler.hits += 1
            body = PROM_PAGE.format(count=100 * Handler.hits).encode()
            self.send_body(body, "text/plain; version=0.0.4; charset=utf-8")
        elif self.path == "/om":
            self.send_body(
                OM_PAGE.encode(), "application/openmetrics-text; version=1.0.0; charset=utf-8"
            )
        elif self.path == "/gzip":
            self.send_body(
                gzip.compress(b"zipped 1\n" * 1000),
                "text/plain; version=0.0.4",
                extra={"Content-Encoding": "gzip"},
            )
        elif self.path == "/slow":
            Handler.release.wait(3)
            self.send_body(b"late 1\n", "text/plain")
        elif self.path == "/garbage":
            self.send_body(b"<html><body>\x00\xff Not metrics </body></html>\n", "text/html")
        elif self.path == "/big":
            self.send_body(b"x 1\n" * 1024, "text/plain")
        elif self.path == "/stream-big":
            # no Content-Length: the body runs until the connection closes
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            for _ in range(64):
                self.wfile.write(b"y 1\n" * 64)
        elif self.path == "/large":
            self.send_body(
                "".join(f'z{{i="{i}"}} {i}\n' for i in range(30000)).encode(), "text/plain"
            )
        elif self.path == "/empty":
            self.send_body(b"", "text/plain")
        else:
            self.send_body(b"nope\n", "text/plain", status=500)


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # client went away (timeouts): fine
        pass


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server = QuietServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        Handler.release.set()
        server.shutdown()
        server.server_close()
        thread.join(2)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


async def scrape(url: str, **kw) -> ScrapeResult:
    target_kw = {k: kw.pop(k) for k in ("timeout_s", "labels", "name") if k in kw}
    async with httpx.AsyncClient() as client:
        return await scrape_once(ScrapeTarget(url, **target_kw), client, **kw)


def find(result: ScrapeResult, name: str, **labels: str) -> list[MetricSample]:
    return [
        s
        for s in result.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def test_scrape_prometheus_page(base_url):
    before = len(Handler.accepts)
    r = run(scrape(base_url + "/metrics", name="app", labels={"env": "test"}, now=1000.0))
    assert r.up
    assert Handler.accepts[before].startswith("application/openmetrics-text")
    assert "text/plain;version=0.0.4" in Handler.accepts[before]
    assert r.errors == ["line 17: invalid value 'line'"]
    instance = base_url.removeprefix("http://")
    base = {"job": "app", "instance": instance, "env": "test"}
    (reqs,) = find(r, "reqs_total")
    assert reqs.labels == {"code": "200", **base} and reqs.ts == 1000.0
    (temp,) = find(r, "temp")
    assert temp.labels == {"room": "a", "exported_job": "inner", **base}  # target label wins
    assert [s.labels["le"] for s in find(r, "lat_bucket")] == ["0.5", "+Inf"]
    assert find(r, "lat_sum")[0].value == 1.25 and find(r, "lat_count")[0].value == 4
    assert [s.labels["quantile"] for s in find(r, "rpc")] == ["0.5", "0.99"]
    assert find(r, "rpc_count")[0].value == 9
    assert find(r, "stamped")[0].ts == 1700000000.0  # the page's own timestamp (ms) is kept
    assert find(r, "up")[0].value == 1.0 and find(r, "up")[0].labels == base
    (duration,) = find(r, "scrape_duration_seconds")
    assert duration.value == r.duration_s and 0 < r.duration_s < 5
    assert find(r, "scrape_samples_scraped")[0].value == 11
    assert not find(r, "reqs_per_s")  # no CounterRate given


def test_counter_rates_across_scrapes(base_url):
    rates = CounterRate()

    async def two():
        async with httpx.AsyncClient() as client:
            target = ScrapeTarget(base_url + "/metrics")
            first = await scrape_once(target, client, rates=rates, now=1000.0)
            second = await scrape_once(target, client, rates=rates, now=1010.0)
            return first, second

    first, second = run(two())
    assert not find(first, "reqs_per_s")
    (rate,) = find(second, "reqs_per_s", code="200")
    assert rate.value == pytest.approx(10.0)  # +100 per request over 10 s
    assert rate.ts == 1010.0 and rate.labels["job"] == "scrape"
    assert find(second, "reqs_total")  # raw counters are kept
    assert find(second, "scrape_samples_scraped")[0].value == 11  # rates are not counted
    assert not [
        s
        for s in second.samples
        if s.name.startswith(("lat", "rpc", "temp")) and "_per_s" in s.name
    ]


def test_scrape_openmetrics_page(base_url):
    r = run(scrape(base_url + "/om", rates=CounterRate(), now=2000.0))
    assert r.up and r.errors == []
    assert find(r, "jobs_total")[0].value == 7
    assert find(r, "jobs_created")[0].value == 1700000000.0
    assert find(r, "build_info", version="1.0")[0].value == 1


def test_gzip_body_is_decoded(base_url):
    r = run(scrape(base_url + "/gzip"))
    assert r.up and len(find(r, "zipped")) == 1000


def test_timeout(base_url):
    started = time.monotonic()
    r = run(scrape(base_url + "/slow", timeout_s=0.2))
    assert time.monotonic() - started < 2
    assert not r.up and r.errors == ["timeout after 0.2s"]
    assert find(r, "up")[0].value == 0.0
    assert [s.name for s in r.samples] == [
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
    ]


def test_garbage(base_url):
    r = run(scrape(base_url + "/garbage"))
    assert not r.up
    assert r.errors and r.errors[0].startswith("line 1: invalid metric name")
    assert find(r, "up")[0].value == 0.0


def test_http_error_status(base_url):
    r = run(scrape(base_url + "/missing"))
    assert not r.up and r.errors == ["HTTP status 500 Internal Server Error"]


def test_connection_refused():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    r = run(scrape(f"http://127.0.0.1:{port}/metrics", timeout_s=2))
    assert not r.up and r.errors[0].startswith("request failed: ConnectError")


def test_oversized_body_refused(base_url):
    r = run(scrape(base_url + "/big", max_body_bytes=1024))
    assert not r.up
    assert r.errors == ["body too large: Content-Length 4096 exceeds 1024 bytes"]
    streamed = run(scrape(base_url + "/stream-big", max_body_bytes=1024))
    assert not streamed.up and streamed.errors == ["body too large: more than 1024 bytes"]
    ok = run(scrape(base_url + "/stream-big", max_body_bytes=64 * 1024))
    assert ok.up and len(find(ok, "y")) == 64 * 64


def test_large_page_parsed_off_the_event_loop(base_url):
    r = run(scrape(base_url + "/large"))
    assert r.up and r.errors == []
    zs = find(r, "z")
    assert len(zs) == 30000 and zs[-1].labels["i"] == "29999" and zs[-1].value == 29999


def test_empty_page_is_up(base_url):
    r = run(scrape(base_url + "/empty"))
    assert r.up and r.errors == [] and find(r, "scrape_samples_scraped")[0].value == 0


def test_target_validation():
    with pytest.raises(ValueError):
        ScrapeTarget("ftp://host/metrics")
    with pytest.raises(ValueError):
        ScrapeTarget("http://host/metrics", interval_s=0)
    with pytest.raises(ValueError):
        ScrapeTarget("http://host/metrics", timeout_s=-1)
    assert ScrapeTarget("https://example.org/m").instance == "example.org:443"
    assert ScrapeTarget("http://[::1]:9100/m").instance == "[::1]:9100"
    t = ScrapeTarget("http://h:1/m", name="j", labels={"instance": "custom"})
    assert t.target_labels() == {"job": "j", "instance": "custom"}


def test_scraper_runs_targets_concurrently_and_stops(base_url):
    batches: list[list[MetricSample]] = []

    async def sink(batch):
        batches.append(batch)
        if len(batches) == 2:
            raise RuntimeError("a flaky sink does not stop the scraper")

    def rates_seen():
        return [s for b in batches for s in b if s.name == "reqs_per_s"]

    async def go():
        scraper = Scraper(
            [
                ScrapeTarget(base_url + "/metrics", interval_s=0.05, name="m"),
                ScrapeTarget(base_url + "/om", interval_s=0.05, name="om"),
                ScrapeTarget(base_url + "/missing", interval_s=0.05, name="bad"),
            ]
        )
        task = asyncio.create_task(scraper.run(sink))
        deadline = time.monotonic() + 4
        while len(rates_seen()) < 2 or len(batches) < 9:
            assert time.monotonic() < deadline, f"{len(batches)} batches"
            await asyncio.sleep(0.01)
        scraper.stop()
        await asyncio.wait_for(task, 2)
        return scraper

    scraper = run(go())
    jobs = {s.labels["job"]: s.value for b in batches for s in b if s.name == "up"}
    assert jobs == {"m": 1.0, "om": 1.0, "bad": 0.0}
    assert all(r.value > 0 for r in rates_seen())
    assert scraper.stats["sink_errors"] == 1
    assert scraper.stats["failures"] >= 3
    # default limits: the NaN summary quantile never reaches the sink
    assert scraper.stats["rejected"] >= 1
    assert not [s for b in batches for s in b if s.name == "rpc" and s.labels["quantile"] == "0.5"]
    assert set(scraper.last_results) == {base_url + p for p in ("/metrics", "/om", "/missing")}


def test_scraper_without_limits_and_without_targets(base_url):
    got: list[MetricSample] = []

    async def sink(batch):
        got.extend(batch)

    async def go():
        scraper = Scraper(
            [ScrapeTarget(base_url + "/metrics", interval_s=10)], limits=None, jitter=0
        )
        task = asyncio.create_task(scraper.run(sink))
        while not got:
            await asyncio.sleep(0.01)
        scraper.stop()
        await asyncio.wait_for(task, 2)
        idle = Scraper([])
        idle_task = asyncio.create_task(idle.run(sink))
        await asyncio.sleep(0.02)
        assert not idle_task.done()
        idle.stop()
        await asyncio.wait_for(idle_task, 1)

    run(go())
    assert [s for s in got if s.name == "rpc" and s.labels["quantile"] == "0.5"]  # NaN kept
