"""Deliver notifications in the background: a queue and a worker per receiver, with retries.

:meth:`Dispatcher.submit` never blocks and never waits for the network: it appends to the
receiver's bounded queue and returns ``True``, or returns ``False`` (and records a
``dropped`` attempt) when the queue is full, the receiver is unknown or the dispatcher is
stopped. It may be called from the event loop or from any other thread.

Each receiver has its own worker task, so a slow or unreachable receiver only delays its own
queue (and no ``send`` may run past ``3 * timeout_s + 5`` seconds, whatever the receiver
does). A worker delivers its queue in order (a ``resolved`` never overtakes its ``firing``),
retrying a failed delivery that is ``retryable`` (HTTP 5xx/429, timeouts, connection errors,
SMTP 4xx) with exponential backoff and jitter — ``base_backoff_s * 2**(attempt-1)``, capped
at ``max_backoff_s``, scaled by a random factor in [0.5, 1), and never shorter than a
``Retry-After`` the receiver was given (up to the cap) — at most ``max_attempts`` times.

Every attempt is recorded: passed to ``record`` (called from the event loop, or from the
submitting thread for drops, so it must be quick and thread-safe) and kept in
:attr:`Dispatcher.recent`. ``outcome`` is ``delivered``, ``retry`` (failed, will try again),
``failed`` (failed, gave up) or ``dropped`` (never attempted, or cut short by :meth:`stop`).

Usage::

    dispatcher = Dispatcher(receivers, record=store_attempt)
    await dispatcher.start()
    for name in tree.route(labels, severity):
        dispatcher.submit(name, notification)
    ...
    await dispatcher.stop(drain_timeout_s=10)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from opsloop.act.notify.message import Notification
from opsloop.act.notify.receivers import DeliveryResult, Receiver

__all__ = ["OUTCOMES", "DeliveryAttempt", "Dispatcher"]

log = logging.getLogger(__name__)

OUTCOMES = ("delivered", "retry", "failed", "dropped")
RECENT_ATTEMPTS = 1000
DEFAULT_GUARD_S = 120.0
"""Longest a ``send`` may take when the receiver has no ``timeout_s`` of its own."""


def _guard_s(receiver: Receiver) -> float:
    """A safety bound on one ``send``, beyond the receiver's own ``timeout_s``."""
    timeout = getattr(receiver, "timeout_s", None)
    return 3 * float(timeout) + 5 if isinstance(timeout, int | float) else DEFAULT_GUARD_S


@dataclass(frozen=True)
class DeliveryAttempt:
    """One try (or a drop) of one notification to one receiver.

    ``attempt`` counts from 1; a notification dropped before any try has ``attempt == 0``.
    ``status`` is the HTTP status or SMTP reply code, when one came back.
    """

    receiver: str
    incident_id: str
    attempt: int
    ok: bool
    status: int | None
    error: str | None
    at: datetime
    duration_s: float
    outcome: str


class _Lane:
    """A receiver's queue (thread-safe) and the event its worker sleeps on."""

    def __init__(self, receiver: Receiver, size: int) -> None:
        self.receiver = receiver
        self.size = size
        self.items: deque[Notification] = deque()
        self.lock = threading.Lock()
        self.wake: asyncio.Event | None = None
        self.task: asyncio.Task[None] | None = None

    def push(self, n: Notification) -> bool:
        with self.lock:
            if len(self.items) >= self.size:
                return False
            self.items.append(n)
            return True

    def pop(self) -> Notification | None:
        with self.lock:
            return self.items.popleft() if self.items else None

    def __len__(self) -> int:
        with self.lock:
            return len(self.items)


class Dispatcher:
    """Fan notifications out to receivers without ever blocking the caller."""

    def __init__(
        self,
        receivers: Mapping[str, Receiver],
        max_attempts: int = 5,
        base_backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        queue_size: int = 10_000,
        record: Callable[[DeliveryAttempt], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if base_backoff_s < 0 or max_backoff_s < base_backoff_s:
            raise ValueError("need 0 <= base_backoff_s <= max_backoff_s")
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        self.max_attempts = max_attempts
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self._record = record
        self._rng = rng or random.Random()  # noqa: S311 - retry jitter, not security
        self._lanes = {name: _Lane(r, queue_size) for name, r in receivers.items()}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._closed = False
        self._draining = False
        self.recent: deque[DeliveryAttempt] = deque(maxlen=RECENT_ATTEMPTS)
        """The latest attempts, oldest first (for status pages and tests)."""

    # -- intake -------------------------------------------------------------------------------

    def submit(self, receiver_name: str, notification: Notification) -> bool:
        """Queue ``notification`` for ``receiver_name``; ``False`` (and a drop record) if not."""
        lane = self._lanes.get(receiver_name)
        if lane is None:
            self._drop(receiver_name, notification, f"unknown receiver {receiver_name!r}")
            return False
        if self._closed:
            self._drop(receiver_name, notification, "dispatcher is stopped")
            return False
        if not lane.push(notification):
            self._drop(receiver_name, notification, f"queue full ({lane.size} waiting)")
            return False
        self._wake(lane)
        return True

    def pending(self, receiver_name: str | None = None) -> int:
        """Notifications waiting (not yet being tried) for one receiver or for all."""
        if receiver_name is not None:
            lane = self._lanes.get(receiver_name)
            return len(lane) if lane else 0
        return sum(len(lane) for lane in self._lanes.values())

    def _wake(self, lane: _Lane) -> None:
        loop, event = self._loop, lane.wake
        if loop is None or event is None:
            return  # not started yet: start() looks at the queue
        if threading.get_ident() == self._loop_thread:
            event.set()
        else:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(event.set)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start one worker per receiver on the running loop (idempotent)."""
        if self._closed:
            raise RuntimeError("a stopped dispatcher cannot be restarted")
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        for name, lane in self._lanes.items():
            lane.wake = asyncio.Event()
            lane.wake.set()  # look at anything submitted before start()
            lane.task = asyncio.create_task(self._worker(lane), name=f"notify:{name}")

    async def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Refuse new work, let workers finish their queues for up to ``drain_timeout_s``,
        then cancel them; whatever was left undelivered is recorded as ``dropped``."""
        self._closed = True
        self._draining = True
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        for lane in self._lanes.values():
            if lane.wake is not None:
                lane.wake.set()
        if tasks:
            _, running = await asyncio.wait(tasks, timeout=max(0.0, drain_timeout_s))
            for task in running:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for name, lane in self._lanes.items():
            while (n := lane.pop()) is not None:
                self._drop(name, n, "dispatcher stopped before delivery")
            lane.task = None

    # -- delivery -----------------------------------------------------------------------------

    async def _worker(self, lane: _Lane) -> None:
        assert lane.wake is not None
        while True:
            n = lane.pop()
            if n is None:
                if self._draining:
                    return
                lane.wake.clear()
                if len(lane):
                    continue
                await lane.wake.wait()
                continue
            try:
                await self._deliver(lane, n)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in a receiver or in record() must not kill the worker
                log.exception("notification worker for %r hit an error", lane.receiver.name)

    def backoff_s(self, attempt: int, retry_after_s: float | None = None) -> float:
        """The pause after failed attempt number ``attempt`` (from 1), jitter included."""
        delay = min(self.max_backoff_s, self.base_backoff_s * 2 ** (attempt - 1))
        delay *= 0.5 + 0.5 * self._rng.random()
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.max_backoff_s))
        return delay

    async def _deliver(self, lane: _Lane, n: Notification) -> None:
        name = lane.receiver.name
        attempt = 0
        try:
            for attempt in range(1, self.max_attempts + 1):
                at = datetime.now(UTC)
                started = time.monotonic()
                try:
                    async with asyncio.timeout(_guard_s(lane.receiver)):
                        result = await lane.receiver.send(n)
                except asyncio.CancelledError:
                    raise
                except TimeoutError:  # the receiver did not bound its own send
                    result = DeliveryResult(
                        ok=False,
                        error="receiver did not answer in time",
                        duration_s=time.monotonic() - started,
                        retryable=True,
                    )
                except Exception as exc:  # receivers report, but a buggy one may raise
                    result = DeliveryResult(
                        ok=False,
                        error=f"receiver raised {type(exc).__name__}",
                        duration_s=time.monotonic() - started,
                        retryable=True,
                    )
                if result.ok:
                    outcome = "delivered"
                elif result.retryable and attempt < self.max_attempts:
                    outcome = "retry"
                else:
                    outcome = "failed"
                self._emit(
                    DeliveryAttempt(
                        receiver=name,
                        incident_id=n.incident_id,
                        attempt=attempt,
                        ok=result.ok,
                        status=result.status,
                        error=result.error,
                        at=at,
                        duration_s=result.duration_s,
                        outcome=outcome,
                    )
                )
                if outcome == "retry":
                    log.warning(
                        "notify %s: %s attempt %d/%d failed: %s",
                        name, n.incident_id, attempt, self.max_attempts, result.error,
                    )  # fmt: skip
                    await asyncio.sleep(self.backoff_s(attempt, result.retry_after_s))
                    continue
                if outcome == "failed":
                    log.error(
                        "notify %s: giving up on %s after attempt %d: %s",
                        name, n.incident_id, attempt, result.error,
                    )  # fmt: skip
                return
        except asyncio.CancelledError:
            self._drop(name, n, "dispatcher stopped during delivery", attempt)
            raise

    def _drop(self, name: str, n: Notification, why: str, attempt: int = 0) -> None:
        log.warning("notify %s: dropped %s: %s", name, n.incident_id, why)
        self._emit(
            DeliveryAttempt(
                name, n.incident_id, attempt, False, None, why, datetime.now(UTC), 0.0, "dropped"
            )
        )

    def _emit(self, attempt: DeliveryAttempt) -> None:
        self.recent.append(attempt)
        if self._record is None:
            return
        try:
            self._record(attempt)
        except Exception:
            log.exception("recording a delivery attempt failed")
