"""End-to-end metrics: HTTP ingest with an injected spike, and a Prometheus scrape."""

import http.server
import threading
import time

import httpx
import pytest
from tests.conftest import start_server

pytestmark = pytest.mark.e2e


def test_posted_spike_becomes_an_anomaly(server):
    h = {"Authorization": f"Bearer {server.admin_token}"}
    t0 = time.time() - 3 * 3600
    normal = [
        {"name": "checkout_latency_ms", "value": 120 + (i % 7), "timestamp": t0 + i * 10,
         "labels": {"svc": "shop"}}
        for i in range(1000)
    ]  # fmt: skip
    r = httpx.post(server.url + "/api/v1/metrics", json=normal, headers=h, timeout=60)
    assert r.status_code == 200 and r.json()["accepted"] == 1000
    assert r.json()["anomalies"] == 0
    spike = [{"name": "checkout_latency_ms", "value": 9000, "timestamp": t0 + 10_005,
              "labels": {"svc": "shop"}}]  # fmt: skip
    r = httpx.post(server.url + "/api/v1/metrics", json=spike, headers=h)
    assert r.json()["anomalies"] == 1
    found = httpx.get(
        server.url + "/api/v1/anomalies", params={"source": "metrics"}, headers=h
    ).json()["anomalies"]
    assert found[0]["kind"] == "metric_anomaly"
    assert found[0]["details"]["labels"] == {"svc": "shop"}


class _Exposition(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self):
        type(self).hits += 1
        body = (
            "# TYPE jobs_processed_total counter\n"
            f"jobs_processed_total {100 * type(self).hits}\n"
            "# TYPE queue_depth gauge\n"
            'queue_depth{queue="mail"} 7\n'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_scrape_targets_from_config(tmp_path):
    exporter = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Exposition)
    threading.Thread(target=exporter.serve_forever, daemon=True).start()
    port = exporter.server_address[1]
    (tmp_path / "opsloop.toml").write_text(
        f'[[metrics.scrape]]\nurl = "http://127.0.0.1:{port}/metrics"\nname = "worker"\n'
        'interval_s = 0.5\nlabels = {env = "test"}\n'
    )
    srv = start_server(tmp_path / "home", tmp_path)
    h = {"Authorization": f"Bearer {srv.admin_token}"}
    try:
        deadline = time.monotonic() + 20
        names = set()
        while time.monotonic() < deadline:
            rows = httpx.get(srv.url + "/api/v1/metrics/series", headers=h).json()["series"]
            names = {r["name"] for r in rows if r["labels"].get("job") == "worker"}
            if {"queue_depth", "jobs_processed_per_s", "up"} <= names:
                break
            time.sleep(0.3)
        assert {"queue_depth", "jobs_processed_total", "jobs_processed_per_s", "up"} <= names
        depth = next(r for r in rows if r["name"] == "queue_depth")
        assert depth["labels"] == {"queue": "mail", "job": "worker",
                                   "instance": f"127.0.0.1:{port}", "env": "test"}  # fmt: skip
    finally:
        assert srv.stop() == 0
        exporter.shutdown()
