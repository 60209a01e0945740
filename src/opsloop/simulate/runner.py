"""Run a scenario: tick the estate, apply the faults, ship everything, keep the ground truth.

:class:`Simulator` is the whole loop. Each :meth:`Simulator.step` covers ``tick_s`` simulated
seconds ``[t0, t1)``: it first waits until ``t1`` is due on the wall clock
(:class:`~opsloop.simulate.clock.SimClock`: accelerated, anchored in the past, never ahead of
now), then scheduled faults due in the tick start, active faults act, the estate writes its
lines (stamped inside the tick) and samples (stamped ``t1``), and the step ships the lot:

* logs of HTTP hosts (and of every host when no syslog port is given) to ``/api/v1/logs``,
  logs of syslog hosts to the syslog listener;
* metrics pushed to ``/api/v1/metrics`` with their simulated timestamps, or (``metrics="scrape"``,
  real time only) left on the exposition page for opsloop to scrape; ``"auto"`` scrapes when
  ``speed`` is 1 and an exposition port is given, and pushes otherwise;
* one scoring request per customer to the model, and, ``label_delay`` later, the true outcome
  of ``label_fraction`` of them.

The ground truth (:attr:`Simulator.ground_truth`, written to ``ground_truth_path`` whenever a
fault starts or ends and at :meth:`Simulator.close`) lists every fault with its kind, target,
service, simulated start and end, and the notable moments (OOM kills, deploys, disk full), so a
benchmark can measure time to detect and count false alarms. Without ``target_url`` nothing is
sent (a dry run): :meth:`step` still returns what the tick produced.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from opsloop.simulate.clock import SimClock
from opsloop.simulate.estate import METRIC_HELP, Estate, TickOutput
from opsloop.simulate.exposition import ExpositionServer
from opsloop.simulate.faults import FAULT_KINDS, ActiveFault, FaultBook, FaultSpec, check_fault
from opsloop.simulate.scenario import Scenario, describe
from opsloop.simulate.senders import (
    HttpLogSender,
    MetricPusher,
    PredictionSender,
    SyslogSender,
    Transport,
)
from opsloop.simulate.signals import LogEvent

log = logging.getLogger(__name__)
METRIC_MODES = ("auto", "push", "scrape")


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Simulator:
    """A running scenario against one opsloop (or none, for a dry run)."""

    def __init__(
        self,
        scenario: Scenario,
        target_url: str | None = None,
        token: str | None = None,
        *,
        speed: float | None = None,
        span_s: float | None = None,
        start: float | None = None,
        seed: int | None = None,
        syslog_port: int | None = None,
        syslog_host: str | None = None,
        syslog_proto: str = "udp",
        exposition_port: int | None = None,
        metrics: str = "auto",
        ground_truth_path: str | Path | None = None,
        transport: Transport | None = None,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        on_problem: Callable[[str], None] | None = None,
    ) -> None:
        if metrics not in METRIC_MODES:
            raise ValueError(f"metrics must be one of {', '.join(METRIC_MODES)}")
        self.scenario = scenario
        self.speed = scenario.speed if speed is None else speed
        self.seed = scenario.seed if seed is None else seed
        span = scenario.duration_s if span_s is None else span_s
        if not math.isfinite(span):
            span = scenario.duration_s
        self.clock = SimClock(speed=self.speed, span_s=span, start=start, wall=wall, sleep=sleep)
        self.estate = Estate(scenario.estate, self.seed, self.clock.start)
        self.book = FaultBook()
        self._rng = np.random.default_rng([self.seed, 1])
        self._lock = threading.RLock()
        self._n_faults = 0
        self._n_requests = 0
        self._deferred: list[LogEvent] = []
        self._labels: deque[tuple[float, str, int]] = deque()
        self.ground_truth_path = Path(ground_truth_path) if ground_truth_path else None
        self._truth: list[dict[str, Any]] = []
        self._counts = {"ticks": 0, "log_lines": 0, "samples": 0, "predictions": 0, "labels": 0}
        for spec in scenario.faults:
            self._schedule(spec, "scenario")
        problem = on_problem or (lambda m: log.warning("%s", m))
        self.exposition: ExpositionServer | None = None
        if exposition_port is not None:
            self.exposition = ExpositionServer(
                port=exposition_port, help_texts=METRIC_HELP,
                with_timestamps=self.speed != 1.0,
            ).start()  # fmt: skip
        if metrics == "auto":
            metrics = "scrape" if self.speed == 1.0 and self.exposition is not None else "push"
        if metrics == "scrape" and self.exposition is None:
            raise ValueError("metrics='scrape' needs an exposition port")
        self.metrics_mode = metrics
        self.transport = transport
        if self.transport is None and target_url is not None:
            if not token:
                raise ValueError("a token is needed to talk to opsloop")
            self.transport = Transport(target_url, token, on_problem=problem)
        self.logs_http = HttpLogSender(self.transport) if self.transport else None
        self.metric_pusher = MetricPusher(self.transport) if self.transport else None
        self.predictor = (
            PredictionSender(self.transport, scenario.estate.model) if self.transport else None
        )
        self.syslog: SyslogSender | None = None
        if syslog_port is not None and self.transport is not None:
            host = syslog_host or urlsplit(self.transport.base_url).hostname or "127.0.0.1"
            self.syslog = SyslogSender(host, syslog_port, syslog_proto, on_problem=problem)

    # -- faults --------------------------------------------------------------------------------

    def _schedule(self, spec: FaultSpec, origin: str) -> str:
        self._n_faults += 1
        fault_id = f"f{self._n_faults}"
        self.book.schedule(spec, fault_id)
        fk = FAULT_KINDS[spec.kind]
        self._truth.append({
            "id": fault_id, "kind": spec.kind, "target": spec.target,
            "host": None if spec.target not in self.estate.hosts else spec.target,
            "service": None, "origin": origin, "offset_s": spec.start_s,
            "duration_s": spec.duration_s, "intensity": spec.intensity,
            "start": None, "end": None, "start_iso": None, "end_iso": None,
            "scheduled_start": self.clock.start + spec.start_s,
            "sent_at": None, "signals": list(fk.signals), "events": [],
            "status": "scheduled",
        })  # fmt: skip
        return fault_id

    def inject(
        self,
        kind: str | FaultSpec,
        target: str | None = None,
        *,
        duration_s: float | None = None,
        intensity: float = 1.0,
        at_s: float | None = None,
    ) -> dict[str, Any]:
        """Add a fault on demand; it starts at the next step (or at offset ``at_s``).

        ``kind`` is a fault kind (the other arguments default to the kind's target and
        duration) or a whole :class:`FaultSpec` (its ``start_s`` is the offset; one in the past
        starts at the next step). Thread-safe: another thread may call it while :meth:`run`
        goes on. Returns the fault's ground-truth entry. Raises ``ValueError`` on an unknown
        kind or a wrong target.
        """
        if isinstance(kind, FaultSpec):
            spec = kind
            return self.inject(spec.kind, spec.target, duration_s=spec.duration_s,
                               intensity=spec.intensity, at_s=spec.start_s)  # fmt: skip
        fk = FAULT_KINDS.get(kind)
        if fk is None:
            raise ValueError(f"unknown fault kind {kind!r} (known: {', '.join(FAULT_KINDS)})")
        target = target or fk.default_target
        duration = fk.default_duration_s if duration_s is None else duration_s
        problem = check_fault(kind, target, duration, intensity)
        if problem:
            raise ValueError(problem)
        with self._lock:
            offset = self.clock.elapsed if at_s is None else max(at_s, self.clock.elapsed)
            fault_id = self._schedule(FaultSpec(kind, target, offset, duration, intensity),
                                      "inject")  # fmt: skip
            return dict(self._entry(fault_id))

    def _entry(self, fault_id: str) -> dict[str, Any]:
        return next(e for e in self._truth if e["id"] == fault_id)

    @property
    def ground_truth(self) -> dict[str, Any]:
        """Everything a benchmark needs to score detections against this run."""
        with self._lock:
            return {
                "scenario": describe(self.scenario),
                "seed": self.seed,
                "speed": "max" if math.isinf(self.speed) else self.speed,
                "sim_start": self.clock.start,
                "sim_start_iso": _iso(self.clock.start),
                "sim_now": self.clock.now,
                "wall_start": self.clock.wall0,
                "metrics_mode": self.metrics_mode,
                "faults": [dict(e, events=list(e["events"])) for e in self._truth],
            }

    def write_ground_truth(self, path: str | Path | None = None) -> Path | None:
        """Write :attr:`ground_truth` as JSON (atomically); the path, or ``None`` if none."""
        target = Path(path) if path else self.ground_truth_path
        if target is None:
            return None
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(self.ground_truth, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, target)
        return target

    def _started(self, fault: ActiveFault, sent_at: float | None) -> None:
        e = self._entry(fault.id)
        e.update(start=fault.start, end=fault.end, start_iso=_iso(fault.start),
                 end_iso=_iso(fault.end), service=fault.service, status="active",
                 sent_at=sent_at)  # fmt: skip

    # -- stepping ------------------------------------------------------------------------------

    def step(self, stop: threading.Event | None = None) -> TickOutput | None:
        """Simulate and ship one tick; ``None`` (nothing done) when ``stop`` was set while
        waiting for the tick's end to be due on the wall clock."""
        if not self.clock.wait_until(self.clock.now + self.scenario.tick_s, stop):
            return None
        with self._lock:
            t0 = self.clock.now
            t1 = t0 + self.scenario.tick_s
            fx = self.estate.new_effects()
            done_before = len(self.book.done)
            fault_logs, started = self.book.tick(self.estate, self.clock.start, t0, t1, fx)
            out = self.estate.tick(t0, t1, fx)
            logs = self._deferred + out.logs + fault_logs
            self._deferred = [e for e in logs if e.ts >= t1]
            out.logs = sorted((e for e in logs if e.ts < t1), key=lambda e: e.ts)
            ended = self.book.done[done_before:]
            self.clock.advance_to(t1)
            sent_at = self.clock.wall()
            for fault in started:
                self._started(fault, sent_at)
            for fault in self.book.active + ended:
                entry = self._entry(fault.id)
                entry["events"] = list(fault.events)
            for fault in ended:
                self._entry(fault.id)["status"] = "done"
            self._ship(out, t1)
            self._counts["ticks"] += 1
        if (started or ended) and self.ground_truth_path:
            self.write_ground_truth()
        return out

    def _ship(self, out: TickOutput, t1: float) -> None:
        c = self._counts
        c["log_lines"] += len(out.logs)
        c["samples"] += len(out.samples)
        if self.exposition is not None:
            self.exposition.update(out.samples)
        if self.transport is None:
            c["predictions"] += len(out.predictions)
            return
        via_syslog = [e for e in out.logs if self.syslog and e.channel == "syslog"]
        via_http = [e for e in out.logs if not (self.syslog and e.channel == "syslog")]
        if self.syslog is not None:
            self.syslog.send(via_syslog)
        assert self.logs_http and self.metric_pusher and self.predictor
        self.logs_http.send(via_http)
        if self.metric_mode_push:
            self.metric_pusher.send(out.samples)
        fraction = self.scenario.estate.label_fraction
        delay = self.scenario.estate.label_delay_s
        for req in out.predictions:
            self._n_requests += 1
            rid = f"sim-{self.seed}-{self._n_requests}"
            answer = self.predictor.predict(req, rid)
            c["predictions"] += 1
            if answer is not None and self._rng.random() < fraction:
                self._labels.append((req.ts + delay, answer, req.label))
        due: list[tuple[str, int]] = []
        while self._labels and self._labels[0][0] < t1:
            _, rid, label = self._labels.popleft()
            due.append((rid, label))
        if due:
            self.predictor.labels(due)
            c["labels"] += len(due)

    @property
    def metric_mode_push(self) -> bool:
        """Whether samples are pushed (else opsloop scrapes the exposition page)."""
        return self.metrics_mode == "push"

    def run(
        self,
        until: float | None = None,
        stop: threading.Event | None = None,
        on_tick: Callable[[TickOutput], None] | None = None,
    ) -> dict[str, Any]:
        """Step until ``until`` simulated seconds from the start (default: the scenario's
        duration; ``math.inf``: until ``stop`` is set). Returns :meth:`report`."""
        end = self.scenario.duration_s if until is None else until
        try:
            while self.clock.elapsed + 1e-9 < end:
                if stop is not None and stop.is_set():
                    break
                out = self.step(stop)
                if out is None:
                    break
                if on_tick is not None:
                    on_tick(out)
        finally:
            if self.ground_truth_path:
                self.write_ground_truth()
        return self.report()

    def report(self) -> dict[str, Any]:
        """Counts of what was produced and what happened to it on the way."""
        with self._lock:
            out: dict[str, Any] = {
                "sim_elapsed_s": self.clock.elapsed,
                "sim_now_iso": _iso(self.clock.now),
                **self._counts,
                "faults": {e["id"]: f"{e['kind']}@{e['target']} {e['status']}"
                           for e in self._truth},
                "active": [f.id for f in self.book.active],
            }  # fmt: skip
            if self.transport is not None:
                out["http"] = self.transport.report()
            if self.syslog is not None:
                out["syslog"] = self.syslog.stats.to_dict()
            return out

    def close(self) -> None:
        """Write the ground truth, stop the exposition page, close connections."""
        if self.ground_truth_path:
            self.write_ground_truth()
        if self.exposition is not None:
            self.exposition.stop()
            self.exposition = None
        if self.syslog is not None:
            self.syslog.close()
        if self.transport is not None:
            self.transport.close()

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
