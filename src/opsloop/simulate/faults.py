"""Fault kinds the simulator injects, and what each does to the estate while it is active.

=====================  ======================  ===========================================
kind                   targets                 what changes
=====================  ======================  ===========================================
``memory_leak``        web1, db1, batch1       memory ramps toward 100 %; at ~97 % the
                                               kernel OOM-kills the main process, systemd
                                               restarts it, memory drops, the leak goes on
``disk_fill``          web1, db1, batch1       disk percent rises steadily (to ~98.5 % at the
                                               end with intensity 1), "No space left on
                                               device" errors near full; cleaned up after
``error_burst``        web1                    a deploy line, then 5xx responses and a new
                                               exception in the app log; rollback at the end
``heartbeat_stop``     web1, db1, batch1       heartbeat lines and ``heartbeat_timestamp``
                                               stop, ``heartbeat_age_seconds`` climbs
``latency_regression`` web1, db1               p95 latency x(1 + 2 x intensity); on db1 also
                                               slow-query lines, and web latency half as much
``model_drift``        churn (the model)       tenure mean +3 x intensity sigma (monthly
                                               charges half as much) in scoring requests
=====================  ======================  ===========================================

A :class:`FaultSpec` is what a scenario says (kind, target, start offset, duration, intensity);
:func:`activate` turns it into an :class:`ActiveFault`, which the runner calls every tick
(:meth:`ActiveFault.apply`) and once at its end (:meth:`ActiveFault.finish`). Faults keep their
own state (a leak's level), add to the tick's :class:`~opsloop.simulate.estate.Effects` and may
write log lines of their own (OOM kill, deploy, cleanup). Notable moments go to
:attr:`ActiveFault.events` for the ground truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from opsloop.simulate import loglines
from opsloop.simulate.estate import DAY_S, HOST_NAMES, Effects, Estate
from opsloop.simulate.signals import LogEvent

MODEL_TARGET = "churn"


@dataclass(frozen=True)
class FaultKind:
    """A kind of fault: what it does, where it may go, and its defaults."""

    name: str
    description: str
    targets: tuple[str, ...]
    default_target: str
    default_duration_s: float
    signals: tuple[str, ...]


FAULT_KINDS: dict[str, FaultKind] = {
    k.name: k
    for k in (
        FaultKind("memory_leak", "memory ramps toward 100 % until the OOM killer restarts the "
                  "main service", HOST_NAMES, "web1", 600.0,
                  ("host_memory_percent", "log: Out of memory: Killed process")),
        FaultKind("disk_fill", "disk use rises steadily toward full, then 'No space left on "
                  "device'", HOST_NAMES, "db1", 900.0,
                  ("host_disk_percent", "forecast: exhaustion", "log: No space left on device")),
        FaultKind("error_burst", "a deploy, then a burst of 5xx responses and a new exception",
                  ("web1",), "web1", 300.0,
                  ("http_error_ratio", "log: deploy:", "log: KeyError: 'customer_id'")),
        FaultKind("heartbeat_stop", "the agent's heartbeat lines and metric stop", HOST_NAMES,
                  "batch1", 300.0,
                  ("heartbeat_age_seconds", "heartbeat_timestamp_seconds absent",
                   "log: heartbeat lines stop")),
        FaultKind("latency_regression", "p95 latency up x(1 + 2 x intensity)", ("web1", "db1"),
                  "web1", 420.0,
                  ("http_request_duration_p95_seconds", "db_query_duration_p95_seconds",
                   "log: slow queries")),
        FaultKind("model_drift", "the model's input distribution shifts (tenure +3 sigma)",
                  (MODEL_TARGET,), MODEL_TARGET, 900.0,
                  ("predictions: input drift on tenure, monthly_charges",)),
    )
}  # fmt: skip


@dataclass(frozen=True)
class FaultSpec:
    """A fault as scheduled: ``start_s`` is the offset from the start of the simulation."""

    kind: str
    target: str
    start_s: float
    duration_s: float
    intensity: float = 1.0

    def __post_init__(self) -> None:
        problem = check_fault(self.kind, self.target, self.duration_s, self.intensity)
        if problem:
            raise ValueError(problem)
        if not (math.isfinite(self.start_s) and self.start_s >= 0):
            raise ValueError("start must be a finite offset >= 0")


def check_fault(kind: str, target: str, duration_s: float, intensity: float) -> str | None:
    """Why this fault is invalid, or ``None``."""
    fk = FAULT_KINDS.get(kind)
    if fk is None:
        return f"unknown fault kind {kind!r} (known: {', '.join(FAULT_KINDS)})"
    if target not in fk.targets:
        return f"{kind} cannot target {target!r} (targets: {', '.join(fk.targets)})"
    if not (math.isfinite(duration_s) and duration_s > 0):
        return "duration must be > 0"
    if not (math.isfinite(intensity) and 0 < intensity <= 5):
        return "intensity must be in (0, 5]"
    return None


class ActiveFault:
    """A fault in progress, from ``start`` to ``end`` (simulated epoch seconds)."""

    def __init__(self, spec: FaultSpec, fault_id: str, start: float) -> None:
        self.spec = spec
        self.id = fault_id
        self.start = start
        self.end = start + spec.duration_s
        self.events: list[dict[str, Any]] = []
        self.started = False

    @property
    def service(self) -> str:
        """The service the fault hits (the host's main service, or the model)."""
        return "model" if self.spec.target == MODEL_TARGET else _service(self.spec.target)

    def progress(self, t: float) -> float:
        """Share of the fault's duration elapsed at ``t`` (0 to 1)."""
        return min(max((t - self.start) / self.spec.duration_s, 0.0), 1.0)

    def note(self, kind: str, t: float, **extra: Any) -> None:
        """Record a notable moment for the ground truth."""
        self.events.append({"time": t, "event": kind, "fault": self.id, **extra})

    def apply(self, estate: Estate, t0: float, t1: float, fx: dict[str, Effects]) -> list[LogEvent]:
        """Act on the tick ``[t0, t1)``; return the fault's own log lines."""
        logs: list[LogEvent] = []
        if not self.started:
            self.started = True
            logs += self.begin(estate, max(self.start, t0))
        logs += self.effect(estate, t0, t1, fx)
        return logs

    def begin(self, estate: Estate, t: float) -> list[LogEvent]:
        """Lines written when the fault starts."""
        return []

    def effect(
        self, estate: Estate, t0: float, t1: float, fx: dict[str, Effects]
    ) -> list[LogEvent]:
        """Change this tick's effects; lines written meanwhile."""
        return []

    def finish(self, estate: Estate, t: float) -> list[LogEvent]:
        """Lines written when the fault ends (a fix, a rollback, a cleanup)."""
        return []


def _service(host: str) -> str:
    return {"web1": "shop-api", "db1": "postgres", "batch1": "billing-export"}[host]


class MemoryLeak(ActiveFault):
    """Memory ramps so that an OOM kill comes after 60 % of the duration / intensity."""

    OOM_AT = 97.0

    def __init__(self, spec: FaultSpec, fault_id: str, start: float) -> None:
        super().__init__(spec, fault_id, start)
        self.level = 0.0

    def effect(
        self, estate: Estate, t0: float, t1: float, fx: dict[str, Effects]
    ) -> list[LogEvent]:
        h = estate.hosts[self.spec.target]
        room = self.OOM_AT - (h.spec.mem_base + 6.0)
        rate = room / (0.6 * self.spec.duration_s / self.spec.intensity)
        self.level += rate * (t1 - max(t0, self.start))
        logs: list[LogEvent] = []
        if self.level >= room:
            ts = t0 + 0.25 * (t1 - t0)
            host, spec = self.spec.target, h.spec
            logs.append(estate.event(host, "kernel", "error",
                                     loglines.oom_kill(estate.rng, h.pid, spec.process, spec.uid),
                                     ts, facility="kern"))  # fmt: skip
            logs.append(
                estate.event(
                    host, "systemd", "warning", loglines.systemd_killed(spec.unit), ts + 0.05, pid=1
                )
            )
            self.note("oom_kill", ts, host=host, pid=h.pid)
            logs += estate.restart_main(host, ts + 0.1)
            self.level = 0.0
        fx[self.spec.target].mem_extra += self.level
        return logs


class DiskFill(ActiveFault):
    """Disk use climbs linearly toward full; near full, writes fail."""

    TOP = 98.5

    def effect(
        self, estate: Estate, t0: float, t1: float, fx: dict[str, Effects]
    ) -> list[LogEvent]:
        h = estate.hosts[self.spec.target]
        base = h.spec.disk_base + 0.2 * ((t1 - h.booted_at) % (30 * DAY_S)) / DAY_S
        extra = (self.TOP - base) * min(self.progress(t1) * self.spec.intensity, 1.0)
        extra = min(extra, 100.0 - base)
        fx[self.spec.target].disk_extra += extra
        logs: list[LogEvent] = []
        if base + extra >= 98.0:
            if not any(e["event"] == "disk_full" for e in self.events):
                self.note("disk_full", t1, host=self.spec.target)
            host, ts = self.spec.target, t1 - 0.3
            text = (
                loglines.pg_no_space(estate.rng) if host == "db1"
                else loglines.no_space_generic(h.spec.mount)
            )  # fmt: skip
            app = "postgres" if host == "db1" else _service(host)
            logs.append(estate.event(host, app, "error", text, ts, pid=h.pid))
        return logs

    def finish(self, estate: Estate, t: float) -> list[LogEvent]:
        h = estate.hosts[self.spec.target]
        self.note("cleanup", t, host=self.spec.target)
        freed = 0.8 * (self.TOP - h.spec.disk_base)
        return [estate.event(self.spec.target, "logrotate", "notice",
                             loglines.disk_cleanup(h.spec.mount, freed), t)]  # fmt: skip


class ErrorBurst(ActiveFault):
    """A deploy brings a new exception; 5xx share up by 12 % x intensity; rollback after."""

    GOOD, BAD = "2.14.3", "2.15.0"

    def begin(self, estate: Estate, t: float) -> list[LogEvent]:
        commit = loglines.request_id(estate.rng)[4:] + "e1"
        self.note("deploy", t, host=self.spec.target, version=self.BAD)
        return [estate.event(self.spec.target, "deploy", "notice",
                             loglines.deploy_line(self.GOOD, self.BAD, commit), t)]  # fmt: skip

    def effect(
        self, estate: Estate, t0: float, t1: float, fx: dict[str, Effects]
    ) -> list[LogEvent]:
        f = fx[self.spec.target]
        f.error_extra += 0.12 * self.spec.intensity
        f.deploy_version = self.BAD
        return []

    def finish(self, estate: Estate, t: float) -> list[LogEvent]:
        self.note("rollback", t, host=self.spec.target, version=self.GOOD)
        return [estate.event(self.spec.target, "deploy", "notice",
                             loglines.rollback_line(self.BAD, self.GOOD), t)]  # fmt: skip


class HeartbeatStop(ActiveFault):
    """The agent hangs: no heartbeat line or timestamp until the watchdog restarts it."""

    def effect(
        self, estate: Estate, t0: float, t1: float, fx: dict[str, Effects]
    ) -> list[LogEvent]:
        fx[self.spec.target].heartbeat_stopped = True
        return []

    def finish(self, estate: Estate, t: float) -> list[LogEvent]:
        h = estate.hosts[self.spec.target]
        self.note("heartbeat_resumed", t, host=self.spec.target)
        return [estate.event(self.spec.target, "opsagent", "warning",
                             loglines.agent_restarted(t - h.last_heartbeat), t,
                             pid=h.agent_pid)]  # fmt: skip


class LatencyRegression(ActiveFault):
    """Latency x(1 + 2 x intensity) on the target."""

    def effect(
        self, estate: Estate, t0: float, t1: float, fx: dict[str, Effects]
    ) -> list[LogEvent]:
        fx[self.spec.target].latency_factor *= 1.0 + 2.0 * self.spec.intensity
        return []


class ModelDrift(ActiveFault):
    """Scoring requests come from a shifted population."""

    def effect(
        self, estate: Estate, t0: float, t1: float, fx: dict[str, Effects]
    ) -> list[LogEvent]:
        estate.model_shift_sigma += 3.0 * self.spec.intensity
        return []


_CLASSES: dict[str, type[ActiveFault]] = {
    "memory_leak": MemoryLeak,
    "disk_fill": DiskFill,
    "error_burst": ErrorBurst,
    "heartbeat_stop": HeartbeatStop,
    "latency_regression": LatencyRegression,
    "model_drift": ModelDrift,
}


def activate(spec: FaultSpec, fault_id: str, start: float) -> ActiveFault:
    """The active fault for ``spec``, starting at simulated time ``start``."""
    return _CLASSES[spec.kind](spec, fault_id, start)


@dataclass
class FaultBook:
    """Scheduled and active faults; what starts and ends at each tick."""

    pending: list[tuple[FaultSpec, str]] = field(default_factory=list)
    active: list[ActiveFault] = field(default_factory=list)
    done: list[ActiveFault] = field(default_factory=list)

    def schedule(self, spec: FaultSpec, fault_id: str) -> None:
        """Add a fault; it starts at the tick that contains its start offset."""
        self.pending.append((spec, fault_id))
        self.pending.sort(key=lambda p: p[0].start_s)

    def tick(
        self, estate: Estate, origin: float, t0: float, t1: float, fx: dict[str, Effects]
    ) -> tuple[list[LogEvent], list[ActiveFault]]:
        """Start what is due in ``[t0, t1)``, apply the active faults, end what is over.

        Returns the faults' log lines and the faults that started in this tick. Each tick,
        :attr:`Estate.model_shift_sigma` is rebuilt from the active drifts.
        """
        started: list[ActiveFault] = []
        while self.pending and origin + self.pending[0][0].start_s < t1:
            spec, fault_id = self.pending.pop(0)
            fault = activate(spec, fault_id, max(origin + spec.start_s, t0))
            self.active.append(fault)
            started.append(fault)
        estate.model_shift_sigma = 0.0
        logs: list[LogEvent] = []
        for fault in list(self.active):
            logs += fault.apply(estate, t0, t1, fx)
            if fault.end <= t1:
                logs += fault.finish(estate, min(max(fault.end, t0), t1 - 0.001))
                self.active.remove(fault)
                self.done.append(fault)
        return logs, started
