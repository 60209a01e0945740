"""Edge-triggered alarms with hysteresis and a refractory period (no alarm storms)."""

from __future__ import annotations

from typing import Any

__all__ = ["EdgeAlarm"]


class EdgeAlarm:
    """Turn a score stream into sparse alarms and a gated score.

    Armed, a score ``>= on`` fires an alarm (a rising edge) and disarms. Disarmed, the alarm
    re-arms once at least ``refractory`` steps have passed since it fired *and* the score has
    stayed ``< off`` for ``clear`` consecutive steps. ``gate(score)`` is the score as emitted:
    unchanged while armed, multiplied by ``damp`` while disarmed, so one incident yields one
    high score instead of a storm, whatever threshold a consumer applies above ``damp``.

    >>> a = EdgeAlarm(on=0.9, off=0.5, refractory=3, clear=2)
    >>> out = []
    >>> for s in [0.1, 0.95, 0.97, 0.99, 0.2, 0.2, 0.2, 0.96]:
    ...     out.append((a.gate(s), a.step(s)))
    >>> [fired for _, fired in out]
    [False, True, False, False, False, False, False, True]
    >>> [round(g, 3) for g, _ in out]
    [0.1, 0.95, 0.485, 0.495, 0.1, 0.1, 0.2, 0.96]
    """

    def __init__(
        self,
        on: float = 0.999,
        off: float = 0.9,
        refractory: int = 100,
        clear: int = 10,
        damp: float = 0.5,
    ) -> None:
        if not (0.0 <= off <= on <= 1.0 and refractory >= 0 and clear >= 1 and 0 <= damp < 1):
            raise ValueError("need 0 <= off <= on <= 1, refractory >= 0, clear >= 1, 0 <= damp < 1")
        self.on, self.off = on, off
        self.refractory, self.clear, self.damp = refractory, clear, damp
        self.armed = True
        self.since = 0
        self.quiet = 0

    def gate(self, score: float) -> float:
        """The score to emit for this step, given the state before it (no state change)."""
        return score if self.armed else self.damp * score

    def step(self, score: float) -> bool:
        """Advance one step; ``True`` iff an alarm fires now."""
        if self.armed:
            if score >= self.on:
                self.armed, self.since, self.quiet = False, 0, 0
                return True
            return False
        self.since += 1
        self.quiet = self.quiet + 1 if score < self.off else 0
        if self.since >= self.refractory and self.quiet >= self.clear:
            self.armed = True
        return False

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "on": self.on,
            "off": self.off,
            "refractory": self.refractory,
            "clear": self.clear,
            "damp": self.damp,
            "armed": self.armed,
            "since": self.since,
            "quiet": self.quiet,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EdgeAlarm:
        """Inverse of :meth:`to_dict`."""
        obj = cls(d["on"], d["off"], d["refractory"], d["clear"], d["damp"])
        obj.armed, obj.since, obj.quiet = bool(d["armed"]), int(d["since"]), int(d["quiet"])
        return obj
