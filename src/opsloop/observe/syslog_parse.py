"""Parse one syslog message (RFC 5424 or RFC 3164) into a :class:`RawLine`. Pure functions.

``<PRI>`` gives facility and severity (severity → ``level``); RFC 5424 adds version, an ISO
timestamp, hostname, app-name, procid, msgid and structured data; RFC 3164 has a year-less
``Mmm dd hh:mm:ss`` timestamp (the year is inferred, see :func:`infer_year`), a hostname and a
``tag[pid]:``. Nothing here raises on bad input: what can't be parsed stays in the message —
without a usable header the whole line is the message.

``fields`` keys (present only when known): ``syslog_format`` (``rfc5424``, ``rfc3164``,
``pri-only``, ``none``), ``priority``, ``facility``, ``severity``, ``appname``, ``procid``,
``msgid``, ``structured_data`` (``{sd_id: {param: value}}``).
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, tzinfo
from typing import Any

from opsloop.observe.record import RawLine

SEVERITY_LEVELS = (
    "emergency", "alert", "critical", "error", "warning", "notice", "info", "debug",
)  # fmt: skip
FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "ntp", "security", "console", "solaris-cron",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {name: i for i, name in enumerate(_MONTH_NAMES, start=1)}
_FUTURE_SLACK = timedelta(days=1)  # clock skew / time zones before a 3164 date counts as future

_PRI = re.compile(r"<(\d{1,3})>")
_ISO_TS = re.compile(r"\d{4}-\d{2}-\d{2}T\S+")
_BSD_TS = re.compile(r"([A-Za-z]{3}) {1,2}(\d{1,2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(?: |$)")
_TAG = re.compile(r"([^\s\[\]:]{1,128})(?:\[([^\]\s]{0,64})\])?:(?: |$)")


def parse_priority(pri: int) -> tuple[str, str]:
    """``(facility, level)`` names for a PRI value 0 to 191.

    >>> parse_priority(34)
    ('auth', 'critical')
    """
    return FACILITIES[pri >> 3], SEVERITY_LEVELS[pri & 7]


def parse_syslog(
    line: str,
    *,
    source: str = "syslog",
    received_at: float | None = None,
    now: float | None = None,
    tz: tzinfo | None = None,
) -> RawLine:
    """Parse one syslog message; never raises.

    ``now`` (epoch seconds, default the current time) anchors the year of RFC 3164 timestamps,
    which are read in ``tz`` (default: this machine's local time zone).

    >>> r = parse_syslog("<34>1 2003-10-11T22:14:15.003Z mymachine su - ID47 - 'su root' failed")
    >>> r.text, r.host, r.level, r.fields["appname"], r.fields["msgid"]
    ("'su root' failed", 'mymachine', 'critical', 'su', 'ID47')
    """
    received = time.time() if received_at is None else received_at
    now = received if now is None else now
    fields: dict[str, Any] = {}
    rest = line
    m = _PRI.match(line)
    if m and int(m.group(1)) <= 191 and not (len(m.group(1)) > 1 and m.group(1)[0] == "0"):
        pri = int(m.group(1))
        facility, level = parse_priority(pri)
        fields.update(priority=pri, facility=facility, severity=pri & 7)
        rest = line[m.end() :]
        parsed = _parse_5424(rest) or _parse_3164(rest, now, tz)
        fmt = "rfc5424" if parsed and parsed[3].get("_5424") else "rfc3164"
        if parsed is None:
            parsed, fmt = (rest, None, None, {}), "pri-only"
    else:
        level = None
        parsed = _parse_3164(line, now, tz)
        fmt = "rfc3164"
        if parsed is None:
            parsed, fmt = (line, None, None, {}), "none"
    text, timestamp, host, extra = parsed
    extra.pop("_5424", None)
    fields["syslog_format"] = fmt
    fields.update(extra)
    return RawLine(
        text=text,
        source=source,
        received_at=received,
        timestamp=timestamp,
        host=host,
        level=level,
        fields=fields,
    )


_Parsed = tuple[str, float | None, str | None, dict[str, Any]]


_NIL = "-"


def _nil(value: str) -> str | None:
    return None if value == _NIL else value


def _parse_5424(rest: str) -> _Parsed | None:
    """``VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD [SP MSG]``."""
    parts = rest.split(" ", 6)
    if len(parts) < 6 or not re.fullmatch(r"[1-9]\d{0,2}", parts[0]):
        return None
    stamp = _nil(parts[1])
    if stamp is not None and not _ISO_TS.fullmatch(stamp):
        return None
    timestamp = _parse_iso(stamp) if stamp is not None else None
    sd_and_msg = parts[6] if len(parts) > 6 else ""
    if sd_and_msg.startswith("-"):
        sd: dict[str, dict[str, str]] = {}
        msg = sd_and_msg[1:]
    elif sd_and_msg.startswith("["):
        parsed_sd = parse_structured_data(sd_and_msg)
        if parsed_sd is None:
            return None
        sd, msg = parsed_sd
    elif sd_and_msg == "":
        sd, msg = {}, ""
    else:
        return None
    msg = msg.removeprefix(" ").removeprefix("\ufeff")
    extra: dict[str, Any] = {"_5424": True, "version": int(parts[0])}
    for name, value in (("appname", parts[3]), ("procid", parts[4]), ("msgid", parts[5])):
        if _nil(value) is not None:
            extra[name] = value
    if sd:
        extra["structured_data"] = sd
    return msg, timestamp, _nil(parts[2]), extra


def parse_structured_data(text: str) -> tuple[dict[str, dict[str, str]], str] | None:
    """Parse leading RFC 5424 SD-ELEMENTs; ``(sd, remainder)`` or ``None`` if malformed.

    >>> parse_structured_data('[ex@1 a="1" b="q\\\\"x"][ex@2] hi')
    ({'ex@1': {'a': '1', 'b': 'q"x'}, 'ex@2': {}}, ' hi')
    """
    out: dict[str, dict[str, str]] = {}
    i, n = 0, len(text)
    try:
        while i < n and text[i] == "[":
            j = i + 1
            while text[j] not in " ]":
                j += 1
            sd_id = text[i + 1 : j]
            if not sd_id or any(c in sd_id for c in '="'):
                return None
            params = out.setdefault(sd_id, {})
            i = j
            while text[i] != "]":
                if text[i] != " ":
                    return None
                while text[i] == " ":
                    i += 1
                eq = text.index("=", i)
                name = text[i:eq]
                if not name or " " in name or text[eq + 1] != '"':
                    return None
                i = eq + 2
                value: list[str] = []
                while text[i] != '"':
                    if text[i] == "\\" and text[i + 1] in '"\\]':
                        i += 1
                    value.append(text[i])
                    i += 1
                params[name] = "".join(value)
                i += 1
            i += 1
    except (IndexError, ValueError):
        return None
    return out, text[i:]


def _parse_iso(token: str) -> float | None:
    try:
        return datetime.fromisoformat(token).timestamp()
    except ValueError:
        return None


def _parse_3164(rest: str, now: float, tz: tzinfo | None) -> _Parsed | None:
    """``TIMESTAMP SP HOSTNAME SP TAG[PID]: MSG`` with the hostname and tag optional."""
    timestamp: float | None
    m = _BSD_TS.match(rest)
    if m and m.group(1).lower() in _MONTHS:
        month, day = _MONTHS[m.group(1).lower()], int(m.group(2))
        hh, mm, ss = int(m.group(3)), int(m.group(4)), int(m.group(5))
        micro = int((m.group(6) or "0").ljust(6, "0"))
        timestamp = infer_year(month, day, hh, mm, ss, micro, now=now, tz=tz)
        if timestamp is None:
            return None
        body = rest[m.end() :]
    else:
        iso = _ISO_TS.match(rest)
        timestamp = _parse_iso(iso.group(0)) if iso else None
        if timestamp is None:
            return None
        body = rest[iso.end() :].removeprefix(" ")
    extra: dict[str, Any] = {}
    host: str | None = None
    tag = _TAG.match(body)
    if tag is None:
        host, _, body = body.partition(" ")
        host = host or None
        tag = _TAG.match(body)
    if tag is not None:
        extra["appname"] = tag.group(1)
        if tag.group(2):
            extra["procid"] = tag.group(2)
        body = body[tag.end() :]
    return body, timestamp, host, extra


def infer_year(
    month: int,
    day: int,
    hour: int,
    minute: int,
    second: int,
    microsecond: int = 0,
    *,
    now: float,
    tz: tzinfo | None = None,
) -> float | None:
    """Epoch seconds for a year-less RFC 3164 date, or ``None`` if it is no valid date.

    The current year is assumed; a date more than a day in the future rolls back a year (a
    December line read in January), and a January line read on 31 December moves forward.
    """
    ref = datetime.fromtimestamp(now, tz)
    limit = now + _FUTURE_SLACK.total_seconds()
    for year in (ref.year + 1, ref.year, ref.year - 1):
        try:
            candidate = datetime(year, month, day, hour, minute, second, microsecond, tzinfo=tz)
        except ValueError:  # 29 Feb outside a leap year, day 31 in a 30-day month…
            continue
        epoch = candidate.timestamp()  # naive → local time
        if epoch <= limit:
            return epoch
    return None
