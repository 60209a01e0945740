"""Metric ingest over HTTP, validation, detection, forecasts."""

import json
import math
import time

from opsloop.store.telemetry import MetricSample


def auth(make_token, role="operator"):
    return {"Authorization": f"Bearer {make_token(role)}"}


def test_prometheus_text_with_counters_becomes_rates(client, make_token):
    h = {**auth(make_token), "Content-Type": "text/plain; version=0.0.4"}
    now = time.time()
    for i, total in enumerate((100, 160)):
        page = (
            "# TYPE http_requests_total counter\n"
            f'http_requests_total{{code="200"}} {total} {int((now - 60 + i * 30) * 1000)}\n'
            "# TYPE temp gauge\n"
            f"temp 21.5 {int((now - 60 + i * 30) * 1000)}\n"
            "bad line here\n"
        )
        r = client.post("/api/v1/metrics", content=page, headers=h)
        assert r.status_code == 200
    body = r.json()
    assert body["accepted"] == 3  # counter, rate, gauge
    assert body["rejected"][0]["sample"] == "line 5"
    names = client.get("/api/v1/metrics/names", headers=h).json()
    assert {"http_requests_total", "http_requests_per_s", "temp"} <= set(names)
    q = client.get("/api/v1/metrics/query?name=http_requests_per_s&since=5m&step=1m", headers=h)
    points = [p for s in q.json()["series"] for p in s["points"]]
    assert points and math.isclose(points[-1][1], 2.0)


def test_json_samples_bad_values_are_rejected_with_reasons(client, make_token):
    h = auth(make_token)
    now = time.time()
    samples = [
        {"name": "queue_depth", "value": 5, "labels": {"queue": "a"}},
        {"name": "queue_depth", "value": "NaN"},
        {"name": "queue_depth", "value": 1, "timestamp": now + 86400},
        {"name": "bad name!", "value": 1},
        {"name": "x", "value": 1, "colour": "red"},
        {"name": "x", "value": True},
    ]
    r = client.post("/api/v1/metrics", json={"samples": samples}, headers=h)
    assert r.status_code == 200
    out = r.json()
    assert out["accepted"] == 1
    reasons = " | ".join(x["reason"] for x in out["rejected"])
    assert len(out["rejected"]) == 5
    assert "future" in reasons and "unknown field" in reasons and "number" in reasons
    r = client.post(
        "/api/v1/metrics", content=b"[1,2", headers={**h, "Content-Type": "application/json"}
    )
    assert r.status_code == 400
    # NaN in Prometheus text is parsed, then refused before storage
    r = client.post(
        "/api/v1/metrics", content=b"temp NaN\n", headers={**h, "Content-Type": "text/plain"}
    )
    assert r.json()["accepted"] == 0 and r.json()["rejected"]


def test_series_browser_and_scores(client, make_token, platform):
    h = auth(make_token, "viewer")
    t0 = time.time() - 3600
    platform.metrics.ingest([MetricSample("lat", 10.0 + (i % 3), t0 + i * 10) for i in range(300)])
    rows = client.get("/api/v1/metrics/series", headers=h).json()["series"]
    (lat,) = [r for r in rows if r["name"] == "lat"]
    assert lat["samples"] == 300 and lat["last_score"] is not None
    scores = client.get("/api/v1/metrics/scores?name=lat&since=2h&step=5m", headers=h).json()
    values = [p[1] for s in scores["series"] for p in s["points"]]
    assert values and all(0.0 <= v <= 1.0 for v in values)


def test_spike_becomes_an_anomaly_record(client, make_token, platform):
    h = auth(make_token)
    t0 = time.time() - 3 * 3600
    samples = [MetricSample("api_latency_ms", 100.0 + (i % 5), t0 + i * 10, {"svc": "api"})
               for i in range(1000)]  # fmt: skip
    platform.metrics.ingest(samples)
    spike = [{"name": "api_latency_ms", "value": 5000.0, "timestamp": t0 + 10_010,
              "labels": {"svc": "api"}}]  # fmt: skip
    r = client.post("/api/v1/metrics", json=spike, headers=h)
    assert r.json()["anomalies"] == 1
    found = client.get("/api/v1/anomalies?source=metrics.detector", headers=h).json()["anomalies"]
    assert found and found[0]["details"]["name"] == "api_latency_ms"
    alarms = client.get("/api/v1/metrics/alarms?name=api_latency_ms&since=4h", headers=h).json()
    assert len(alarms["alarms"]) >= 1


def test_forecast_and_early_warning(client, make_token, platform):
    h = auth(make_token, "viewer")
    now = time.time()
    # disk filling 1 %/h from 50 % over the last 20 h: 95 % is ~25 h away
    start = now - 20 * 3600
    samples = [
        MetricSample("host_disk_percent", 50.0 + i / 12, start + i * 300, {"mount": "/"})
        for i in range(241)
    ]
    result = platform.metrics.ingest(samples)
    warnings = [a for a in result.anomalies if a.kind == "exhaustion_forecast"]
    # edge-triggered: once a day, not for every sample; again only as it becomes surer
    # (the 90 % interval's late end inside the horizon, then inside its first quarter)
    ranks = ["info", "warning", "error"]
    sev = [ranks.index(w.details["severity"]) for w in warnings]
    assert 1 <= len(warnings) <= 3 and sev == sorted(set(sev))
    assert warnings[-1].details["severity"] == "error"  # ~25 h away, a clean trend
    r = client.get(
        "/api/v1/metrics/forecast",
        params={"name": "host_disk_percent", "label": "mount=/", "threshold": 95, "horizon": "7d"},
        headers=h,
    )
    body = r.json()
    assert r.status_code == 200, body
    hours = (body["eta"] - now) / 3600
    assert 22 < hours < 28, hours
    assert body["eta_low"] <= body["eta"] <= (body["eta_high"] or math.inf)
    assert body["eta_source"] == "trend"  # a steady 1 %/h: the long fit answers
    assert len(body["band"]) == 48
    assert body["recent_band"] == []  # (only drawn when the last hour's pace answers)
    r = client.get("/api/v1/metrics/forecast?name=nothing&threshold=1", headers=h)
    assert r.status_code == 404
    json.dumps(body)
    assert body["direction"] == "up"


def test_a_fast_fill_forecast_carries_the_pace_it_was_read_from(client, make_token, platform):
    h = auth(make_token, "viewer")
    now = time.time()
    # two quiet hours at 60 %, then five minutes of 2 %/min (10-second samples): 95 % is
    # ~12 minutes away at this pace, days away for the three-day fit
    samples = [
        MetricSample(
            "host_disk_percent", 60.0 + 0.01 * (i % 3), now - 7500 + 10 * i, {"mount": "/x"}
        )
        for i in range(720)
    ]
    samples += [
        MetricSample("host_disk_percent", 60.0 + 2.0 * k / 6, now - 300 + 10 * k, {"mount": "/x"})
        for k in range(1, 31)
    ]
    platform.metrics.ingest(samples)
    params = {"name": "host_disk_percent", "label": "mount=/x", "threshold": 95, "horizon": "7d"}
    body = client.get("/api/v1/metrics/forecast", params=params, headers=h).json()
    assert body["eta_source"] == "recent", body.get("eta_source")
    minutes = (body["eta"] - now) / 60
    assert 8 < minutes < 16, minutes
    band = body["recent_band"]
    assert len(band) == 24 and band[-1][0] > body["eta"]  # drawn to past the crossing
    assert all(lo <= mean <= hi for _, mean, lo, hi in band)
    before = [p for p in band if p[0] <= body["eta"]]
    after = [p for p in band if p[0] > body["eta"]]
    assert before[-1][1] <= 95.0 + 1.0 and after[0][1] >= 95.0 - 1.0


def test_forecast_of_a_falling_series(client, make_token, platform):
    h = auth(make_token, "viewer")
    now = time.time()
    # certificate days left, falling a day per day (10 -> 9 over the last day): 7 is 2 days away
    samples = [
        MetricSample("cert_days_left", 10.0 - i * 600 / 86400, now - 86400 + i * 600, {"cn": "x"})
        for i in range(145)
    ]
    platform.metrics.ingest(samples)
    params = {"name": "cert_days_left", "label": "cn=x", "threshold": 7, "horizon": "7d"}
    r = client.get("/api/v1/metrics/forecast", params={**params, "direction": "down"}, headers=h)
    body = r.json()
    assert r.status_code == 200, body
    assert body["direction"] == "down"
    assert 1.8 < (body["eta"] - now) / 86400 < 2.2
    assert body["band"][-1][1] < 9.0  # the band falls
    up = client.get("/api/v1/metrics/forecast", params=params, headers=h).json()
    assert up["direction"] == "up" and up["eta"] is not None and up["eta"] <= now + 60  # "past 7"
    bad = client.get("/api/v1/metrics/forecast", params={**params, "direction": "x"}, headers=h)
    assert bad.status_code == 422
