"""Log header formats: split a raw log line into header fields and its ``Content``.

A *header format* is written in the LogPAI notation, the way a user writes a grok pattern:
``<Name>`` is a field, everything else is a regular-expression fragment in which a run of
spaces matches any run of whitespace, and the whole format is anchored at both ends. Each
``<Name>`` becomes the lazy named group ``(?P<Name>.*?)``. The field ``Content`` is the message
that the template miner (:mod:`opsloop.detect.templates`) works on.

Besides user formats, a few common formats are built in (``BUILTIN_FORMATS``): RFC 5424 and
RFC 3164 syslog, an ISO-8601 timestamp followed by a level, Apache/nginx combined access logs and
JSON lines carrying ``message`` or ``msg``. :func:`detect_format` picks one from sample lines and
the pseudo-format ``"auto"`` tries them all, line by line.

Input hygiene, the same for every format:

- bytes are decoded as UTF-8 with invalid sequences replaced by U+FFFD;
- leading and trailing whitespace (``\\r\\n`` included) is removed;
- lines longer than :data:`MAX_LINE_CHARS` are cut and end with :data:`TRUNCATION_MARKER` (the
  transports' marker, :mod:`opsloop.observe.record`: one marker whichever cut came first);
- empty (or whitespace-only) lines are skipped by :func:`parse_lines`;
- a line that matches no format is *kept whole*: its ``Content`` is the line itself and
  ``matched`` is ``False``; lines are never dropped.

Everything here is pure: no I/O, no global state besides immutable constants.

>>> parser = LogParser("<Date> <Time> <Level> <Component>: <Content>")
>>> rec = parser.parse("081109 203615 INFO dfs.DataNode: Receiving block blk_1")
>>> rec.content, rec.fields["Level"], rec.matched
('Receiving block blk_1', 'INFO', True)
>>> parser.parse("no header here").content
'no header here'
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from opsloop.observe.record import TRUNCATION_MARKER

__all__ = [
    "BUILTIN_FORMATS",
    "MAX_LINE_CHARS",
    "TRUNCATION_MARKER",
    "LogParser",
    "ParsedLine",
    "clean_line",
    "compile_format",
    "detect_format",
    "parse_lines",
]

#: Lines longer than this many characters are truncated (the marker is appended after the cut).
MAX_LINE_CHARS = 16_384

_FIELD = re.compile(r"(?<!\(\?P)<([A-Za-z_][A-Za-z0-9_]*)>")
_SPACES = re.compile(r" +")

#: Built-in formats in LogPAI notation (``"json"`` is handled by a JSON decoder, not a regex).
BUILTIN_FORMATS: dict[str, str] = {
    # <PRI>VERSION TIMESTAMP HOST APP PROCID MSGID [SD] MSG
    "syslog-rfc5424": (
        r"<<Pri>>[0-9]{1,2} <Timestamp> <Host> <App> <ProcId> <MsgId> "
        r"(?P<SD>-|(?:\[.*?\])+)(?: <Content>)?"
    ),
    # [<PRI>]Mmm dd hh:mm:ss HOST TAG[PID]: MSG
    "syslog-rfc3164": (
        r"(?:<[0-9]{1,3}>)?(?P<Timestamp>[A-Z][a-z]{2} +[0-9]{1,2} [0-9:]{8}) "
        r"<Host> (?P<Tag>[^\s:\[]+)(?:\[(?P<Pid>[0-9]+)\])?: <Content>"
    ),
    # combined: host ident user [time] "request" status size "referer" "agent"
    "apache-combined": (
        r"<Host> <Ident> <User> \[<Time>\] \"<Request>\" (?P<Status>[0-9]{3}) "
        r"(?P<Size>[0-9]+|-)(?: \"<Referer>\" \"<Agent>\")?"
    ),
    # 2024-01-02T03:04:05.678Z INFO [thread] logger - message  (brackets/dash optional)
    "iso8601-level": (
        r"(?P<Timestamp>[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}"
        r"(?:[.,][0-9]+)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?) \[?"
        r"(?P<Level>TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|CRITICAL|FATAL|SEVERE)\]?:? "
        r"<Content>"
    ),
    "json": "<json>",
}
_DETECT_ORDER = ("json", "syslog-rfc5424", "syslog-rfc3164", "apache-combined", "iso8601-level")
_JSON_MESSAGE_KEYS = ("message", "msg", "log", "MESSAGE")


@dataclass(frozen=True, slots=True)
class ParsedLine:
    """One parsed line: header ``fields``, the message ``content`` and whether a format matched."""

    content: str
    fields: dict[str, str] = field(default_factory=dict)
    matched: bool = True
    format: str = ""


def clean_line(raw: str | bytes, max_chars: int = MAX_LINE_CHARS) -> str:
    """Decode, strip surrounding whitespace (line endings too) and truncate one raw line.

    Invalid UTF-8 is replaced by U+FFFD; a line over ``max_chars`` characters keeps its first
    ``max_chars`` characters followed by :data:`TRUNCATION_MARKER`.

    >>> clean_line(b"caf\\xe9 ok\\r\\n")
    'caf\\ufffd ok'
    >>> clean_line("x" * 10, max_chars=4)
    'xxxx …[truncated]'
    """
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes | bytearray) else raw
    text = text.strip()
    if len(text) > max_chars:
        text = text[:max_chars] + TRUNCATION_MARKER
    return text


def compile_format(fmt: str) -> re.Pattern[str]:
    """Compile a LogPAI header format into an anchored regular expression.

    ``<Name>`` becomes the lazy named group ``(?P<Name>.*?)``, a run of spaces in the literal
    parts becomes ``\\s+``, the remaining literal text is used as a regex fragment unchanged,
    and the whole pattern is anchored with ``^...$``.

    >>> rx = compile_format(r"<Time>\\|<Component>\\|<Content>")
    >>> rx.match("20171223|Step_LSC|onStandStepChanged 3579").group("Content")
    'onStandStepChanged 3579'
    >>> compile_format("<A>  <B>").pattern
    '^(?P<A>.*?)\\\\s+(?P<B>.*?)$'
    """
    parts: list[str] = []
    pos = 0
    seen: set[str] = set()
    for m in _FIELD.finditer(fmt):
        parts.append(_SPACES.sub(r"\\s+", fmt[pos : m.start()]))
        name = m.group(1)
        if name in seen:  # a repeated field name: later copies are plain lazy groups
            parts.append("(?:.*?)")
        else:
            seen.add(name)
            parts.append(f"(?P<{name}>.*?)")
        pos = m.end()
    parts.append(_SPACES.sub(r"\\s+", fmt[pos:]))
    return re.compile("^" + "".join(parts) + "$", re.DOTALL)


def _parse_json(line: str) -> ParsedLine | None:
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    for key in _JSON_MESSAGE_KEYS:
        if isinstance(obj.get(key), str):
            fields = {
                k: v if isinstance(v, str) else json.dumps(v) for k, v in obj.items() if k != key
            }
            return ParsedLine(obj[key], fields, True, "json")
    return None


def _match(rx: re.Pattern[str], name: str, line: str) -> ParsedLine | None:
    m = rx.match(line)
    if m is None:
        return None
    groups = {k: (v if v is not None else "") for k, v in m.groupdict().items()}
    content = groups.pop("Content", "")
    return ParsedLine(content, groups, True, name)


_BUILTIN_RX = {name: compile_format(f) for name, f in BUILTIN_FORMATS.items() if name != "json"}


def _parse_builtin(name: str, line: str) -> ParsedLine | None:
    if name == "json":
        return _parse_json(line)
    rec = _match(_BUILTIN_RX[name], name, line)
    if rec is not None and name == "apache-combined":
        # the request line is the message of an access log
        rec = ParsedLine(rec.fields.get("Request", ""), rec.fields, True, name)
    return rec


def detect_format(sample_lines: Iterable[str | bytes], min_share: float = 0.5) -> str:
    """Pick the built-in format that parses the most sample lines.

    Each non-empty sample line is tried against every built-in format; the format matching the
    most lines wins if it matches at least ``min_share`` of them, otherwise ``"raw"`` (every line
    is its own content) is returned.

    >>> detect_format(['{"level": "info", "msg": "started"}', '{"msg": "stopped"}'])
    'json'
    >>> detect_format(["Jan  5 10:00:01 web1 sshd[42]: Accepted password for bob"])
    'syslog-rfc3164'
    >>> detect_format(["just words"])
    'raw'
    """
    counts = dict.fromkeys(_DETECT_ORDER, 0)
    total = 0
    for raw in sample_lines:
        line = clean_line(raw)
        if not line.strip():
            continue
        total += 1
        for name in _DETECT_ORDER:
            if _parse_builtin(name, line) is not None:
                counts[name] += 1
    if not total:
        return "raw"
    best = max(_DETECT_ORDER, key=lambda n: counts[n])  # ties: earlier (stricter) format wins
    return best if counts[best] >= min_share * total else "raw"


class LogParser:
    """Parse lines with one header format (LogPAI notation), a built-in name, ``auto`` or ``raw``.

    ``fmt`` may be a LogPAI format string, one of :data:`BUILTIN_FORMATS`, ``"auto"`` (try every
    built-in format per line, the first that matches wins) or ``"raw"`` (content = line). Lines
    matching no format keep their whole text as content with ``matched=False``.

    >>> LogParser("auto").parse('{"msg": "disk full", "level": "error"}').content
    'disk full'
    >>> LogParser("raw").parse("anything at all").content
    'anything at all'
    """

    def __init__(self, fmt: str = "auto", max_chars: int = MAX_LINE_CHARS) -> None:
        self.format = fmt
        self.max_chars = max_chars
        if fmt in ("auto", "raw") or fmt in BUILTIN_FORMATS:
            self._rx: re.Pattern[str] | None = None
        else:
            self._rx = compile_format(fmt)

    def parse(self, raw: str | bytes) -> ParsedLine:
        """Parse one line (already cleaned or raw) into a :class:`ParsedLine`."""
        line = clean_line(raw, self.max_chars)
        rec: ParsedLine | None = None
        if self._rx is not None:
            rec = _match(self._rx, "custom", line)
        elif self.format == "auto":
            for name in _DETECT_ORDER:
                rec = _parse_builtin(name, line)
                if rec is not None:
                    break
        elif self.format != "raw":
            rec = _parse_builtin(self.format, line)
        if rec is None:
            return ParsedLine(line, {}, self.format == "raw", "raw")
        return rec


def parse_lines(
    lines: Iterable[str | bytes], fmt: str = "auto", max_chars: int = MAX_LINE_CHARS
) -> Iterator[ParsedLine]:
    """Parse many lines lazily, skipping empty ones; never drops a non-empty line.

    >>> [p.content for p in parse_lines(["a: x", "", "  ", "zzz"], "<K>: <Content>")]
    ['x', 'zzz']
    """
    parser = LogParser(fmt, max_chars)
    for raw in lines:
        line = clean_line(raw, max_chars)
        if not line.strip():
            continue
        yield parser.parse(line)
