"""`opsloop simulate`: scenarios, the estate, faults, the clock, exposition, senders, CLI."""

import doctest
import json
import math
import socket
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from opsloop.observe import prom_text
from opsloop.observe.sample_check import check_samples
from opsloop.observe.syslog_parse import parse_syslog
from opsloop.simulate import (
    FAULT_KINDS,
    FaultSpec,
    ScenarioError,
    Simulator,
    churn,
    clock,
    demo_settings_overrides,
    estate,
    exposition,
    load_scenario,
    parse_scenario,
    senders,
)
from opsloop.simulate.clock import SimClock
from opsloop.simulate.estate import Estate, EstateConfig, diurnal
from opsloop.simulate.exposition import ExpositionServer, render
from opsloop.simulate.senders import (
    HttpLogSender,
    MetricPusher,
    PredictionSender,
    SyslogSender,
    Transport,
)
from opsloop.simulate.signals import LogEvent, PredictionRequest, Sample
from opsloop.store.telemetry.metrics import MetricSample

NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("module", [churn, clock, estate, exposition, senders])
def test_doctests(module):
    assert doctest.testmod(module).failed == 0


# -- scenarios -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["demo", "quick"])
def test_builtin_scenarios_have_every_fault_kind(name):
    sc = load_scenario(name)
    assert {f.kind for f in sc.faults} == set(FAULT_KINDS)
    assert all(f.start_s + f.duration_s <= sc.duration_s for f in sc.faults)
    if name == "quick":
        assert math.isinf(sc.speed) and sc.duration_s <= 600
    else:
        assert (
            sc.speed == 60
            and max(f.start_s for f in sc.faults) - min(f.start_s for f in sc.faults) <= 30 * 60
        )


GOOD = """\
name: t
seed: 3
speed: 60
tick: 10s
duration: 20m
estate:
  heartbeat_every: 15s
  label_fraction: 0.25
faults:
  - kind: disk_fill
    target: db1
    start: 2m
    duration: 5m
    intensity: 1.5
  - kind: model_drift
    start: 90
"""


def test_parse_good_scenario():
    sc = parse_scenario(GOOD, "t.yaml")
    assert (sc.name, sc.seed, sc.speed, sc.tick_s, sc.duration_s) == ("t", 3, 60.0, 10.0, 1200.0)
    assert sc.estate.heartbeat_every_s == 15.0 and sc.estate.label_fraction == 0.25
    disk, drift = sc.faults
    assert (disk.kind, disk.target, disk.start_s, disk.duration_s, disk.intensity) == (
        "disk_fill", "db1", 120.0, 300.0, 1.5,
    )  # fmt: skip
    assert (drift.target, drift.start_s, drift.duration_s) == ("churn", 90.0, 900.0)


def test_duration_defaults_to_last_fault_end_plus_5m():
    sc = parse_scenario("faults:\n  - kind: error_burst\n    start: 1m\n    duration: 2m\n")
    assert sc.duration_s == 180 + 300 and sc.speed == 1.0


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("name: x\nspeed: 1\n  tick: 2\n", 3, "invalid YAML: mapping values are not allowed"),
        ("name: x\nspeed: [1\n", 3, "flow sequence started on line 2"),
        ("name: x\nsped: 60\n", 2, "unknown key 'sped' in the scenario"),
        (GOOD.replace("    intensity: 1.5", "    intesity: 1.5"), 14, "did you mean 'intensity'"),
        (GOOD.replace("  heartbeat_every: 15s", "  heartbeat: 15s"), 7, "unknown key 'heartbeat'"),
        ("name: x\nname: y\n", 2, "duplicate key 'name'"),
        (GOOD.replace("duration: 5m", "duration: 30m"), 10, "after the scenario's duration"),
        (GOOD.replace("target: db1", "target: churn"), 11, "disk_fill cannot target 'churn'"),
        (GOOD.replace("start: 2m", "start: soon"), 12, "not a duration"),
        (GOOD.replace("kind: disk_fill", "kind: meteor"), 10, "unknown fault kind 'meteor'"),
        (GOOD.replace("speed: 60", "speed: -1"), 3, "'speed' must be"),
        (GOOD.replace("tick: 10s", "tick: 1h"), 4, "'tick' must be between"),
        (GOOD.replace("intensity: 1.5", "intensity: 9"), 14, "between 0 and 5"),
        ("faults:\n  - kind: disk_fill\n", 2, "has no 'start'"),
        ("faults: 3\n", 1, "'faults' must be a list"),
        ("- 1\n- 2\n", 1, "must be a YAML mapping"),
    ],
)
def test_scenario_errors_name_the_line(text, line, needle):
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(text, "s.yaml")
    msg = str(exc.value)
    assert msg.startswith(f"s.yaml:{line}:"), msg
    assert needle in msg, msg


def test_load_scenario_file_and_missing(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("faults:\n  - kind: heartbeat_stop\n    start: 0\n")
    sc = load_scenario(p)
    assert sc.name == "mine" and sc.faults[0].target == "batch1"
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "nope.yaml")


# -- the estate ------------------------------------------------------------------------------


def _ticks(seed, start=NOON, n=30, dt=10.0, config=None):
    e = Estate(config or EstateConfig(), seed, start)
    outs = []
    for i in range(n):
        t0 = start + i * dt
        outs.append(e.tick(t0, t0 + dt, e.new_effects()))
    return outs


def _dump(outs):
    return [
        ([(x.ts, x.host, x.app, x.message) for x in o.logs],
         [(s.name, s.value, s.ts, sorted(s.labels.items())) for s in o.samples],
         [(p.ts, p.record, p.label) for p in o.predictions])
        for o in outs
    ]  # fmt: skip


def test_generation_is_deterministic_with_a_seed():
    assert _dump(_ticks(5)) == _dump(_ticks(5))
    assert _dump(_ticks(5)) != _dump(_ticks(6))


def test_logs_look_real_and_stay_inside_their_tick():
    outs = _ticks(2, n=120)
    lines = [x for o in outs for x in o.logs]
    text = "\n".join(x.message for x in lines)
    assert '"GET /api/v1/' in text and " rt=" in text  # nginx access
    assert "LOG:  checkpoint starting: time" in text and "checkpoint complete" in text
    assert "(billing) CMD (/opt/billing/bin/export" in text and "export finished" in text
    assert "heartbeat seq=" in text
    assert {x.channel for x in lines if x.host == "web1"} == {"http"}
    assert {x.channel for x in lines if x.host != "web1"} == {"syslog"}
    for i, o in enumerate(outs):
        t0 = NOON + i * 10.0
        assert all(t0 <= x.ts < t0 + 10.0 for x in o.logs)
        assert all(s.ts == t0 + 10.0 for s in o.samples)


def _series(outs, name, **labels):
    return np.array([
        s.value for o in outs for s in o.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ])  # fmt: skip


def test_daily_cycle_is_visible():
    midnight = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
    quiet = EstateConfig(access_log_sample=0.0, predictions_per_minute=0.0)
    outs = _ticks(1, start=midnight, n=144, dt=600.0, config=quiet)  # a day in 10-minute ticks
    rps = _series(outs, "http_requests_per_second")
    cpu = _series(outs, "host_cpu_percent", host="web1")
    at4, at16 = 4 * 6 - 1, 16 * 6 - 1  # samples stamped 04:00 and 16:00
    assert rps[at16] > 3 * rps[at4]
    assert cpu[at16] > cpu[at4] + 30
    assert diurnal(midnight + 4 * 3600) == 0.0 and diurnal(midnight + 16 * 3600) == 1.0
    assert np.std(np.diff(rps)) > 0  # noisy, not a pure curve


def test_generated_samples_pass_opsloops_sample_checks():
    outs = _ticks(3, start=NOON, n=3)
    samples = [MetricSample(s.name, s.value, s.ts, s.labels) for o in outs for s in o.samples]
    ok, bad = check_samples(samples, now=NOON + 60)
    assert bad == [] and len(ok) == len(samples)


# -- faults ----------------------------------------------------------------------------------


def _fault_run(kind, target, *, intensity=1.0, tick=10):
    text = (
        f"seed: 4\nspeed: max\ntick: {tick}s\nduration: 15m\n"
        f"estate:\n  heartbeat_every: 20s\n  predictions_per_minute: 60\n"
        f"faults:\n  - kind: {kind}\n    target: {target}\n    start: 5m\n    duration: 5m\n"
        f"    intensity: {intensity}\n"
    )
    sim = Simulator(parse_scenario(text), start=NOON - 3600, wall=lambda: NOON)
    outs = []
    sim.run(on_tick=outs.append)
    n = 300 // tick  # ticks per phase: before, during, after
    return sim, outs[:n], outs[n : 2 * n], outs[2 * n :]


def _lines(outs, needle, host=None):
    return [x for o in outs for x in o.logs if needle in x.message and host in (None, x.host)]


def test_memory_leak_ramps_to_oom_then_restarts():
    sim, before, during, after = _fault_run("memory_leak", "web1")
    mem = _series(during, "host_memory_percent", host="web1")
    base = _series(before, "host_memory_percent", host="web1").mean()
    peak = int(np.argmax(mem))
    assert mem[peak] > 90 and base < 60
    assert np.corrcoef(np.arange(peak + 1), mem[: peak + 1])[0, 1] > 0.95  # a ramp
    assert mem[peak + 1] < base + 10  # the OOM kill frees it
    oom = _lines(during, "Out of memory: Killed process", "web1")
    assert len(oom) == 1 and "(gunicorn)" in oom[0].message and oom[0].app == "kernel"
    assert _lines(during, "Started shop-api.service")
    assert _series(after, "host_memory_percent", host="web1").max() < base + 10
    events = sim.ground_truth["faults"][0]["events"]
    assert [e["event"] for e in events] == ["oom_kill"]


def test_disk_fill_rises_steadily_and_is_cleaned_up():
    _, before, during, after = _fault_run("disk_fill", "db1")
    disk = _series(during, "host_disk_percent", host="db1")
    base = _series(before, "host_disk_percent", host="db1").mean()
    assert disk[0] < base + 5 and disk[-1] > 97
    assert np.all(np.diff(disk) > -0.2)  # steady: never drops beyond the noise
    assert np.corrcoef(np.arange(len(disk)), disk)[0, 1] > 0.99
    assert _lines(during, "No space left on device", "db1")
    assert not _lines(before + after, "No space left on device")
    assert _lines(during[-1:], "logrotate: cleanup")  # at the fault's end
    assert abs(_series(after, "host_disk_percent", host="db1").mean() - base) < 1


def test_error_burst_follows_a_deploy():
    _, before, during, after = _fault_run("error_burst", "web1")
    deploy = _lines(during, "deploy: shop-api 2.14.3 -> 2.15.0")
    assert len(deploy) == 1
    errors = _lines(during, "KeyError: 'customer_id'")
    assert len(errors) > 20 and min(x.ts for x in errors) >= deploy[0].ts
    assert not _lines(before + after, "KeyError")
    ratio = _series(during, "http_error_ratio")
    assert ratio.mean() > 20 * _series(before, "http_error_ratio").mean()
    status_5xx = [x for o in during for x in o.logs if x.app == "nginx" and '" 50' in x.message]
    assert len(status_5xx) >= 5
    assert _lines(during[-1:], "rolled back 2.15.0 -> 2.14.3")


def test_heartbeat_stops_and_resumes():
    _, before, during, after = _fault_run("heartbeat_stop", "batch1")
    assert _lines(during, "heartbeat", "batch1") == _lines(during, "agent restarted", "batch1")
    assert _lines(before, "heartbeat seq=", "batch1")
    assert _series(during, "heartbeat_timestamp_seconds", host="batch1").size == 0
    assert _series(during, "heartbeat_timestamp_seconds", host="web1").size == len(during)
    age = _series(during, "heartbeat_age_seconds", host="batch1")
    assert age[-1] > 270 and np.all(np.diff(age) > 0)
    assert _series(before, "heartbeat_age_seconds", host="batch1").max() <= 30
    assert len(_lines(during[-1:], "agent restarted after", "batch1")) == 1
    assert _lines(after, "heartbeat seq=", "batch1")


def test_latency_regression_triples_p95():
    _, before, during, _ = _fault_run("latency_regression", "web1")
    name = "http_request_duration_p95_seconds"
    ratio = _series(during, name).mean() / _series(before, name).mean()
    assert 2.5 < ratio < 3.5


def test_latency_regression_on_the_database_slows_queries():
    _, before, during, _ = _fault_run("latency_regression", "db1")
    name = "db_query_duration_p95_seconds"
    assert _series(during, name).mean() > 2.5 * _series(before, name).mean()
    assert len(_lines(during, "LOG:  duration:")) > len(_lines(before, "LOG:  duration:"))


def test_model_drift_shifts_the_tenure_mean():
    _, before, during, after = _fault_run("model_drift", "churn")

    def tenure(outs):
        return np.array([p.record["tenure"] for o in outs for p in o.predictions])

    base, drifted = tenure(before), tenure(during)
    assert len(base) > 100 and len(drifted) > 100
    shift = (drifted.mean() - base.mean()) / churn.TENURE_SD
    assert 2.5 < shift < 3.5
    assert abs(tenure(after).mean() - base.mean()) < 0.5 * churn.TENURE_SD


def test_inject_on_demand_starts_at_the_next_step():
    sim = Simulator(load_scenario("quick"), start=NOON - 3600, wall=lambda: NOON)
    for _ in range(3):
        sim.step()
    entry = sim.inject(FaultSpec("error_burst", "web1", 0.0, 20.0))
    assert entry["origin"] == "inject" and entry["offset_s"] == 15.0
    out = sim.step()
    assert any("deploy: shop-api" in x.message for x in out.logs)
    truth = sim.ground_truth["faults"][-1]
    assert truth["start"] == NOON - 3600 + 15.0 and truth["status"] == "active"


def test_unknown_inject_is_refused():
    sim = Simulator(load_scenario("quick"))
    with pytest.raises(ValueError, match="unknown fault kind"):
        sim.inject("meteor")
    with pytest.raises(ValueError, match="cannot target"):
        sim.inject("error_burst", "db1")


# -- the clock -------------------------------------------------------------------------------


class FakeTime:
    def __init__(self, now):
        self.now = now
        self.slept = 0.0

    def wall(self):
        return self.now

    def sleep(self, s):
        assert s > 0
        self.now += s
        self.slept += s


def test_clock_anchor_and_pacing():
    ft = FakeTime(10_000.0)
    c = SimClock(speed=60.0, span_s=600.0, wall=ft.wall, sleep=ft.sleep)
    assert c.start == 10_000.0 - 590.0
    c.wait_until(c.start + 300.0)
    assert ft.now == pytest.approx(10_005.0)  # 300 simulated s = 5 real s
    c.wait_until(c.start + 900.0)  # past the span: real time
    assert ft.now >= c.start + 900.0


@pytest.mark.parametrize("speed", [60.0, math.inf, 1.0])
def test_accelerated_clock_never_produces_future_timestamps(speed):
    ft = FakeTime(NOON)
    sim = Simulator(load_scenario("quick"), speed=speed, wall=ft.wall, sleep=ft.sleep)
    latest = []

    def check(out):
        stamps = [x.ts for x in out.logs] + [s.ts for s in out.samples]
        stamps += [p.ts for p in out.predictions]
        latest.append(max(stamps))
        assert max(stamps) <= ft.now

    until = 360.0 if speed == 1.0 else 720.0  # twice the planned span: goes on at real time
    sim.run(until=until, on_tick=check)
    assert len(latest) == until / 5
    if speed != 1.0:
        assert sim.clock.start < NOON - 300  # back-filled
        assert ft.slept >= 360 - 1  # the second half waited for the wall clock
    else:
        assert ft.slept == pytest.approx(360.0, abs=1)


# -- exposition ------------------------------------------------------------------------------


def test_exposition_serves_parseable_prometheus_text():
    outs = _ticks(9, n=2)
    weird = Sample("host_cpu_percent", 1.5, NOON, {"host": 'we"b\\1\nx'})
    with ExpositionServer(port=0, help_texts=estate.METRIC_HELP) as srv:
        srv.update([*outs[-1].samples, weird])
        r = httpx.get(srv.url, timeout=5)
        assert httpx.get(srv.url.replace("/metrics", "/nope"), timeout=5).status_code == 404
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    parsed = prom_text.parse(r.text, openmetrics=False)
    assert parsed.errors == []
    assert {f.type for f in parsed.families} == {"gauge"}
    assert parsed.family("host_disk_percent").help == estate.METRIC_HELP["host_disk_percent"]
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in parsed.samples}
    for s in outs[-1].samples:
        assert got[(s.name, tuple(sorted(s.labels.items())))] == pytest.approx(s.value)
    assert got[("host_cpu_percent", (("host", 'we"b\\1\nx'),))] == 1.5
    assert all(s.timestamp_s is None for s in parsed.samples)
    stamped = prom_text.parse(render(outs[-1].samples, with_timestamps=True))
    assert {s.timestamp_s for s in stamped.samples} == {NOON + 20.0}


# -- senders ---------------------------------------------------------------------------------


class FakeOpsloop:
    """A stdlib HTTP server that records requests and answers from a script."""

    def __init__(self):
        self.requests = []
        self.script = {}  # path prefix -> list of statuses to answer first
        self.role = "operator"
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                status, answer = 404, {"detail": "Not Found"}
                if self.path == "/api/health":
                    status, answer = 200, {"status": "ok"}
                elif self.path == "/api/v1/me":
                    ok = self.headers.get("Authorization") == "Bearer tok-123"
                    status, answer = (200, {"role": outer.role}) if ok else (401, {})
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append((self.path, dict(self.headers), body))
                status, answer = 200, {}
                for prefix, statuses in outer.script.items():
                    if self.path.startswith(prefix) and statuses:
                        status = statuses.pop(0)
                if "/predict" in self.path and status == 200:
                    answer = {"predictions": [0], "request_id": self.headers["X-Request-ID"]}
                if status >= 400:
                    answer = {"detail": f"status {status}"}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def paths(self, prefix):
        return [r for r in self.requests if r[0].startswith(prefix)]


def _transport(url, problems=None, slept=None):
    return Transport(
        url, "tok-123", sleep=(slept.append if slept is not None else lambda s: None),
        on_problem=(problems.append if problems is not None else lambda m: None),
    )  # fmt: skip


def test_senders_post_the_right_payloads_with_auth():
    ev = LogEvent(NOON, "web1", "nginx", "info", 'GET "/x" 200', "http", pid=7)
    with FakeOpsloop() as fake:
        tr = _transport(fake.url)
        HttpLogSender(tr).send([ev, ev])
        MetricPusher(tr).send([Sample("host_cpu_percent", 3.5, NOON, {"host": "web1"})])
        ps = PredictionSender(tr, "churn")
        rec = churn.customers(np.random.default_rng(0), 1)[0]
        rid = ps.predict(PredictionRequest(NOON, rec, 1), "sim-1-1")
        ps.labels([(rid, 1)])
        tr.close()
    assert rid == "sim-1-1"
    for _path, headers, _body in fake.requests:
        assert headers["Authorization"] == "Bearer tok-123"
    ((path, headers, body),) = fake.paths("/api/v1/logs")
    assert path == "/api/v1/logs?source=simulate"
    assert headers["Content-Type"] == "application/x-ndjson"
    lines = [json.loads(x) for x in body.decode().splitlines()]
    assert lines[0] == {
        "message": 'GET "/x" 200',
        "timestamp": NOON,
        "host": "web1",
        "level": "info",
        "source": "web1/nginx",
        "service": "nginx",
        "pid": 7,
    }
    ((_, headers, body),) = fake.paths("/api/v1/metrics")
    assert json.loads(body) == {
        "samples": [
            {
                "name": "host_cpu_percent",
                "value": 3.5,
                "timestamp": NOON,
                "labels": {"host": "web1"},
            }
        ]
    }
    ((_, headers, body),) = fake.paths("/api/v1/models/churn/predict")
    assert json.loads(body) == {"records": [rec]} and headers["X-Request-ID"] == "sim-1-1"
    ((_, _, body),) = fake.paths("/api/v1/models/churn/labels")
    assert json.loads(body) == {"labels": [{"request_id": "sim-1-1", "label": 1}]}
    assert tr.report()["logs"]["items"] == 2


def test_retries_with_backoff_then_succeeds():
    slept = []
    with FakeOpsloop() as fake:
        fake.script["/api/v1/metrics"] = [503, 503]
        tr = _transport(fake.url, slept=slept)
        MetricPusher(tr).send([Sample("a", 1.0, NOON)])
    assert len(fake.paths("/api/v1/metrics")) == 3
    assert slept == [0.25, 0.5]
    st = tr.report()["metrics"]
    assert st["items"] == 1 and st["failed"] == 0 and st["statuses"] == {"200": 1, "503": 2}


def test_a_4xx_is_reported_once_never_raised_nor_retried():
    problems = []
    with FakeOpsloop() as fake:
        fake.script["/api/v1/logs"] = [422, 422]
        fake.script["/api/v1/models/churn/predict"] = [404]
        tr = _transport(fake.url, problems=problems)
        ev = LogEvent(NOON, "web1", "app", "info", "x")
        HttpLogSender(tr).send([ev])
        HttpLogSender(tr).send([ev])
        ps = PredictionSender(tr, "churn")
        req = PredictionRequest(NOON, {"tenure": 1}, 0)
        assert ps.predict(req, "r1") is None
        assert ps.predict(req, "r2") is None  # paused after a 404: not even sent
    assert len(fake.paths("/api/v1/logs")) == 2
    assert len(fake.paths("/api/v1/models")) == 1
    assert len(problems) == 2
    assert "answered 422" in problems[0] and "answered 404" in problems[1]
    rep = tr.report()
    assert rep["logs"]["rejected_items"] == 2 and rep["predict"]["dropped"] == 1


def test_unavailable_opsloop_pauses_and_drops():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: connection refused
    problems, slept = [], []
    tr = _transport(f"http://127.0.0.1:{port}", problems=problems, slept=slept)
    pusher = MetricPusher(tr)
    pusher.send([Sample("a", 1.0, NOON)])
    pusher.send([Sample("a", 1.0, NOON)])
    tr.close()
    st = tr.report()["metrics"]
    assert st["failed"] == 1 and st["dropped"] == 1 and len(slept) == 3
    assert len(problems) == 1 and "unavailable" in problems[0]


def test_syslog_sender_writes_rfc5424_that_opsloop_parses():
    ev = LogEvent(NOON + 0.25, "db1", "postgres", "warning", "LOG:  duration: 1.0 ms",
                  "syslog", "local0", 4242)  # fmt: skip
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(5)
        tx = SyslogSender("127.0.0.1", rx.getsockname()[1], "udp")
        tx.send([ev])
        data = rx.recv(65535)
        tx.close()
    line = parse_syslog(data.decode(), now=NOON)
    assert line.timestamp == pytest.approx(NOON + 0.25)
    assert (line.host, line.level, line.text) == ("db1", "warning", "LOG:  duration: 1.0 ms")
    assert line.fields["appname"] == "postgres" and line.fields["procid"] == "4242"


def test_syslog_tcp_uses_octet_counting():
    from opsloop.observe.syslog_server import TcpFramer

    ev = LogEvent(NOON, "batch1", "CRON", "info", "(billing) CMD (x)", "syslog", "cron", 9)
    with socket.create_server(("127.0.0.1", 0)) as srv:
        tx = SyslogSender("127.0.0.1", srv.getsockname()[1], "tcp")
        tx.send([ev, ev])
        conn, _ = srv.accept()
        conn.settimeout(5)
        data = b""
        while data.count(b"<78>") < 2:
            data += conn.recv(65535)
        conn.close()
        tx.close()
    frames = TcpFramer().feed(data)
    assert len(frames) == 2 and frames[0].startswith(b"<78>1 ")


def test_simulator_ships_everything_and_writes_ground_truth(tmp_path):
    gt = tmp_path / "ground_truth.json"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, FakeOpsloop() as fake:
        rx.bind(("127.0.0.1", 0))
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sim = Simulator(
            load_scenario("quick"), transport=_transport(fake.url),
            syslog_port=rx.getsockname()[1], ground_truth_path=gt,
        )  # fmt: skip
        injected = sim.inject("disk_fill", "web1", duration_s=60, at_s=30)
        report = sim.run()
        sim.close()
        rx.settimeout(0.5)
        datagrams = []
        try:
            while True:
                datagrams.append(rx.recv(65535).decode())
        except TimeoutError:
            pass
    assert report["ticks"] == 72
    logs = [json.loads(x) for _, _, b in fake.paths("/api/v1/logs") for x in b.splitlines()]
    assert {x["host"] for x in logs} == {"web1"}  # db1 and batch1 went to syslog
    assert {parse_syslog(d).host for d in datagrams} == {"db1", "batch1"}
    assert len(fake.paths("/api/v1/metrics")) == 72
    assert fake.paths("/api/v1/models/churn/predict") and fake.paths("/api/v1/models/churn/labels")
    label_ids = {x["request_id"] for _, _, b in fake.paths("/api/v1/models/churn/labels")
                 for x in json.loads(b)["labels"]}  # fmt: skip
    sent_ids = {h["X-Request-ID"] for _, h, _ in fake.paths("/api/v1/models/churn/predict")}
    assert label_ids and label_ids <= sent_ids
    truth = json.loads(gt.read_text())
    assert [f["kind"] for f in truth["faults"]][:6] == [f.kind for f in sim.scenario.faults]
    assert injected["origin"] == "inject"
    for f in truth["faults"]:
        assert f["status"] == "done"
        assert f["start"] == pytest.approx(truth["sim_start"] + f["offset_s"], abs=5)
        assert f["end"] - f["start"] == f["duration_s"]
        assert f["sent_at"] is not None and f["signals"]
    leak = next(f for f in truth["faults"] if f["kind"] == "memory_leak")
    assert leak["host"] == "web1" and leak["service"] == "shop-api"
    assert any(e["event"] == "oom_kill" for e in leak["events"])
    drift = next(f for f in truth["faults"] if f["kind"] == "model_drift")
    assert drift["host"] is None and drift["service"] == "model"


# -- CLI and the demo ------------------------------------------------------------------------


def test_cli_faults_validate_and_dry_run(tmp_path):
    from opsloop.commands.simulate import app

    runner = CliRunner()
    r = runner.invoke(app, ["faults"])
    assert r.exit_code == 0 and all(k in r.output for k in FAULT_KINDS)
    r = runner.invoke(app, ["validate", "quick"])
    assert r.exit_code == 0 and "ok: quick" in r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("speed: 2\nfaults:\n  - kind: disk_fill\n    strt: 1m\n")
    r = runner.invoke(app, ["validate", str(bad)])
    assert r.exit_code == 2 and f"{bad}:4: unknown key 'strt'" in r.output
    gt = tmp_path / "gt.json"
    r = runner.invoke(app, ["--scenario", "quick", "--dry-run", "--quiet", "--ground-truth",
                            str(gt), "--inject", "heartbeat_stop", "--target", "web1",
                            "--inject-at", "5m", "--inject-duration", "2m"])  # fmt: skip
    assert r.exit_code == 0, r.output
    truth = json.loads(gt.read_text())
    assert truth["faults"][-1]["kind"] == "heartbeat_stop"
    assert truth["faults"][-1]["status"] == "done"  # the run went on until it ended (7 min)
    assert truth["sim_now"] - truth["sim_start"] == pytest.approx(420)
    r = runner.invoke(app, ["--scenario", "quick", "--speed", "fast", "--dry-run"])
    assert r.exit_code == 2 and "--speed" in r.output


def test_cli_needs_a_token(tmp_path, monkeypatch):
    from opsloop.commands.simulate import app

    monkeypatch.delenv("OPSLOOP_TOKEN", raising=False)
    monkeypatch.setenv("OPSLOOP_HOME", str(tmp_path / "nohome"))
    r = CliRunner().invoke(app, ["--scenario", "quick"])
    assert r.exit_code == 2 and "no API token" in r.output


def test_demo_settings_overrides_are_valid_settings(tmp_path):
    from opsloop.config import Settings

    for overrides in (demo_settings_overrides(), demo_settings_overrides(exposition_port=9464)):
        s = Settings(home=tmp_path, **overrides)
        assert s.logs.syslog_udp_port == 5514
    assert Settings(home=tmp_path, **demo_settings_overrides(exposition_port=9464)).metrics.scrape


def test_preflight_checks_reachability_token_and_role():
    with FakeOpsloop() as fake:
        assert _transport(fake.url).preflight() is None
        bad = Transport(fake.url, "wrong")
        assert "refused the token" in bad.preflight()
        fake.role = "viewer"
        assert "needs operator or admin" in _transport(fake.url).preflight()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert "cannot reach opsloop" in _transport(f"http://127.0.0.1:{port}").preflight()


def test_cli_runs_a_scenario_against_opsloop(tmp_path, monkeypatch):
    from opsloop.commands.simulate import app

    monkeypatch.setenv("OPSLOOP_TOKEN", "tok-123")
    gt = tmp_path / "gt.json"
    with FakeOpsloop() as fake:
        r = CliRunner().invoke(app, ["-s", "quick", "--url", fake.url, "--ground-truth", str(gt)])
        assert r.exit_code == 0, r.output
        assert len(fake.paths("/api/v1/metrics")) == 72 and fake.paths("/api/v1/logs")
        assert '"ticks": 72' in r.output and "ground truth:" in r.output
        monkeypatch.setenv("OPSLOOP_TOKEN", "wrong")
        r = CliRunner().invoke(app, ["-s", "quick", "--url", fake.url])
        assert r.exit_code == 2 and "refused the token" in r.output
    truth = json.loads(gt.read_text())
    assert len(truth["faults"]) == 6 and truth["speed"] == "max"
