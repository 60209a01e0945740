"""Read log lines from standard input (or any binary stream) and deliver them in batches.

A daemon thread does the blocking reads (this works for pipes, terminals and redirected files
alike, which ``connect_read_pipe`` does not) and hands chunks to the event loop; at most
``max_chunks_ahead`` chunks wait there, so a slow sink slows the reader instead of filling memory.
At end of input the unterminated last line is delivered too, then :meth:`StdinSource.run`
returns.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from typing import BinaryIO

from opsloop.observe.record import MAX_LINE_BYTES, LineSplitter, RawLine, Sink, decode_line

_EOF = b""


class StdinSource:
    """Lines from ``stream`` (default ``sys.stdin.buffer``), labelled ``source``."""

    def __init__(
        self,
        stream: BinaryIO | None = None,
        *,
        source: str = "stdin",
        batch_lines: int = 1000,
        read_size: int = 64 * 1024,
        max_line_bytes: int = MAX_LINE_BYTES,
        max_chunks_ahead: int = 8,
    ) -> None:
        self.stream = stream
        self.source = source
        self.batch_lines = batch_lines
        self.read_size = read_size
        self.max_line_bytes = max_line_bytes
        self._slots = threading.Semaphore(max_chunks_ahead)
        self._closing = threading.Event()
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._stopped = False

    def stop(self) -> None:
        """Make :meth:`run` return after delivering what was already read (loop thread only)."""
        self._stopped = True
        self._closing.set()
        self._queue.put_nowait(None)

    async def run(self, sink: Sink) -> None:
        """Deliver batches to ``sink`` until end of input or :meth:`stop`."""
        stream = self.stream if self.stream is not None else sys.stdin.buffer
        loop = asyncio.get_running_loop()
        reader = threading.Thread(
            target=self._read_loop, args=(stream, loop), name="opsloop-stdin", daemon=True
        )
        reader.start()
        splitter = LineSplitter(self.max_line_bytes)
        try:
            while not self._stopped:
                chunk = await self._queue.get()
                if chunk is None:
                    break
                self._slots.release()
                if chunk == _EOF:
                    tail = splitter.flush()
                    await self._deliver([tail] if tail else [], sink)
                    break
                lines = splitter.feed(chunk)
                for start in range(0, len(lines), self.batch_lines):
                    await self._deliver(lines[start : start + self.batch_lines], sink)
        finally:
            self._closing.set()

    async def _deliver(self, lines: list[tuple[bytes, int]], sink: Sink) -> None:
        received = time.time()
        batch = []
        for raw, _ in lines:
            text = decode_line(raw, self.max_line_bytes)
            if text is not None:
                batch.append(RawLine(text, self.source, received))
        if batch:
            await sink(batch)

    def _read_loop(self, stream: BinaryIO, loop: asyncio.AbstractEventLoop) -> None:
        read = getattr(stream, "read1", stream.read)
        while not self._closing.is_set():
            while not self._slots.acquire(timeout=0.2):
                if self._closing.is_set():
                    return
            try:
                chunk = read(self.read_size)
            except (OSError, ValueError):  # closed stream
                chunk = _EOF
            try:
                loop.call_soon_threadsafe(self._queue.put_nowait, chunk or _EOF)
            except RuntimeError:  # loop closed
                return
            if not chunk:
                return
