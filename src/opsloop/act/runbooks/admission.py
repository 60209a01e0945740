"""Whether a run may start: the kill switch, cooldown per trigger key, max concurrent runs.

Cooldown counts from the *admission* of the last run for the same ``(runbook, trigger key)``
- an alert re-sent every minute runs its runbook once per cooldown, whatever the outcome.
Refused runs do not restart the cooldown. When every slot (``max_concurrent``) is busy, a run
is refused, or, with ``max_queued > 0``, waits in the runbook's queue (first come, first
served) until a slot frees: :meth:`Admission.wait_turn`. A full queue refuses. State is in
memory: the host may :meth:`~Admission.restore` cooldowns from its run history at start-up.

>>> now = [100.0]
>>> adm = Admission(clock=lambda: now[0])
>>> adm.admit("rb", "alert:abc", cooldown_s=60, max_concurrent=1)
Ticket(runbook='rb', queued=False, slot=True)
>>> adm.admit("rb", "alert:abc", cooldown_s=60, max_concurrent=1)
'cooldown: rb last ran for alert:abc 0s ago (cooldown 60s)'
>>> adm.admit("rb", "alert:other", cooldown_s=60, max_concurrent=1)
'max_concurrent: rb already has 1 runs in progress'
>>> waiting = adm.admit("rb", "alert:x", cooldown_s=60, max_concurrent=1, max_queued=1)
>>> waiting
Ticket(runbook='rb', queued=True, slot=False)
>>> adm.admit("rb", "alert:y", cooldown_s=60, max_concurrent=1, max_queued=1)
'queue full: rb has 1 runs in progress and 1 waiting'
>>> adm.done("rb"); adm.wait_turn(waiting), waiting.slot
(True, True)
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = ["Admission", "Ticket"]


@dataclass(eq=False)
class Ticket:
    """An admitted run: it holds a slot (``slot``), or waits for one (``queued``)."""

    runbook: str
    queued: bool
    slot: bool
    limit: int = field(default=1, repr=False)


class Admission:
    """Thread-safe admission state shared by all runs of an engine."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._last: dict[tuple[str, str], float] = {}
        self._running: dict[str, int] = {}
        self._queues: dict[str, deque[Ticket]] = {}
        self._kill: str | None = None

    @property
    def kill_switch(self) -> str | None:
        """The reason the kill switch is engaged, or ``None``."""
        return self._kill

    def engage(self, reason: str = "kill switch engaged") -> None:
        """Refuse every run until :meth:`release`; queued runs give up their place."""
        with self._cond:
            self._kill = reason or "kill switch engaged"
            self._cond.notify_all()

    def release(self) -> None:
        """Allow runs again."""
        with self._cond:
            self._kill = None

    def admit(
        self,
        runbook: str,
        key: str,
        *,
        cooldown_s: float,
        max_concurrent: int,
        max_queued: int = 0,
    ) -> Ticket | str:
        """A :class:`Ticket` (call :meth:`wait_turn` if queued, :meth:`done` once it held a
        slot), or why the run is refused."""
        with self._cond:
            if self._kill is not None:
                return f"kill switch: {self._kill}"
            now = self._clock()
            last = self._last.get((runbook, key))
            if cooldown_s > 0 and last is not None and now - last < cooldown_s:
                return (
                    f"cooldown: {runbook} last ran for {key} {now - last:.0f}s ago "
                    f"(cooldown {cooldown_s:g}s)"
                )
            running = self._running.get(runbook, 0)
            queue = self._queues.get(runbook)
            if running < max_concurrent and not queue:
                self._running[runbook] = running + 1
                self._last[(runbook, key)] = now
                return Ticket(runbook, queued=False, slot=True, limit=max_concurrent)
            if max_queued <= 0:
                return f"max_concurrent: {runbook} already has {running} runs in progress"
            if queue is not None and len(queue) >= max_queued:
                return (
                    f"queue full: {runbook} has {running} runs in progress and {len(queue)} waiting"
                )
            ticket = Ticket(runbook, queued=True, slot=False, limit=max_concurrent)
            self._queues.setdefault(runbook, deque()).append(ticket)
            self._last[(runbook, key)] = now
            return ticket

    def reclaim(
        self, runbook: str, key: str, *, at: float, slot: bool, max_concurrent: int
    ) -> Ticket:
        """Admit again, at start-up, a run that a previous process had admitted: it takes a
        slot when it held one (``slot``) or when one is free and nobody waits, else it joins
        the end of the queue - whatever the limits, as it was accepted already. Its cooldown
        counts from ``at`` (when it was first admitted).

        >>> adm = Admission()
        >>> adm.reclaim("rb", "k", at=1.0, slot=True, max_concurrent=1)
        Ticket(runbook='rb', queued=False, slot=True)
        >>> adm.reclaim("rb", "k2", at=2.0, slot=False, max_concurrent=1)
        Ticket(runbook='rb', queued=True, slot=False)
        """
        with self._cond:
            self._last[(runbook, key)] = max(at, self._last.get((runbook, key), at))
            running = self._running.get(runbook, 0)
            if slot or (running < max_concurrent and not self._queues.get(runbook)):
                self._running[runbook] = running + 1
                return Ticket(runbook, queued=False, slot=True, limit=max_concurrent)
            ticket = Ticket(runbook, queued=True, slot=False, limit=max_concurrent)
            self._queues.setdefault(runbook, deque()).append(ticket)
            return ticket

    def wait_turn(
        self, ticket: Ticket, cancel: threading.Event | None = None, poll_s: float = 0.2
    ) -> bool:
        """Block until ``ticket`` holds a slot (``True``), or give up its place when ``cancel``
        is set or the kill switch engaged (``False``)."""
        rb = ticket.runbook
        with self._cond:
            while not ticket.slot:
                queue = self._queues.get(rb)
                if queue is None or ticket not in queue:
                    return False
                if self._kill is not None or (cancel is not None and cancel.is_set()):
                    queue.remove(ticket)
                    if not queue:
                        del self._queues[rb]
                    self._cond.notify_all()
                    return False
                if queue[0] is ticket and self._running.get(rb, 0) < ticket.limit:
                    queue.popleft()
                    if not queue:
                        del self._queues[rb]
                    self._running[rb] = self._running.get(rb, 0) + 1
                    ticket.slot = True
                    self._cond.notify_all()
                    break
                self._cond.wait(poll_s)
            return True

    def done(self, runbook: str) -> None:
        """Release the slot a ticket held; the first queued run may take it."""
        with self._cond:
            n = self._running.get(runbook, 0) - 1
            if n > 0:
                self._running[runbook] = n
            else:
                self._running.pop(runbook, None)
            self._cond.notify_all()

    def running(self, runbook: str) -> int:
        """Runs of ``runbook`` in progress."""
        with self._cond:
            return self._running.get(runbook, 0)

    def waiting(self, runbook: str) -> int:
        """Runs of ``runbook`` queued for a slot."""
        with self._cond:
            return len(self._queues.get(runbook, ()))

    def restore(self, last_started: Mapping[tuple[str, str], float]) -> None:
        """Seed cooldowns: ``{(runbook, trigger key): epoch start}`` (newest wins)."""
        with self._cond:
            for k, t in last_started.items():
                self._last[k] = max(t, self._last.get(k, t))
