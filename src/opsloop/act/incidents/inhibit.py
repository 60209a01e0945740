"""Inhibition: a firing *source* alert mutes *target* alerts that share some labels.

Semantics follow Alertmanager's ``inhibit_rules``:

* a target alert (matching ``target_matchers``) is inhibited while some *firing* alert matches
  ``source_matchers`` and has the same value for every label in ``equal`` (a missing label is
  the empty string, so two alerts both lacking ``host`` are "equal" on ``host``);
* an alert that matches both sides of a rule is not inhibited by alerts that also match both
  sides (no self-inhibition, no mutual muting of peers).

One opsloop addition, ``require_equal``: when true, the ``equal`` labels must also be present
(non-empty). The default rule sets it, so a critical alert without ``host`` and ``service``
does not mute every label-less warning in the system.

Default rule (:data:`DEFAULT_RULES`): **a critical alert inhibits warning and info alerts with
equal ``host`` and ``service``** (``error`` alerts stay visible): on a host/service that is
down, the follow-on warnings are noise.

Matchers see :attr:`~opsloop.act.incidents.alert.Alert.match_labels` (labels plus
``severity``).

>>> from opsloop.act.incidents.alert import Alert, Severity
>>> crit = Alert(name="Down", severity=Severity.CRITICAL, starts_at=0.0,
...              labels={"host": "db1", "service": "pg"})
>>> warn = Alert(name="SlowQueries", severity=Severity.WARNING, starts_at=5.0,
...              labels={"host": "db1", "service": "pg"})
>>> inhibited(warn, [crit])
'inhibited by Down (critical) with equal host=db1, service=pg [rule critical-inhibits-lower]'
>>> inhibited(crit, [warn]) is None
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opsloop.act.incidents.alert import Alert
from opsloop.act.incidents.matchers import Matcher, matches_all, parse_matchers

__all__ = ["DEFAULT_RULES", "InhibitRule", "inhibited", "inhibited_by"]


@dataclass(frozen=True)
class InhibitRule:
    """One inhibition rule (``source_matchers``, ``target_matchers``, ``equal``)."""

    source_matchers: tuple[Matcher, ...]
    target_matchers: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()
    name: str = ""
    require_equal: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "source_matchers", tuple(self.source_matchers))
        object.__setattr__(self, "target_matchers", tuple(self.target_matchers))
        object.__setattr__(self, "equal", tuple(self.equal))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InhibitRule:
        """From Alertmanager-style config: matcher strings and ``equal`` label names.

        >>> r = InhibitRule.from_dict({"source_matchers": ['severity="critical"'],
        ...                            "target_matchers": ['severity=~"warning|info"'],
        ...                            "equal": ["host"]})
        >>> [str(m) for m in r.target_matchers], r.equal
        (['severity=~"warning|info"'], ('host',))
        """

        def ms(key: str) -> tuple[Matcher, ...]:
            return tuple(m for text in d.get(key, []) for m in parse_matchers(text))

        return cls(
            ms("source_matchers"),
            ms("target_matchers"),
            tuple(d.get("equal", [])),
            str(d.get("name", "")),
            bool(d.get("require_equal", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; inverse of :meth:`from_dict`."""
        return {
            "name": self.name,
            "source_matchers": [str(m) for m in self.source_matchers],
            "target_matchers": [str(m) for m in self.target_matchers],
            "equal": list(self.equal),
            "require_equal": self.require_equal,
        }

    def source_of(self, source: Alert, target: Alert) -> bool:
        """Whether firing ``source`` inhibits ``target`` under this rule."""
        if source.fingerprint == target.fingerprint or not source.firing:
            return False
        t, s = target.match_labels, source.match_labels
        if not matches_all(self.target_matchers, t) or not matches_all(self.source_matchers, s):
            return False
        if matches_all(self.source_matchers, t) and matches_all(self.target_matchers, s):
            return False  # both match both sides: peers do not inhibit each other
        for label in self.equal:
            v = t.get(label, "")
            if v != s.get(label, "") or (self.require_equal and not v):
                return False
        return True


DEFAULT_RULES: tuple[InhibitRule, ...] = (
    InhibitRule.from_dict(
        {
            "name": "critical-inhibits-lower",
            "source_matchers": ['severity="critical"'],
            "target_matchers": ['severity=~"warning|info"'],
            "equal": ["host", "service"],
            "require_equal": True,
        }
    ),
)


def inhibited_by(
    alert: Alert, firing_alerts: Iterable[Alert], rules: Sequence[InhibitRule] = DEFAULT_RULES
) -> tuple[Alert, InhibitRule] | None:
    """The first firing alert and rule that inhibit ``alert``, or ``None``."""
    sources = list(firing_alerts)
    for rule in rules:
        for src in sources:
            if rule.source_of(src, alert):
                return src, rule
    return None


def inhibited(
    alert: Alert, firing_alerts: Iterable[Alert], rules: Sequence[InhibitRule] = DEFAULT_RULES
) -> str | None:
    """Why ``alert`` is inhibited (a sentence), or ``None`` when it is not.

    Only firing alerts in ``firing_alerts`` count (resolved ones are skipped).
    """
    found = inhibited_by(alert, firing_alerts, rules)
    if found is None:
        return None
    src, rule = found
    where = ", ".join(f"{k}={src.match_labels.get(k, '')}" for k in rule.equal)
    text = f"inhibited by {src.name} ({src.severity.value})"
    if where:
        text += f" with equal {where}"
    return text + (f" [rule {rule.name}]" if rule.name else "")
