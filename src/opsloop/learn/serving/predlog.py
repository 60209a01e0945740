"""The prediction log: sampled predictions handed to a hook, off the request path.

The platform wires ``on_prediction`` into the telemetry store and the drift monitors; the
gateway only samples (each model's ``log_sample_rate``) and queues. A daemon thread calls the
hook, so a slow store never slows predictions; when the queue is full, entries are dropped and
counted. Delayed ground truth arrives later by request id (``POST .../labels``) and goes to
``on_label``.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("opsloop.learn.serving")

# on_prediction(model, version, request_id, inputs_records, outputs, latency_ms, variant)
PredictionHook = Callable[[str, str, str, Any, Any, float, str], None]
# on_label(model, request_id, label)
LabelHook = Callable[[str, str, Any], None]


@dataclass(frozen=True)
class LoggedPrediction:
    """One prediction as given to ``on_prediction``."""

    model: str
    version: str
    request_id: str
    inputs: Any
    outputs: Any
    latency_ms: float
    variant: str


class PredictionLog:
    """Samples predictions and feeds them to ``hook`` from a background thread."""

    def __init__(
        self,
        hook: PredictionHook | None,
        *,
        capacity: int = 10_000,
        seed: int | None = None,
        on_drop: Callable[[], None] | None = None,
    ):
        self.hook = hook
        self.on_drop = on_drop
        self._queue: queue.Queue[LoggedPrediction | None] = queue.Queue(maxsize=capacity)
        self._random = random.Random(seed)  # noqa: S311 - sampling, not security
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def sampled(self, rate: float) -> bool:
        """Whether to log this prediction, given the model's sample rate."""
        if self.hook is None or rate <= 0:
            return False
        return rate >= 1 or self._random.random() < rate

    def put(self, entry: LoggedPrediction) -> None:
        """Queue ``entry`` for the hook (dropped when the queue is full)."""
        if self.hook is None:
            return
        self._ensure_thread()
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            if self.on_drop is not None:
                self.on_drop()

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._drain, name="opsloop-prediction-log", daemon=True
                )
                self._thread.start()

    def _drain(self) -> None:
        while True:
            entry = self._queue.get()
            try:
                if entry is None:
                    return
                assert self.hook is not None
                self.hook(
                    entry.model,
                    entry.version,
                    entry.request_id,
                    entry.inputs,
                    entry.outputs,
                    entry.latency_ms,
                    entry.variant,
                )
            except Exception:
                log.exception("the prediction hook failed")
                if self.on_drop is not None:
                    self.on_drop()
            finally:
                self._queue.task_done()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued entry went to the hook; ``False`` on timeout."""
        import time

        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self) -> None:
        """Deliver what is queued, then stop the thread."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=5)
