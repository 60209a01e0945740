"""Simulated time that may run faster than the wall clock but never ahead of it.

opsloop refuses metric samples more than a few minutes in the future, and an accelerated
timeline that ran into the future would be nonsense anyway. So the simulated clock is *anchored
in the past*: a run that will cover ``span_s`` simulated seconds at ``speed`` starts its clock at
``wall_now - span_s * (1 - 1/speed)``; it then catches up with the wall clock exactly when the
span is done. Beyond that (an open-ended run, or a run longer than planned) it goes on at real
time. :meth:`SimClock.wait_until` enforces both rules, so nothing stamped before the simulated
time it waited for can lie in the future.

``speed`` is simulated seconds per real second: ``60`` is one simulated minute per second,
``math.inf`` is as fast as the machine goes (the whole span is back-filled at once), values
below ``1`` are slow motion.

>>> c = SimClock(speed=60.0, span_s=3600.0, wall=lambda: 10_000.0, sleep=lambda s: None)
>>> c.start, c.due(c.start + 3600.0)
(6460.0, 10060.0)
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


def anchor_start(wall_now: float, span_s: float, speed: float) -> float:
    """Where a clock covering ``span_s`` at ``speed`` starts so that it ends at the wall clock.

    >>> anchor_start(1000.0, 600.0, 1.0), anchor_start(1000.0, 600.0, math.inf)
    (1000.0, 400.0)
    """
    if speed <= 1.0 or not math.isfinite(span_s):
        return wall_now
    return wall_now - span_s * (1.0 - 1.0 / speed)


class SimClock:
    """Simulated epoch seconds, paced against the wall clock.

    ``wall``/``sleep`` are injectable for tests. ``start`` overrides the anchor (a start in the
    future is still never emitted early: :meth:`wait_until` waits for the wall clock).
    """

    def __init__(
        self,
        *,
        speed: float,
        span_s: float,
        start: float | None = None,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not speed > 0:
            raise ValueError("speed must be > 0 (math.inf: as fast as possible)")
        self.speed = float(speed)
        self.wall = wall
        self.sleep = sleep
        self.wall0 = wall()
        self.start = anchor_start(self.wall0, span_s, self.speed) if start is None else start
        self.now = self.start

    @property
    def elapsed(self) -> float:
        """Simulated seconds since the start."""
        return self.now - self.start

    def due(self, sim_t: float) -> float:
        """The wall time at which simulated time ``sim_t`` may be emitted."""
        paced = self.wall0 if math.isinf(self.speed) else (
            self.wall0 + (sim_t - self.start) / self.speed
        )  # fmt: skip
        return max(paced, sim_t)

    def wait_until(self, sim_t: float, stop: threading.Event | None = None) -> bool:
        """Block until ``sim_t`` is due; ``False`` when ``stop`` was set meanwhile."""
        while True:
            if stop is not None and stop.is_set():
                return False
            left = self.due(sim_t) - self.wall()
            if left <= 0:
                return True
            self.sleep(min(left, 0.25))

    def advance_to(self, sim_t: float) -> None:
        """Move the clock to ``sim_t`` (never backwards)."""
        self.now = max(self.now, sim_t)
