"""The time an event happened, read from a parsed line's header fields."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

TIME_FIELDS = ("timestamp", "Timestamp", "time", "Time", "Datetime", "ts", "@timestamp", "Date")


def parse_time_value(value: Any) -> float | None:
    """Epoch seconds from a number (seconds, or milliseconds when above 1e11) or ISO-8601 text.

    >>> parse_time_value(1700000000123), parse_time_value("1970-01-01T00:01:00Z")
    (1700000000.123, 60.0)
    >>> parse_time_value("yesterday") is None
    True
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return None
        return float(value) / 1000.0 if value > 1e11 else float(value)
    if isinstance(value, str) and value.strip():
        text = value.strip().replace("Z", "+00:00").replace(",", ".")
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            return None
        return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
    return None


def event_time(fields: Mapping[str, Any]) -> float | None:
    """Epoch seconds from common header fields: ``Date`` + ``Time`` together, else the first
    of :data:`TIME_FIELDS` that parses; ``None`` when none does (naive times are UTC).

    >>> event_time({"Date": "2026-11-28", "Time": "10:00:00,5"})
    1795860000.5
    >>> event_time({"msg": "x"}) is None
    True
    """
    if fields.get("Date") and fields.get("Time"):
        t = parse_time_value(f"{fields['Date']}T{fields['Time']}")
        if t is not None:
            return t
    for key in TIME_FIELDS:
        t = parse_time_value(fields.get(key))
        if t is not None:
            return t
    return None
