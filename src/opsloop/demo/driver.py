"""Drives the demo inside ``opsloop up --demo``: model first, then the simulated estate."""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

log = logging.getLogger("opsloop.demo")

MODEL = "churn"
PIPELINE = "demo-churn"


class DemoDriver:
    """A daemon thread: train the churn model when it has no champion, then simulate."""

    def __init__(
        self, platform: Any, url: str, token: str, scenario: str = "demo", syslog_port: int = 0
    ) -> None:
        self.platform = platform
        self.url = url
        self.token = token
        self.scenario = scenario
        self.syslog_port = syslog_port
        self.stop_event = threading.Event()
        self.status: dict[str, Any] = {"phase": "starting"}
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (returns at once)."""
        self._thread = threading.Thread(target=self._run, name="opsloop-demo", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the simulator."""
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _wait_healthy(self) -> bool:
        import httpx

        while not self.stop_event.is_set():
            try:
                if httpx.get(self.url + "/api/health", timeout=2).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        return False

    def ensure_model(self) -> None:
        """Train and register the churn model unless it already has a champion."""
        if self.platform.registry.resolve(MODEL, "champion") is not None:
            return
        self.status["phase"] = "training the churn model"
        record = self.platform.pipelines.run(PIPELINE, trigger="demo")
        if record.status.value != "succeeded":
            raise RuntimeError(f"demo model pipeline {record.id} {record.status.value}")

    def _run(self) -> None:
        from opsloop.simulate import Simulator, load_scenario

        try:
            if not self._wait_healthy():
                return
            self.ensure_model()
            self.status["phase"] = f"simulating ({self.scenario})"
            sim = Simulator(
                load_scenario(self.scenario), self.url, self.token,
                syslog_port=self.syslog_port or None,
                ground_truth_path=self.platform.settings.home / "demo_ground_truth.json",
            )  # fmt: skip
            self.status["simulator"] = sim
            sim.run(stop=self.stop_event)  # the scenario; writes the ground truth at its end
            sim.ground_truth_path = None  # keep the scenario's record as it was
            self.status["phase"] = "scenario done; the estate runs on at real time"
            sim.run(until=math.inf, stop=self.stop_event)
            self.status["phase"] = "stopped"
        except Exception as exc:
            self.status["phase"] = f"failed: {exc}"
            log.exception("the demo stopped")
