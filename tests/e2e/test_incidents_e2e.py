"""End-to-end incidents: Alertmanager burst, a log burst and a metric spike on one host,
silences, and notifications to webhook receivers on loopback (one failing, then retried)."""

import http.server
import json
import threading
import time

import httpx
import pytest
from tests.conftest import start_server, wait_for

pytestmark = pytest.mark.e2e


class Hook(http.server.BaseHTTPRequestHandler):
    received: list = []
    fail_first = 0
    calls = 0

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).calls += 1
        if type(self).calls <= type(self).fail_first:
            self.send_response(503)
            self.end_headers()
            return
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def serve(handler):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def am(name, service, host, status="firing", severity="warning", ends=None):
    return {
        "status": status, "annotations": {"summary": name},
        "labels": {"alertname": name, "service": service, "host": host, "severity": severity},
        "startsAt": iso(time.time() - 60), "endsAt": iso(ends) if ends else "0001-01-01T00:00:00Z",
    }  # fmt: skip


def payload(alerts, status="firing"):
    return {"version": "4", "groupKey": "g", "status": status, "receiver": "opsloop",
            "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "http://am", "alerts": alerts}  # fmt: skip


def test_alert_burst_signals_silences_and_notifications(tmp_path):
    good_handler = type("Good", (Hook,), {"received": [], "fail_first": 0, "calls": 0})
    flaky_handler = type("Flaky", (Hook,), {"received": [], "fail_first": 2, "calls": 0})
    good, flaky = serve(good_handler), serve(flaky_handler)
    (tmp_path / "opsloop.toml").write_text(f"""
[incidents]
group_wait_s = 0.5
group_interval_s = 1
external_url = "http://127.0.0.1:8700"

[notify.receivers.good]
type = "webhook"
url = "http://127.0.0.1:{good.server_address[1]}/hook"

[notify.receivers.flaky]
type = "webhook"
url = "http://127.0.0.1:{flaky.server_address[1]}/hook"

[notify.route]
receiver = "good"
routes = [{{ receiver = "flaky", matchers = ['service="db"'], continue = true }}]
""")
    srv = start_server(tmp_path / "home", tmp_path)
    h = {"Authorization": f"Bearer {srv.admin_token}"}
    try:
        # silence the batch service before its alert arrives
        r = httpx.post(srv.url + "/api/v1/silences", headers=h,
                       json={"matchers": 'service="batch"', "duration": "1h"})  # fmt: skip
        assert r.status_code == 201
        burst = [am("HighLatency", "api", "web1"), am("Errors", "api", "web1", severity="critical"),
                 am("HighLatency", "api", "web1"), am("ReplicaLag", "db", "db1"),
                 am("JobSlow", "batch", "w9")]  # fmt: skip
        r = httpx.post(srv.url + "/api/v1/alerts/alertmanager", json=payload(burst), headers=h)
        assert [x["action"] for x in r.json()["results"]] == ["new", "join", "dedup", "new", "new"]
        assert r.json()["results"][4]["silenced"] is True
        resolved = [am("HighLatency", "api", "web1", status="resolved", ends=time.time())]
        httpx.post(srv.url + "/api/v1/alerts/alertmanager", json=payload(resolved, "resolved"),
                   headers=h)  # fmt: skip

        # a log burst on db1 (event times give the detector its history) ...
        now = time.time()
        lines = []
        for m in range(15, 1, -1):
            for k in range(2):
                lines.append({"message": f"checkpoint done in {m * 10 + k} ms", "host": "db1",
                              "timestamp": now - m * 60 + k})  # fmt: skip
        lines += [{"message": f"ERROR connection reset by peer 10.0.0.{i}", "host": "db1",
                   "timestamp": now - 90 + i * 0.1} for i in range(3)]  # fmt: skip
        for m in range(14, 2, -1):
            lines.append({"message": f"ERROR connection reset by peer 10.0.1.{m}", "host": "db1",
                          "timestamp": now - m * 60 + 5})  # fmt: skip
        lines += [{"message": f"ERROR connection reset by peer 10.0.2.{i}", "host": "db1",
                   "timestamp": now - 100 + i * 0.2} for i in range(60)]  # fmt: skip
        lines.append({"message": "checkpoint done in 5 ms", "host": "db1", "timestamp": now - 5})
        lines.sort(key=lambda x: x["timestamp"])
        body = "\n".join(json.dumps(x) for x in lines)
        r = httpx.post(srv.url + "/api/v1/logs", content=body,
                       headers={**h, "Content-Type": "application/x-ndjson"})  # fmt: skip
        assert r.json()["accepted"] == len(lines)
        # ... and a metric spike on db1
        t0 = now - 3 * 3600
        series = [{"name": "db_cpu_percent", "value": 20 + (i % 5), "timestamp": t0 + i * 10,
                   "labels": {"host": "db1"}} for i in range(1000)]  # fmt: skip
        httpx.post(srv.url + "/api/v1/metrics", json=series, headers=h, timeout=60)
        spike = [{"name": "db_cpu_percent", "value": 99, "timestamp": now - 2,
                  "labels": {"host": "db1"}}]  # fmt: skip
        assert (
            httpx.post(srv.url + "/api/v1/metrics", json=spike, headers=h).json()["anomalies"] == 1
        )

        incidents = httpx.get(srv.url + "/api/v1/incidents", headers=h).json()["incidents"]
        titles = sorted(i["title"] for i in incidents)
        assert len(incidents) == 3, titles  # api/web1, db/db1 (+ log burst + cpu), batch/w9
        db = next(i for i in incidents if "db1" in json.dumps(i["labels"]))
        names = {a["alert"]["name"] for a in db["alerts"]}
        assert {"ReplicaLag", "logs.frequency.burst", "metrics.detector.metric_anomaly"} <= names
        detail = httpx.get(srv.url + f"/api/v1/incidents/{db['id']}", headers=h).json()
        reasons = " | ".join(e["message"] for e in detail["timeline"])
        assert "db1" in reasons

        # notifications: grouped, the silenced one never sent, the flaky receiver retried
        api = next(i for i in incidents if "web1" in json.dumps(i["labels"]))
        wait_for(lambda: any(n["incident_id"] == api["id"] for n in good_handler.received))
        first = next(n for n in good_handler.received if n["incident_id"] == api["id"])
        assert first["severity"] == "critical"  # one grouped notification for both api alerts
        wait_for(lambda: flaky_handler.received)
        assert not any("w9" in json.dumps(n) for n in good_handler.received)
        assert flaky_handler.calls >= 3
        deliveries = wait_for(lambda: [
            d for d in httpx.get(srv.url + f"/api/v1/incidents/{db['id']}", headers=h)
            .json()["deliveries"] if d["receiver"] == "flaky"] or None)  # fmt: skip
        outcomes = [d["outcome"] for d in sorted(deliveries, key=lambda d: d["attempt"])]
        assert outcomes[:3] == ["retry", "retry", "delivered"], outcomes
    finally:
        srv.stop()
        good.shutdown()
        flaky.shutdown()


def test_accepted_alerts_survive_kill_9(tmp_path):
    import signal

    home = tmp_path / "home"
    srv = start_server(home, tmp_path)
    h = {"Authorization": f"Bearer {srv.admin_token}"}
    for i in range(20):
        r = httpx.post(srv.url + "/api/v1/alerts", headers=h,
                       json={"name": f"A{i}", "labels": {"service": f"s{i % 4}"}})  # fmt: skip
        assert r.status_code == 200
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(10)
    again = start_server(home, tmp_path)
    try:
        h = {"Authorization": f"Bearer {again.admin_token}"}
        body = httpx.get(again.url + "/api/v1/incidents", headers=h).json()
        assert body["total"] == 4
        assert sum(len(i["alerts"]) for i in body["incidents"]) == 20
        # correlation state was reloaded: a repeat joins its incident, no new one
        r = httpx.post(again.url + "/api/v1/alerts", headers=h,
                       json={"name": "A0", "labels": {"service": "s0"}})  # fmt: skip
        assert r.json()["results"][0]["action"] == "dedup"
    finally:
        again.stop()
