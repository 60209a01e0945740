"""Time arguments of the API: epoch seconds, ISO-8601, or durations relative to now."""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``90s``, ``15m``, ``1.5h``, ``7d`` or a plain number.

    >>> parse_duration("15m"), parse_duration("2"), parse_duration("1.5h")
    (900.0, 2.0, 5400.0)
    """
    text = text.strip()
    m = _DURATION.match(text)
    if m:
        return float(m.group(1)) * _UNIT_S[m.group(2)]
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 15m, 2h, 7d)") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"not a duration: {text!r}")
    return value


def parse_time(text: str, now: float | None = None) -> float:
    """Epoch seconds from ``1700000000``, ``2026-11-28T10:00:00Z`` or ``-1h``/``1h`` (ago).

    >>> parse_time("-1h", now=10000.0), parse_time("1970-01-01T00:01:00Z")
    (6400.0, 60.0)
    """
    now = time.time() if now is None else now
    text = text.strip()
    if not text:
        raise ValueError("empty time")
    if text == "now":
        return now
    rel = text[1:] if text.startswith("-") else text
    if _DURATION.match(rel):
        return now - parse_duration(rel)
    try:
        value = float(text)
        if math.isfinite(value):
            return value
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"not a time: {text!r} (use epoch seconds, ISO-8601, or a duration ago like 1h)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()
