"""Silences: mute matching alerts for a time range, as Alertmanager does.

A silence is active on ``[starts_at, ends_at)``; it mutes an alert when *all* its matchers match
the alert's :attr:`~opsloop.act.incidents.alert.Alert.match_labels` (labels plus
``severity``). As in Alertmanager a silence needs at least one matcher that does not match the
empty string - otherwise it would mute every alert - and silences are expired (their end moved
to now), not deleted, so the record of who muted what stays.

>>> from opsloop.act.incidents.alert import Alert, Severity
>>> s = Silence.create("s1", 'service=~"api|web"', 0.0, 3600.0, "ana", "deploy")
>>> a = Alert(name="5xx", severity=Severity.ERROR, starts_at=10.0, labels={"service": "web"})
>>> is_silenced(a, [s], now=100.0), is_silenced(a, [s], now=3600.0)
(True, False)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from opsloop.act.incidents.alert import Alert
from opsloop.act.incidents.matchers import Matcher, matches_all, parse_matchers

__all__ = ["Silence", "is_silenced", "silenced_by"]


@dataclass(frozen=True)
class Silence:
    """Mute alerts matching ``matchers`` from ``starts_at`` until (excluding) ``ends_at``.

    >>> Silence("s", (), 0.0, 1.0, "me", "")
    Traceback (most recent call last):
    ...
    ValueError: a silence needs at least one matcher that does not match the empty string
    """

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "matchers", tuple(self.matchers))
        if not all(math.isfinite(t) for t in (self.starts_at, self.ends_at)):
            raise ValueError("silence times must be finite")
        if self.ends_at < self.starts_at:
            raise ValueError("a silence cannot end before it starts")
        if all(m.matches_empty for m in self.matchers):
            raise ValueError(
                "a silence needs at least one matcher that does not match the empty string"
            )

    @classmethod
    def create(
        cls,
        id: str,
        matchers: str | Iterable[Matcher],
        starts_at: float,
        ends_at: float,
        created_by: str,
        comment: str = "",
    ) -> Silence:
        """A silence whose matchers may be given as text (``'{a="b", c=~"d.*"}'``)."""
        ms = parse_matchers(matchers) if isinstance(matchers, str) else tuple(matchers)
        return cls(id, tuple(ms), float(starts_at), float(ends_at), created_by, comment)

    def state(self, now: float) -> Literal["pending", "active", "expired"]:
        """``pending`` before ``starts_at``, ``active`` until ``ends_at``, then ``expired``.

        >>> s = Silence.create("s", "a=b", 10.0, 20.0, "me")
        >>> s.state(5.0), s.state(10.0), s.state(20.0)
        ('pending', 'active', 'expired')
        """
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def is_active(self, now: float) -> bool:
        """Whether the silence mutes alerts at ``now``."""
        return self.state(now) == "active"

    def matches(self, alert: Alert) -> bool:
        """Whether the matchers select ``alert`` (regardless of time)."""
        return matches_all(self.matchers, alert.match_labels)

    def expire(self, now: float) -> Silence:
        """A copy that ends at ``now`` (a pending silence ends where it starts).

        >>> Silence.create("s", "a=b", 0.0, 100.0, "me").expire(40.0).ends_at
        40.0
        """
        if self.state(now) == "expired":
            return self
        end = max(min(now, self.ends_at), self.starts_at)
        return replace(self, ends_at=end)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: matchers as strings."""
        return {
            "id": self.id,
            "matchers": [str(m) for m in self.matchers],
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "created_by": self.created_by,
            "comment": self.comment,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Silence:
        """Inverse of :meth:`to_dict`.

        >>> s = Silence.create("s", '{a="b", c!~"x|y"}', 0.0, 9.0, "me", "why")
        >>> Silence.from_dict(s.to_dict()) == s
        True
        """
        ms = [m for text in d["matchers"] for m in parse_matchers(text)]
        return cls.create(
            d["id"], ms, d["starts_at"], d["ends_at"], d["created_by"], d.get("comment", "")
        )


def silenced_by(alert: Alert, silences: Iterable[Silence], now: float) -> list[Silence]:
    """The silences active at ``now`` that mute ``alert``."""
    return [s for s in silences if s.is_active(now) and s.matches(alert)]


def is_silenced(alert: Alert, silences: Iterable[Silence], now: float) -> bool:
    """Whether any silence active at ``now`` mutes ``alert``."""
    return any(s.is_active(now) and s.matches(alert) for s in silences)
