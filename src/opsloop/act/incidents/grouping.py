"""When to notify about a group of alerts: Alertmanager's group_wait / group_interval /
repeat_interval as a pure state machine.

A *group* is whatever the caller notifies about as one unit - in opsloop an incident. The
caller keeps one :class:`GroupState` per group and calls :meth:`NotificationPlanner.plan` with
the fingerprints currently firing and resolved (silenced and inhibited alerts already removed,
as Alertmanager does) whenever something changes or the planned ``next_at`` time is reached.

Rules (Alertmanager's dispatcher and dedup stage):

* a new group waits ``group_wait`` (30 s) so alerts arriving together go out together - unless
  its oldest alert started longer than ``group_wait`` ago, then it flushes at once;
* after that the group is looked at every ``group_interval`` (5 min); a notification goes out
  when an alert fires that the last notification did not include, when (with
  ``send_resolved``) an alert resolved that it did not report as resolved, or when everything
  resolved after something had been reported firing;
* otherwise, while something fires, the same notification repeats after ``repeat_interval``
  (4 h);
* once nothing fires and that was notified (or never was), the group is ``closed``.

>>> p = NotificationPlanner()
>>> st = GroupState.new("inc-1", now=0.0)
>>> st, n = p.plan(st, firing={"a"}, resolved=set(), now=10.0)
>>> n is None, st.next_flush_at
(True, 30.0)
>>> st, n = p.plan(st, firing={"a", "b"}, resolved=set(), now=30.0)
>>> n.reason, n.firing, st.next_flush_at
('initial', ('a', 'b'), 330.0)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Set
from dataclasses import dataclass
from typing import Literal

__all__ = ["GroupState", "Notification", "NotificationPlanner"]

Reason = Literal["initial", "new_firing", "resolved", "all_resolved", "repeat"]


@dataclass(frozen=True)
class GroupState:
    """What the planner remembers about one group (JSON-able through ``dataclasses.asdict``).

    ``notified_firing``/``notified_resolved`` are the fingerprints of the last notification;
    ``last_notified_at`` is ``None`` before the first one.
    """

    key: str
    created_at: float
    next_flush_at: float
    last_notified_at: float | None = None
    notified_firing: frozenset[str] = frozenset()
    notified_resolved: frozenset[str] = frozenset()
    closed: bool = False

    @classmethod
    def new(
        cls, key: str, now: float, oldest_start: float | None = None, group_wait: float = 30.0
    ) -> GroupState:
        """A fresh group; it flushes ``group_wait`` after ``now`` (or at once when its oldest
        alert started more than ``group_wait`` ago)."""
        due = now + group_wait
        if oldest_start is not None and oldest_start + group_wait <= now:
            due = now
        return cls(key=key, created_at=now, next_flush_at=due)


@dataclass(frozen=True)
class Notification:
    """One notification to send for a group: the firing and resolved fingerprints (sorted)."""

    group_key: str
    reason: Reason
    firing: tuple[str, ...]
    resolved: tuple[str, ...]


@dataclass(frozen=True)
class NotificationPlanner:
    """Decides, from a group's state and the time, which notification is due (seconds)."""

    group_wait: float = 30.0
    group_interval: float = 300.0
    repeat_interval: float = 4 * 3600.0
    send_resolved: bool = True

    def new_group(self, key: str, now: float, oldest_start: float | None = None) -> GroupState:
        """:meth:`GroupState.new` with this planner's ``group_wait``."""
        return GroupState.new(key, now, oldest_start, self.group_wait)

    def plan(
        self, state: GroupState, firing: Set[str], resolved: Set[str], now: float
    ) -> tuple[GroupState, Notification | None]:
        """The new state and the notification due at ``now`` (``None`` when nothing is due).

        Call again at ``state.next_flush_at`` at the latest. Before that time nothing is sent
        (changes are batched into the next flush).

        >>> p = NotificationPlanner(group_wait=0, group_interval=60, repeat_interval=600)
        >>> st, n = p.plan(p.new_group("g", 0.0), {"a"}, set(), 0.0)
        >>> st, n = p.plan(st, {"a"}, set(), 60.0)
        >>> n is None
        True
        >>> st, n = p.plan(st, {"a"}, set(), 600.0)
        >>> n.reason
        'repeat'
        >>> st, n = p.plan(st, set(), {"a"}, 660.0)
        >>> n.reason, st.closed
        ('all_resolved', True)
        """
        if state.closed or now < state.next_flush_at:
            return state, None
        firing, resolved = frozenset(firing), frozenset(resolved) - frozenset(firing)
        reason = self._needs_update(state, firing, resolved, now)
        nxt = dataclasses.replace(state, next_flush_at=now + self.group_interval)
        if not firing and (state.last_notified_at is None or reason is not None):
            nxt = dataclasses.replace(nxt, closed=True)
        if reason is None:
            return nxt, None
        nxt = dataclasses.replace(
            nxt, last_notified_at=now, notified_firing=firing, notified_resolved=resolved
        )
        if reason == "all_resolved" and not self.send_resolved:
            return nxt, None  # cleared from the log, nothing to tell the receiver
        shown = tuple(sorted(resolved)) if self.send_resolved else ()
        return nxt, Notification(state.key, reason, tuple(sorted(firing)), shown)

    def _needs_update(
        self, state: GroupState, firing: frozenset[str], resolved: frozenset[str], now: float
    ) -> Reason | None:
        if state.last_notified_at is None:
            return "initial" if firing else None
        if not firing <= state.notified_firing:
            return "new_firing"
        if not firing:
            return "all_resolved" if state.notified_firing else None
        if self.send_resolved and not resolved <= state.notified_resolved:
            return "resolved"
        if now - state.last_notified_at >= self.repeat_interval:
            return "repeat"
        return None
