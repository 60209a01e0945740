"""Group log lines into sessions by a key (an HDFS block id, a request id, a trace id).

A line belongs to the session(s) whose key the ``pattern`` finds in its text (or to the key given
explicitly, e.g. a parsed field). A session closes when no line arrived for ``idle_timeout``
seconds (checked as time advances), when ``max_open`` sessions are open (the least recently active
closes first), or on :meth:`SessionGrouper.flush`. Memory is bounded by ``max_open`` sessions of
at most ``max_events`` events each.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opsloop.detect.anomaly import to_epoch

__all__ = ["HDFS_BLOCK", "Session", "SessionGrouper"]

HDFS_BLOCK = r"blk_-?\d+"


@dataclass(frozen=True)
class Session:
    """A closed session: its key, its template ids in arrival order, first and last time."""

    key: str
    events: tuple[str, ...]
    start: float
    end: float
    truncated: bool = False


class SessionGrouper:
    """Streaming grouping of (template id, time, text) lines into sessions by key.

    >>> g = SessionGrouper(idle_timeout=10.0)
    >>> g.add("T6", 0.0, "allocateBlock: blk_1")
    []
    >>> g.add("T16", 1.0, "Receiving block blk_1 src: /10.0.0.1")
    []
    >>> g.add("T6", 20.0, "allocateBlock: blk_-2")  # blk_1 idle for more than 10 s: closes
    [Session(key='blk_1', events=('T6', 'T16'), start=0.0, end=1.0, truncated=False)]
    >>> [s.key for s in g.flush()]
    ['blk_-2']
    """

    def __init__(
        self,
        pattern: str | None = HDFS_BLOCK,
        idle_timeout: float | None = None,
        max_open: int = 100_000,
        max_events: int = 10_000,
        all_matches: bool = True,
    ) -> None:
        self.pattern = pattern
        self._regex = re.compile(pattern) if pattern else None
        self.idle_timeout = idle_timeout
        self.max_open = int(max_open)
        self.max_events = int(max_events)
        self.all_matches = all_matches
        # key -> [events, start, end, truncated]; ordered by last activity
        self._open: OrderedDict[str, list[Any]] = OrderedDict()

    def keys_of(self, text: str) -> list[str]:
        """Distinct session keys in a line, in order; only the first unless ``all_matches``."""
        if self._regex is None:
            return []
        keys = list(dict.fromkeys(self._regex.findall(text)))
        return keys if self.all_matches else keys[:1]

    def add(
        self,
        template_id: str,
        t: float | datetime,
        text: str = "",
        key: str | None = None,
    ) -> list[Session]:
        """Add one line; returns the sessions that closed (idle or over ``max_open``)."""
        now = to_epoch(t)
        closed = self.expire(now)
        for k in [key] if key is not None else self.keys_of(text):
            entry = self._open.get(k)
            if entry is None:
                entry = self._open[k] = [[], now, now, False]
            else:
                self._open.move_to_end(k)
            if len(entry[0]) < self.max_events:
                entry[0].append(template_id)
            else:
                entry[3] = True
            entry[2] = max(entry[2], now)
        while len(self._open) > self.max_open:
            closed.append(self._close(next(iter(self._open))))
        return closed

    def expire(self, now: float | datetime) -> list[Session]:
        """Close the sessions idle for more than ``idle_timeout`` at time ``now``."""
        if self.idle_timeout is None:
            return []
        limit = to_epoch(now) - self.idle_timeout
        closed = []
        while self._open:
            k, entry = next(iter(self._open.items()))
            if entry[2] >= limit:
                break
            closed.append(self._close(k))
        return closed

    def flush(self) -> list[Session]:
        """Close every open session."""
        return [self._close(k) for k in list(self._open)]

    def _close(self, key: str) -> Session:
        events, start, end, truncated = self._open.pop(key)
        return Session(key, tuple(events), start, end, truncated)

    def __len__(self) -> int:
        return len(self._open)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state (parameters and open sessions)."""
        return {
            "pattern": self.pattern,
            "idle_timeout": self.idle_timeout,
            "max_open": self.max_open,
            "max_events": self.max_events,
            "all_matches": self.all_matches,
            "open": [[k, list(v[0]), v[1], v[2], v[3]] for k, v in self._open.items()],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SessionGrouper:
        """Inverse of :meth:`to_dict`."""
        g = cls(d["pattern"], d["idle_timeout"], d["max_open"], d["max_events"], d["all_matches"])
        for k, events, start, end, truncated in d["open"]:
            g._open[k] = [list(events), float(start), float(end), bool(truncated)]
        return g
