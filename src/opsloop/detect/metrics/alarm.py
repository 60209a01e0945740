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

    Escalation (``escalate = f > 0``): disarmed, a score ``>= on`` whose tail probability
    ``1 - score`` is at least ``f`` times smaller than that of the last alarm fires again,
    undamped, and restarts the refractory period. The gate silences repeats of an incident,
    never a far stronger event that happens to follow it (a real outage 50 steps after a noise
    alarm). ``passes(score)`` says whether ``gate`` emits ``score`` undamped.

    >>> a = EdgeAlarm(on=0.9, off=0.5, refractory=3, clear=2)
    >>> out = []
    >>> for s in [0.1, 0.95, 0.97, 0.99, 0.2, 0.2, 0.2, 0.96]:
    ...     out.append((a.gate(s), a.step(s)))
    >>> [fired for _, fired in out]
    [False, True, False, False, False, False, False, True]
    >>> [round(g, 3) for g, _ in out]
    [0.1, 0.95, 0.485, 0.495, 0.1, 0.1, 0.2, 0.96]
    >>> e = EdgeAlarm(on=0.99, refractory=100, escalate=10.0)
    >>> [e.step(s) for s in (0.991, 0.995, 0.9995, 0.9996)]
    [True, False, True, False]
    """

    def __init__(
        self,
        on: float = 0.999,
        off: float = 0.9,
        refractory: int = 100,
        clear: int = 10,
        damp: float = 0.5,
        escalate: float = 0.0,
    ) -> None:
        if not (
            0.0 <= off <= on <= 1.0
            and refractory >= 0
            and clear >= 1
            and 0 <= damp < 1
            and (escalate == 0.0 or escalate > 1.0)
        ):
            raise ValueError(
                "need 0 <= off <= on <= 1, refractory >= 0, clear >= 1, 0 <= damp < 1, "
                "escalate 0 (off) or > 1"
            )
        self.on, self.off = on, off
        self.refractory, self.clear, self.damp = refractory, clear, damp
        self.escalate = escalate
        self.armed = True
        self.since = 0
        self.quiet = 0
        self.last_p = 1.0  # tail probability 1 - score of the last alarm

    def _escalates(self, score: float) -> bool:
        return (
            self.escalate > 0.0
            and score >= self.on
            and (1.0 - score) * self.escalate <= self.last_p
        )

    def passes(self, score: float) -> bool:
        """Whether :meth:`gate` emits ``score`` undamped (armed, or an escalation)."""
        return self.armed or self._escalates(score)

    def gate(self, score: float) -> float:
        """The score to emit for this step, given the state before it (no state change)."""
        return score if self.passes(score) else self.damp * score

    def step(self, score: float) -> bool:
        """Advance one step; ``True`` iff an alarm fires now."""
        if self.armed:
            if score >= self.on:
                self.armed, self.since, self.quiet = False, 0, 0
                self.last_p = 1.0 - score
                return True
            return False
        if self._escalates(score):
            self.since, self.quiet = 0, 0
            self.last_p = 1.0 - score
            return True
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
            "escalate": self.escalate,
            "last_p": self.last_p,
            "armed": self.armed,
            "since": self.since,
            "quiet": self.quiet,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EdgeAlarm:
        """Inverse of :meth:`to_dict`."""
        # (escalate and last_p are absent from snapshots before escalation: off)
        obj = cls(d["on"], d["off"], d["refractory"], d["clear"], d["damp"], d.get("escalate", 0.0))
        obj.armed, obj.since, obj.quiet = bool(d["armed"]), int(d["since"]), int(d["quiet"])
        obj.last_p = float(d.get("last_p", 1.0))
        return obj
