"""The record every log source yields (:class:`RawLine`) and how raw bytes become one.

Decoding rules shared by all sources: invalid UTF-8 is replaced (never fatal), a line longer than
:data:`MAX_LINE_BYTES` is cut at a character boundary and marked with :data:`TRUNCATION_MARKER`,
and blank lines are skipped. :class:`LineSplitter` splits a byte stream on ``\\n`` with a bounded
buffer, so a writer that never sends a newline cannot exhaust memory.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

MAX_LINE_BYTES = 64 * 1024
#: Appended to a cut line (by the transports here and by :mod:`opsloop.observe.logformat`).
TRUNCATION_MARKER = " …[truncated]"


@dataclass(frozen=True, slots=True)
class RawLine:
    """One log line as it came in, before any format parsing.

    ``source`` names where it came from (a file path, ``stdin``, ``syslog:udp``…),
    ``received_at`` is the wall-clock time it was read (epoch seconds); ``timestamp``, ``host``
    and ``level`` are filled in when the transport carries them (syslog), ``fields`` holds the
    rest (syslog facility, app name, structured data, peer address…).
    """

    text: str
    source: str
    received_at: float
    timestamp: float | None = None
    host: str | None = None
    level: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


Sink = Callable[[list[RawLine]], Awaitable[None]]
"""Where a source delivers its batches; the source waits for it (back-pressure)."""


def decode_line(data: bytes, limit: int = MAX_LINE_BYTES) -> str | None:
    """Decode one line's bytes; ``None`` for a blank line (which sources skip).

    Trailing ``\\r``/``\\n`` are removed, invalid UTF-8 becomes U+FFFD, and more than ``limit``
    bytes are cut at a character boundary and suffixed with :data:`TRUNCATION_MARKER`.

    >>> decode_line(b"caf\\xc3\\xa9\\r\\n")
    'café'
    >>> decode_line(b"bad \\xff byte")
    'bad \\ufffd byte'
    >>> decode_line(b"   ") is None
    True
    """
    data = data.rstrip(b"\r\n")
    truncated = len(data) > limit
    if truncated:
        cut = limit
        # don't split a multi-byte character: back off over continuation bytes (10xxxxxx)
        while cut > 0 and cut > limit - 3 and (data[cut] & 0xC0) == 0x80:
            cut -= 1
        data = data[:cut]
    text = data.decode("utf-8", errors="replace")
    if not text.strip():
        return None
    return text + TRUNCATION_MARKER if truncated else text


class LineSplitter:
    """Split a byte stream into lines on ``\\n``, keeping at most ``limit + 1`` pending bytes.

    :meth:`feed` returns each complete line with the stream position just past its newline, so a
    reader can remember how far it got. Bytes of an over-long line beyond ``limit + 1`` are
    counted but not kept; :func:`decode_line` then marks the line truncated.

    >>> s = LineSplitter()
    >>> s.feed(b"a\\nbc")
    [(b'a', 2)]
    >>> s.feed(b"d\\n")
    [(b'bcd', 6)]
    """

    def __init__(self, limit: int = MAX_LINE_BYTES, position: int = 0) -> None:
        self.limit = limit
        self.position = position  # stream position just past the last complete line
        self._buf = bytearray()
        self._dropped = 0

    @property
    def pending(self) -> int:
        """Bytes received after the last complete line (kept or dropped)."""
        return len(self._buf) + self._dropped

    def _keep(self, chunk: bytes | memoryview) -> None:
        room = self.limit + 1 - len(self._buf)
        if room > 0:
            self._buf += chunk[:room]
        self._dropped += max(0, len(chunk) - max(room, 0))

    def feed(self, data: bytes) -> list[tuple[bytes, int]]:
        """Add ``data``; return the lines it completed as ``(line_bytes, end_position)``."""
        out: list[tuple[bytes, int]] = []
        view = memoryview(data)
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                self._keep(view[start:])
                return out
            self._keep(view[start:nl])
            self.position += self.pending + 1
            out.append((bytes(self._buf), self.position))
            self._buf.clear()
            self._dropped = 0
            start = nl + 1

    def flush(self) -> tuple[bytes, int] | None:
        """Return the unterminated tail as a line (at end of stream), or ``None`` if empty."""
        if not self.pending:
            return None
        self.position += self.pending
        line = bytes(self._buf)
        self._buf.clear()
        self._dropped = 0
        return line, self.position

    def reset(self, position: int = 0) -> None:
        """Forget pending bytes and continue as if the stream were at ``position``."""
        self._buf.clear()
        self._dropped = 0
        self.position = position
