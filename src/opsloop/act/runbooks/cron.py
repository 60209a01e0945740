"""Five-field cron expressions for ``schedule`` triggers: parse, match, next time.

``minute hour day-of-month month day-of-week`` with ``*``, ``a``, ``a-b``, ``*/n``, ``a-b/n``
and comma lists; months ``jan``-``dec`` and days ``sun``-``sat`` by name; day-of-week ``7`` is
Sunday. As in Vixie cron, when both day-of-month and day-of-week are restricted a day matches
if *either* does. Times are interpreted in the timezone of the ``datetime`` passed in.

>>> c = Cron.parse("*/15 9-17 * * mon-fri")
>>> from datetime import datetime
>>> c.matches(datetime(2024, 5, 6, 9, 30)), c.matches(datetime(2024, 5, 5, 9, 30))
(True, False)
>>> c.next_after(datetime(2024, 5, 6, 17, 50))
datetime.datetime(2024, 5, 7, 9, 0)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["Cron", "CronError"]

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {m: i + 1 for i, m in enumerate(_MONTHS)}),
    ("day of week", 0, 7, {d: i for i, d in enumerate(_DAYS)}),
)


class CronError(ValueError):
    """A cron expression that does not parse."""


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression (sets of allowed values per field)."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_any: bool
    weekdays_any: bool

    @classmethod
    def parse(cls, text: str) -> Cron:
        """Parse; :class:`CronError` names the field that is wrong.

        >>> Cron.parse("61 * * * *")
        Traceback (most recent call last):
        ...
        opsloop.act.runbooks.cron.CronError: cron '61 * * * *': minute: 61 is outside 0-59
        """
        parts = str(text).split()
        if len(parts) != 5:
            raise CronError(
                f"cron {text!r}: expected 5 fields (minute hour day month weekday), "
                f"found {len(parts)}"
            )
        sets = []
        for part, (name, lo, hi, names) in zip(parts, _FIELDS, strict=True):
            try:
                sets.append(_field(part, lo, hi, names))
            except CronError as e:
                raise CronError(f"cron {text!r}: {name}: {e}") from None
        weekdays = frozenset(0 if d == 7 else d for d in sets[4])
        return cls(
            " ".join(parts),
            sets[0],
            sets[1],
            sets[2],
            sets[3],
            weekdays,
            parts[2] == "*",
            parts[4] == "*",
        )

    def matches(self, t: datetime) -> bool:
        """Whether minute ``t`` is a firing time."""
        if t.minute not in self.minutes or t.hour not in self.hours or t.month not in self.months:
            return False
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.days_any or self.weekdays_any:
            return dom and dow
        return dom or dow

    def next_after(self, t: datetime, *, limit_days: int = 366 * 5) -> datetime:
        """The first firing minute strictly after ``t`` (seconds dropped)."""
        cur = t.replace(second=0, microsecond=0) + timedelta(minutes=1)
        end = cur + timedelta(days=limit_days)
        while cur < end:
            if cur.month not in self.months:
                cur = (cur.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
                continue
            day_ok = self.matches(cur.replace(hour=min(self.hours), minute=min(self.minutes)))
            if not day_ok:
                cur = cur.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if cur.hour not in self.hours:
                cur = cur.replace(minute=0) + timedelta(hours=1)
                continue
            if self.matches(cur):
                return cur
            cur += timedelta(minutes=1)
        raise CronError(f"cron {self.text!r}: no firing time within {limit_days} days")


def _value(tok: str, lo: int, hi: int, names: dict[str, int]) -> int:
    v = names.get(tok.lower())
    if v is None:
        if not tok.isdigit():
            raise CronError(f"{tok!r} is not a number")
        v = int(tok)
    if not lo <= v <= hi:
        raise CronError(f"{v} is outside {lo}-{hi}")
    return v


def _field(part: str, lo: int, hi: int, names: dict[str, int]) -> frozenset[int]:
    out: set[int] = set()
    for item in part.split(","):
        rng, _, step_s = item.partition("/")
        step = 1
        if step_s:
            if not step_s.isdigit() or int(step_s) == 0:
                raise CronError(f"bad step {step_s!r}")
            step = int(step_s)
        if rng == "*":
            a, b = lo, hi
        elif "-" in rng:
            x, _, y = rng.partition("-")
            a, b = _value(x, lo, hi, names), _value(y, lo, hi, names)
            if a > b:
                raise CronError(f"range {rng!r} runs backwards")
        else:
            a = _value(rng, lo, hi, names)
            b = hi if step_s else a
        out.update(range(a, b + 1, step))
    if not out:
        raise CronError(f"{part!r} selects nothing")
    return frozenset(out)
