"""Whether a run may start: the kill switch, cooldown per trigger key, max concurrent runs.

Cooldown counts from the *start* of the last admitted run for the same ``(runbook, trigger
key)`` - an alert re-sent every minute runs its runbook once per cooldown, whatever the
outcome. Refused runs do not restart the cooldown. State is in memory: the host may
:meth:`~Admission.restore` cooldowns from its run history at start-up.

>>> now = [100.0]
>>> adm = Admission(clock=lambda: now[0])
>>> adm.admit("rb", "alert:abc", cooldown_s=60, max_concurrent=2) is None
True
>>> adm.admit("rb", "alert:abc", cooldown_s=60, max_concurrent=2)
'cooldown: rb last ran for alert:abc 0s ago (cooldown 60s)'
>>> now[0] = 161.0; adm.admit("rb", "alert:abc", cooldown_s=60, max_concurrent=2) is None
True
>>> adm.admit("rb", "alert:other", cooldown_s=60, max_concurrent=2)
'max_concurrent: rb already has 2 runs in progress'
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

__all__ = ["Admission"]


class Admission:
    """Thread-safe admission state shared by all runs of an engine."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], float] = {}
        self._running: dict[str, int] = {}
        self._kill: str | None = None

    @property
    def kill_switch(self) -> str | None:
        """The reason the kill switch is engaged, or ``None``."""
        return self._kill

    def engage(self, reason: str = "kill switch engaged") -> None:
        """Refuse every run until :meth:`release`."""
        with self._lock:
            self._kill = reason or "kill switch engaged"

    def release(self) -> None:
        """Allow runs again."""
        with self._lock:
            self._kill = None

    def admit(
        self, runbook: str, key: str, *, cooldown_s: float, max_concurrent: int
    ) -> str | None:
        """``None`` and a slot taken (call :meth:`done`), or why the run is refused."""
        with self._lock:
            if self._kill is not None:
                return f"kill switch: {self._kill}"
            now = self._clock()
            last = self._last.get((runbook, key))
            if cooldown_s > 0 and last is not None and now - last < cooldown_s:
                return (
                    f"cooldown: {runbook} last ran for {key} {now - last:.0f}s ago "
                    f"(cooldown {cooldown_s:g}s)"
                )
            if self._running.get(runbook, 0) >= max_concurrent:
                return f"max_concurrent: {runbook} already has {max_concurrent} runs in progress"
            self._running[runbook] = self._running.get(runbook, 0) + 1
            self._last[(runbook, key)] = now
            return None

    def done(self, runbook: str) -> None:
        """Release the slot :meth:`admit` took."""
        with self._lock:
            n = self._running.get(runbook, 0) - 1
            if n > 0:
                self._running[runbook] = n
            else:
                self._running.pop(runbook, None)

    def running(self, runbook: str) -> int:
        """Runs of ``runbook`` in progress."""
        with self._lock:
            return self._running.get(runbook, 0)

    def restore(self, last_started: Mapping[tuple[str, str], float]) -> None:
        """Seed cooldowns: ``{(runbook, trigger key): epoch start}`` (newest wins)."""
        with self._lock:
            for k, t in last_started.items():
                self._last[k] = max(t, self._last.get(k, t))
