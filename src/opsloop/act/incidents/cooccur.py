"""Learned co-occurrence: how often signal kinds show up together on one host.

Every time a signal of kind A starts on a host, one *occurrence record* of A is opened: the set
of other kinds seen on the same host within ``window_s`` before or after it (later arrivals
are added to it). For each kind only the last ``history`` records are kept, so
:meth:`CooccurrenceStats.support` answers "of the last 10 times A happened, B was there 9
times" and adapts when the system changes. Memory is bounded: at most ``max_kinds`` kinds
(least recently seen forgotten first), ``history`` records each, ``max_hosts`` hosts with
``max_recent`` recent signals each.

The state round-trips through :meth:`~CooccurrenceStats.to_dict`, so the caller can persist it.

>>> st = CooccurrenceStats(window_s=120, history=10)
>>> for i in range(9):
...     st.observe("db1", "log_burst", 1000.0 * i)
...     st.observe("db1", "cpu_spike", 1000.0 * i + 40)
>>> st.observe("db1", "log_burst", 9000.0)
>>> st.support("log_burst", "cpu_spike")
(9, 10)
>>> st.describe("log_burst", "cpu_spike")
'log_burst and cpu_spike co-occurred on one host 9 of the last 10 times'
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["CooccurrenceStats"]


class CooccurrenceStats:
    """Bounded counts of kinds occurring together on one host (see the module docstring)."""

    def __init__(
        self,
        window_s: float = 300.0,
        history: int = 10,
        max_kinds: int = 1000,
        max_hosts: int = 10_000,
        max_recent: int = 64,
    ) -> None:
        if window_s <= 0 or history < 1 or max_kinds < 1 or max_hosts < 1 or max_recent < 1:
            raise ValueError("window_s, history and the bounds must be positive")
        self.window_s = float(window_s)
        self.history = int(history)
        self.max_kinds = int(max_kinds)
        self.max_hosts = int(max_hosts)
        self.max_recent = int(max_recent)
        self._seq = 0
        # kind -> last `history` occurrence records [occurrence id, kinds seen with it]
        self._records: OrderedDict[str, deque[tuple[int, set[str]]]] = OrderedDict()
        # host -> recent signals (time, kind, occurrence id)
        self._recent: OrderedDict[str, deque[tuple[float, str, int]]] = OrderedDict()

    def observe(self, host: str, kind: str, t: float) -> None:
        """Record that a signal of ``kind`` started on ``host`` at ``t`` (epoch seconds)."""
        recent = self._recent.get(host)
        if recent is None:
            recent = self._recent[host] = deque(maxlen=self.max_recent)
            while len(self._recent) > self.max_hosts:
                self._recent.popitem(last=False)
        else:
            self._recent.move_to_end(host)
        near = [(k, occ) for (t2, k, occ) in recent if k != kind and abs(t - t2) <= self.window_s]
        self._seq += 1
        records = self._records.get(kind)
        if records is None:
            records = self._records[kind] = deque(maxlen=self.history)
            while len(self._records) > self.max_kinds:
                self._records.popitem(last=False)
        else:
            self._records.move_to_end(kind)
        records.append((self._seq, {k for k, _ in near}))
        for k, occ in near:
            for occ_id, seen in self._records.get(k, ()):
                if occ_id == occ:
                    seen.add(kind)
                    break
        recent.append((t, kind, self._seq))

    def support(self, a: str, b: str) -> tuple[int, int]:
        """``(together, total)``: of the last ``total`` occurrences of ``a``, how many had ``b``.

        >>> CooccurrenceStats().support("x", "y")
        (0, 0)
        """
        records = self._records.get(a, ())
        return sum(1 for _, seen in records if b in seen), len(records)

    def best(self, kinds: Iterable[str], others: Iterable[str]) -> tuple[str, str, int, int] | None:
        """The strongest pair ``(a, b, together, total)`` between two sets of kinds, in either
        direction (most co-occurrences, then highest ratio); ``None`` when none co-occurred."""
        found: tuple[str, str, int, int] | None = None
        key = (0, 0.0)
        others = list(others)
        for x in kinds:
            for y in others:
                if x == y:
                    continue
                for a, b in ((x, y), (y, x)):
                    n, total = self.support(a, b)
                    if n and (n, n / total) > key:
                        key, found = (n, n / total), (a, b, n, total)
        return found

    def describe(self, a: str, b: str) -> str:
        """A sentence for a reason: ``a and b co-occurred on one host n of the last m times``."""
        n, total = self.support(a, b)
        return f"{a} and {b} co-occurred on one host {n} of the last {total} times"

    # -- persistence --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-able state.

        >>> st = CooccurrenceStats(window_s=60)
        >>> st.observe("h", "a", 0.0); st.observe("h", "b", 10.0)
        >>> CooccurrenceStats.from_dict(st.to_dict()).support("a", "b")
        (1, 1)
        """
        return {
            "window_s": self.window_s,
            "history": self.history,
            "max_kinds": self.max_kinds,
            "max_hosts": self.max_hosts,
            "max_recent": self.max_recent,
            "seq": self._seq,
            "records": {k: [[occ, sorted(s)] for occ, s in v] for k, v in self._records.items()},
            "recent": {h: [list(x) for x in v] for h, v in self._recent.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CooccurrenceStats:
        """Inverse of :meth:`to_dict`."""
        st = cls(d["window_s"], d["history"], d["max_kinds"], d["max_hosts"], d["max_recent"])
        st._seq = int(d["seq"])
        for k, v in d["records"].items():
            st._records[k] = deque(((int(o), set(s)) for o, s in v), maxlen=st.history)
        for h, v in d["recent"].items():
            st._recent[h] = deque(
                ((float(t), str(k), int(o)) for t, k, o in v), maxlen=st.max_recent
            )
        return st
