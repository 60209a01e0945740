"""The simulated estate: three hosts, their services and a served model, tick by tick.

* ``web1`` runs nginx in front of ``shop-api`` (a Python web app); it ships its logs over HTTP.
* ``db1`` runs PostgreSQL; it ships its logs over syslog.
* ``batch1`` runs ``billing-export`` from cron; it ships its logs over syslog.
* every host runs ``opsagent``, whose heartbeat line and metric arrive every few seconds.
* ``churn`` is the model the shop scores its customers with (prediction traffic).

:meth:`Estate.tick` advances from ``t0`` to ``t1`` (simulated epoch seconds) and returns the log
lines written in between (timestamps inside ``[t0, t1)``), one metric sample per series stamped
``t1`` and the model requests of the interval. Load follows a daily cycle (lowest at 04:00 UTC,
highest at 16:00 UTC) with noise, all drawn from one seeded generator, so a seed and a start time
give the same output. Faults act through :class:`Effects`, which they fill before each tick.

Metrics (all gauges; ``host`` label on each):

``host_cpu_percent``, ``host_memory_percent``, ``host_disk_percent{mount}``,
``http_requests_per_second{service}``, ``http_request_duration_p95_seconds{service}``,
``http_error_ratio{service}`` (web1), ``db_connections{service}``,
``db_query_duration_p95_seconds{service}`` (db1), ``job_queue_depth{task}`` (batch1),
``heartbeat_timestamp_seconds{service}`` (absent while the heartbeat is stopped) and
``heartbeat_age_seconds{service}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from opsloop.simulate import churn, loglines
from opsloop.simulate.signals import LogEvent, PredictionRequest, Sample

METRIC_HELP = {
    "host_cpu_percent": "CPU busy, percent.",
    "host_memory_percent": "Memory in use, percent.",
    "host_disk_percent": "File system space in use, percent.",
    "http_requests_per_second": "HTTP requests served per second.",
    "http_request_duration_p95_seconds": "95th percentile of HTTP request time, seconds.",
    "http_error_ratio": "Share of HTTP responses with a 5xx status.",
    "db_connections": "Open database connections.",
    "db_query_duration_p95_seconds": "95th percentile of query time, seconds.",
    "job_queue_depth": "Items waiting for the batch job.",
    "heartbeat_timestamp_seconds": "Time of the agent's last heartbeat, epoch seconds.",
    "heartbeat_age_seconds": "Seconds since the agent's last heartbeat.",
}
DAY_S = 86400.0


@dataclass(frozen=True)
class EstateConfig:
    """Knobs of the estate (the ``estate:`` section of a scenario)."""

    requests_per_s: float = 40.0
    """HTTP requests per second on web1 at the daily peak."""
    access_log_sample: float = 0.05
    """Share of requests written to the access log shipped to opsloop."""
    heartbeat_every_s: float = 30.0
    batch_every_s: float = 900.0
    predictions_per_minute: float = 12.0
    """Scoring requests to the model per simulated minute at the daily peak."""
    label_delay_s: float = 300.0
    """Simulated seconds between a prediction and its delayed label."""
    label_fraction: float = 0.5
    """Share of predictions that get a label later."""
    model: str = "churn"


@dataclass(frozen=True)
class HostSpec:
    """What a host is: role, how it ships logs, its main service and resource baselines."""

    name: str
    role: str
    channel: str
    service: str
    process: str
    unit: str
    unit_description: str
    uid: int
    mount: str
    cpu_base: float
    mem_base: float
    disk_base: float


HOSTS: tuple[HostSpec, ...] = (
    HostSpec("web1", "web", "http", "shop-api", "gunicorn", "shop-api.service", "Shop API",
             33, "/", 6.0, 46.0, 41.0),
    HostSpec("db1", "db", "syslog", "postgres", "postgres", "postgresql.service",
             "PostgreSQL database server", 111, "/var/lib/postgresql", 5.0, 58.0, 62.0),
    HostSpec("batch1", "batch", "syslog", "billing-export", "python3", "billing-export.service",
             "Billing export", 1001, "/srv/export", 3.0, 32.0, 55.0),
)  # fmt: skip
HOST_NAMES = tuple(h.name for h in HOSTS)


@dataclass
class Effects:
    """What active faults do to one host during a tick (reset before every tick)."""

    mem_extra: float = 0.0
    disk_extra: float = 0.0
    latency_factor: float = 1.0
    error_extra: float = 0.0
    heartbeat_stopped: bool = False
    deploy_version: str | None = None


@dataclass
class HostState:
    """A host's live state between ticks."""

    spec: HostSpec
    pid: int
    agent_pid: int
    booted_at: float
    last_heartbeat: float
    heartbeat_seq: int = 0
    restarts: int = 0
    queue: float = 0.0
    job_until: float = -math.inf
    job_run: str = ""
    job_started: float = 0.0
    job_rows: int = 0
    checkpoint_done_at: float = math.inf


def diurnal(t: float) -> float:
    """Daily load shape in [0, 1]: 0 at 04:00 UTC, 1 at 16:00 UTC.

    >>> diurnal(4 * 3600.0), diurnal(16 * 3600.0)
    (0.0, 1.0)
    """
    hour = (t % DAY_S) / 3600.0
    return 0.5 - 0.5 * math.cos(2.0 * math.pi * (hour - 4.0) / 24.0)


@dataclass
class TickOutput:
    """What one tick produced."""

    logs: list[LogEvent] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    predictions: list[PredictionRequest] = field(default_factory=list)


class Estate:
    """The hosts' and the model's state, advanced tick by tick from one seeded generator."""

    def __init__(self, config: EstateConfig, seed: int, start: float) -> None:
        self.config = config
        self.rng = np.random.default_rng(seed)
        self.hosts: dict[str, HostState] = {}
        for i, spec in enumerate(HOSTS):
            self.hosts[spec.name] = HostState(
                spec=spec,
                pid=int(self.rng.integers(1200, 30000)),
                agent_pid=900 + i,
                booted_at=start - float(self.rng.uniform(3, 40)) * DAY_S,
                last_heartbeat=start,
            )
        self.hosts["batch1"].queue = float(self.rng.uniform(50, 200))
        self.model_shift_sigma = 0.0
        self._next_heartbeat = {name: start + float(self.rng.uniform(0, 5)) for name in self.hosts}
        period = config.batch_every_s
        self._next_batch = start + period - (start % period)
        self._next_checkpoint = start + 300.0 - (start % 300.0)

    # -- helpers used by faults ----------------------------------------------------------------

    def event(
        self, host: str, app: str, level: str, message: str, ts: float, *,
        facility: str = "daemon", pid: int | None = None,
    ) -> LogEvent:  # fmt: skip
        """A log event of ``host``, on the host's channel."""
        return LogEvent(ts, host, app, level, message, self.hosts[host].spec.channel, facility, pid)

    def restart_main(self, host: str, ts: float) -> list[LogEvent]:
        """The main service of ``host`` restarts (systemd); a new pid."""
        h = self.hosts[host]
        h.restarts += 1
        h.pid = int(self.rng.integers(1200, 30000))
        spec = h.spec
        return [
            self.event(host, "systemd", "notice", loglines.systemd_restart(spec.unit, h.restarts),
                       ts, pid=1),
            self.event(host, "systemd", "info",
                       loglines.systemd_started(spec.unit, spec.unit_description), ts + 0.3, pid=1),
        ]  # fmt: skip

    def new_effects(self) -> dict[str, Effects]:
        """Fresh, neutral effects for every host."""
        return {name: Effects() for name in self.hosts}

    # -- one tick ------------------------------------------------------------------------------

    def tick(self, t0: float, t1: float, effects: dict[str, Effects]) -> TickOutput:
        """Advance from ``t0`` to ``t1``: logs within ``[t0, t1)``, samples at ``t1``."""
        out = TickOutput()
        load = diurnal(t1)
        self._web(out, t0, t1, load, effects["web1"], effects["db1"].latency_factor)
        self._db(out, t0, t1, load, effects["db1"])
        self._batch(out, t0, t1, load, effects["batch1"])
        for name, h in self.hosts.items():
            self._resources(out, h, t1, load, effects[name])
            self._heartbeat(out, h, t0, t1, load, effects[name])
        self._predictions(out, t0, t1, load)
        out.logs.sort(key=lambda e: e.ts)
        return out

    def _at(self, t0: float, t1: float, n: int) -> list[float]:
        return sorted(float(x) for x in self.rng.uniform(t0, t1, n))

    def _sample(self, out: TickOutput, name: str, value: float, ts: float, **labels: str) -> None:
        out.samples.append(Sample(name, round(float(value), 6), ts, labels))

    def _resources(
        self, out: TickOutput, h: HostState, t1: float, load: float, fx: Effects
    ) -> None:
        spec, rng = h.spec, self.rng
        busy = {"web": 55.0 * load, "db": 38.0 * load, "batch": 0.0}[spec.role]
        if spec.role == "batch" and t1 < h.job_until:
            busy = 65.0
        if fx.latency_factor > 1.0 and spec.role == "db":
            busy += 15.0 * (fx.latency_factor - 1.0)
        cpu = spec.cpu_base + busy + rng.normal(0.0, 2.0)
        mem = spec.mem_base + 6.0 * load + rng.normal(0.0, 0.5) + fx.mem_extra
        growth = 0.2 * ((t1 - h.booted_at) % (30 * DAY_S)) / DAY_S  # slow, until a cleanup
        disk = spec.disk_base + growth + rng.normal(0.0, 0.03) + fx.disk_extra
        self._sample(out, "host_cpu_percent", min(max(cpu, 0.0), 100.0), t1, host=spec.name)
        self._sample(out, "host_memory_percent", min(max(mem, 0.0), 100.0), t1, host=spec.name)
        self._sample(out, "host_disk_percent", min(max(disk, 0.0), 100.0), t1,
                     host=spec.name, mount=spec.mount)  # fmt: skip

    def _web(
        self, out: TickOutput, t0: float, t1: float, load: float, fx: Effects, db_factor: float
    ) -> None:
        rng, cfg, dt = self.rng, self.config, t1 - t0
        rps = cfg.requests_per_s * (0.2 + 0.8 * load) * (1.0 + rng.normal(0.0, 0.04))
        rps = max(rps, 0.0)
        factor = fx.latency_factor * (1.0 + 0.5 * (db_factor - 1.0))
        p95 = (0.12 + 0.08 * load) * factor * math.exp(rng.normal(0.0, 0.06))
        errors = 0.002 * math.exp(rng.normal(0.0, 0.25)) + fx.error_extra  # never exactly 0
        labels = {"host": "web1", "service": "nginx"}
        self._sample(out, "http_requests_per_second", rps, t1, **labels)
        self._sample(out, "http_request_duration_p95_seconds", p95, t1, **labels)
        self._sample(out, "http_error_ratio", min(errors, 1.0), t1, **labels)
        # access log (sampled)
        n = int(rng.poisson(rps * dt * cfg.access_log_sample))
        for ts in self._at(t0, t1, n):
            status = None
            if rng.random() < errors:
                status = loglines.pick(rng, (500, 500, 502, 503, 504))
            latency = p95 * math.exp(rng.normal(-0.75, 0.35))
            text = loglines.nginx_access(rng, ts, status, latency)
            out.logs.append(self.event("web1", "nginx", "info" if status is None else "error",
                                       text, ts))  # fmt: skip
        # the app's own lines
        pid = self.hosts["web1"].pid
        for ts in self._at(t0, t1, int(rng.poisson(dt * 0.25 * (0.2 + 0.8 * load)))):
            text = loglines.app_info(rng, 1000.0 * p95 * 0.4)
            out.logs.append(self.event("web1", "shop-api", "info", text, ts, pid=pid))
        for ts in self._at(t0, t1, int(rng.poisson(dt * 0.004 * factor**2))):
            text = loglines.app_warning(rng, 2000)
            out.logs.append(self.event("web1", "shop-api", "warning", text, ts, pid=pid))
        for ts in self._at(t0, t1, int(rng.poisson(dt * 0.002))):
            text = loglines.app_exception_baseline(rng)
            out.logs.append(self.event("web1", "shop-api", "error", text, ts, pid=pid))
        if fx.error_extra > 0:
            burst = int(rng.poisson(rps * dt * fx.error_extra * 0.05))
            for ts in self._at(t0, t1, burst):
                text = loglines.app_exception_regression(rng, fx.deploy_version or "unknown")
                out.logs.append(self.event("web1", "shop-api", "error", text, ts, pid=pid))

    def _db(self, out: TickOutput, t0: float, t1: float, load: float, fx: Effects) -> None:
        rng, dt, h = self.rng, t1 - t0, self.hosts["db1"]
        labels = {"host": "db1", "service": "postgres"}
        conns = 20.0 + 60.0 * load + rng.normal(0.0, 2.5)
        q95 = (0.008 + 0.006 * load) * fx.latency_factor * math.exp(rng.normal(0.0, 0.08))
        self._sample(out, "db_connections", max(round(conns), 1), t1, **labels)
        self._sample(out, "db_query_duration_p95_seconds", q95, t1, **labels)

        def log(ts: float, level: str, text: str) -> None:
            out.logs.append(self.event("db1", "postgres", level, text, ts, facility="local0",
                                       pid=h.pid))  # fmt: skip

        while self._next_checkpoint < t1:
            ts = max(self._next_checkpoint, t0)
            log(ts, "info", loglines.pg_checkpoint_start())
            h.checkpoint_done_at = ts + float(rng.uniform(27.0, 30.0))
            self._next_checkpoint += 300.0
        if t0 <= h.checkpoint_done_at < t1:
            log(h.checkpoint_done_at, "info", loglines.pg_checkpoint_complete(rng))
            h.checkpoint_done_at = math.inf
        slow_rate = dt * 0.01 * (0.3 + load) * fx.latency_factor**2
        for ts in self._at(t0, t1, int(rng.poisson(slow_rate))):
            duration_ms = float(rng.uniform(1000.0, 3200.0)) * fx.latency_factor
            log(ts, "warning", loglines.pg_slow_query(rng, duration_ms))
        for ts in self._at(t0, t1, int(rng.poisson(dt * 0.03 * (0.2 + load)))):
            log(ts, "info", loglines.pg_connection(rng))
            log(ts + 0.004, "info", loglines.pg_authorized())
        for ts in self._at(t0, t1, int(rng.poisson(dt * 0.002))):
            log(ts, "info", loglines.pg_autovacuum(rng))

    def _batch(self, out: TickOutput, t0: float, t1: float, load: float, fx: Effects) -> None:
        rng, dt, h, cfg = self.rng, t1 - t0, self.hosts["batch1"], self.config
        h.queue += float(rng.poisson(dt * 0.5 * (0.2 + load)))
        while self._next_batch < t1:
            ts = max(self._next_batch, t0)
            self._next_batch += cfg.batch_every_s
            if ts < h.job_until:
                continue  # still running: cron's flock skips the run
            cron_pid = int(rng.integers(30000, 60000))
            out.logs.append(self.event(
                "batch1", "CRON", "info",
                loglines.cron_cmd("billing", "/opt/billing/bin/export --since 15m"), ts,
                facility="cron", pid=cron_pid,
            ))  # fmt: skip
            h.job_run = loglines.request_id(rng)[4:]
            h.job_started = ts + 0.2
            h.job_rows = int(h.queue)
            h.job_until = h.job_started + float(rng.uniform(40.0, 120.0))
            out.logs.append(self.event(
                "batch1", "billing-export", "info", loglines.batch_started(h.job_run, h.job_rows),
                h.job_started, pid=h.pid,
            ))  # fmt: skip
        if h.job_until < math.inf and t0 <= h.job_until < t1:
            seconds = h.job_until - h.job_started
            out.logs.append(self.event(
                "batch1", "billing-export", "info",
                loglines.batch_finished(h.job_run, h.job_rows, seconds), h.job_until, pid=h.pid,
            ))  # fmt: skip
        if t0 < h.job_until:
            h.queue = max(0.0, h.queue - 12.0 * dt)
        self._sample(out, "job_queue_depth", h.queue, t1, host="batch1", task="billing-export")

    def _heartbeat(
        self, out: TickOutput, h: HostState, t0: float, t1: float, load: float, fx: Effects
    ) -> None:
        name, every = h.spec.name, self.config.heartbeat_every_s
        while self._next_heartbeat[name] < t1:
            ts = max(self._next_heartbeat[name], t0)
            self._next_heartbeat[name] += every
            if fx.heartbeat_stopped:
                continue
            h.heartbeat_seq += 1
            h.last_heartbeat = ts
            text = loglines.heartbeat(h.heartbeat_seq, ts - h.booted_at, 0.2 + 3.0 * load)
            out.logs.append(self.event(name, "opsagent", "info", text, ts, pid=h.agent_pid))
        labels = {"host": name, "service": "opsagent"}
        if not fx.heartbeat_stopped:
            self._sample(out, "heartbeat_timestamp_seconds", h.last_heartbeat, t1, **labels)
        self._sample(out, "heartbeat_age_seconds", max(t1 - h.last_heartbeat, 0.0), t1, **labels)

    def _predictions(self, out: TickOutput, t0: float, t1: float, load: float) -> None:
        rate = self.config.predictions_per_minute * (t1 - t0) / 60.0 * (0.3 + 0.7 * load)
        n = int(self.rng.poisson(rate))
        if n == 0:
            return
        records = churn.customers(self.rng, n, self.model_shift_sigma)
        labels = churn.outcomes(self.rng, records)
        for ts, rec, lab in zip(self._at(t0, t1, n), records, labels, strict=True):
            out.predictions.append(PredictionRequest(ts, rec, lab))
