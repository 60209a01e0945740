"""Syslog receivers: UDP (one message per datagram) and TCP (RFC 6587 framing), on asyncio.

TCP frames are detected one by one: a frame that starts with ``MSG-LEN SP <`` is octet-counted,
anything else runs to the next ``\\n``. Memory stays bounded whatever a client sends: frames are
kept up to ``max_message_bytes`` (the rest is skipped and the message marked truncated), socket
reads are a fixed size, at most ``max_clients`` connections are served, idle ones are closed, and
when the sink falls behind the bounded queue stops reading TCP sockets (back-pressure) while UDP
datagrams that don't fit are counted in ``stats["dropped"]``.

Usage::

    server = SyslogTCPServer(port=0)
    await server.start()            # binds; server.port is the real port
    task = asyncio.create_task(server.run(sink))
    ...
    server.stop(); await task       # stops listening, delivers what was received, returns
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
from datetime import tzinfo
from typing import Any

from opsloop.observe.record import MAX_LINE_BYTES, RawLine, Sink, decode_line
from opsloop.observe.syslog_parse import parse_syslog

log = logging.getLogger(__name__)

_OCTET_HEAD = re.compile(rb"([1-9][0-9]{0,9}) <")
_OCTET_PREFIX = re.compile(rb"[1-9][0-9]{0,9} ?")
_HEAD_WINDOW = 12  # 10 digits, a space and '<'


class TcpFramer:
    """Split one TCP connection's bytes into syslog messages (RFC 6587), per frame.

    A frame starting with ``MSG-LEN SP <`` (MSG-LEN: up to 10 digits, no leading zero) is
    octet-counted; any other frame ends at ``\\n``. Each message keeps at most ``limit + 1``
    bytes (so :func:`decode_line` can mark it truncated); the rest is skipped.

    >>> f = TcpFramer()
    >>> f.feed(b"5 <1>ab<2>x\\n11 <3>hi\\nthere")
    [b'<1>ab', b'<2>x', b'<3>hi\\nthere']
    """

    _START, _OCTET, _LINE = 0, 1, 2

    def __init__(self, limit: int = MAX_LINE_BYTES) -> None:
        self.limit = limit
        self._mode = self._START
        self._frame = bytearray()
        self._remaining = 0

    def _keep(self, chunk: bytes) -> None:
        room = self.limit + 1 - len(self._frame)
        if room > 0:
            self._frame += chunk[:room]

    def _emit(self, out: list[bytes]) -> None:
        out.append(bytes(self._frame))
        self._frame.clear()
        self._mode = self._START

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the messages they completed."""
        out: list[bytes] = []
        i, n = 0, len(data)
        while i < n:
            if self._mode == self._OCTET:
                take = min(self._remaining, n - i)
                self._keep(data[i : i + take])
                self._remaining -= take
                i += take
                if self._remaining == 0:
                    self._emit(out)
            elif self._mode == self._LINE:
                nl = data.find(b"\n", i)
                self._keep(data[i : n if nl < 0 else nl])
                if nl < 0:
                    i = n
                else:
                    i = nl + 1
                    self._emit(out)
            else:  # frame start: self._frame holds the undecided head, if any
                pending = len(self._frame)
                head = bytes(self._frame) + data[i : i + _HEAD_WINDOW]
                m = _OCTET_HEAD.match(head)
                if m:
                    self._frame.clear()
                    self._mode = self._OCTET
                    self._remaining = int(m.group(1))
                    i += len(m.group(1)) + 1 - pending
                elif _OCTET_PREFIX.fullmatch(head) and len(head) - pending == n - i:
                    self._frame[:] = head  # could still become an octet count: wait for more
                    i = n
                else:
                    self._mode = self._LINE  # the pending bytes begin the line
        return out

    def close(self) -> list[bytes]:
        """At end of stream: whatever was received of the last message."""
        if self._frame or self._mode != self._START:
            out: list[bytes] = []
            self._emit(out)
            return out
        return []


class _SyslogServer:
    """Shared plumbing: bounded queue, batching pump, stop/drain."""

    transport_name = "syslog"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 514,
        *,
        max_message_bytes: int = MAX_LINE_BYTES,
        batch_size: int = 500,
        queue_size: int = 10_000,
        tz: tzinfo | None = None,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.max_message_bytes = max_message_bytes
        self.batch_size = batch_size
        self.tz = tz
        self.source = f"syslog:{self.transport_name}"
        self.stats: dict[str, int] = {"messages": 0, "dropped": 0, "rejected_clients": 0}
        self._queue: asyncio.Queue[RawLine] = asyncio.Queue(maxsize=queue_size)
        self._stop = asyncio.Event()
        self._port: int | None = None

    @property
    def port(self) -> int | None:
        """The bound port (useful with ``port=0``), ``None`` before :meth:`start`."""
        return self._port

    async def start(self) -> None:
        """Bind the socket (idempotent). Messages received before :meth:`run` are queued."""
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """Ask :meth:`run` to stop listening, deliver what was received, and return."""
        self._stop.set()

    def _make_line(self, data: bytes, peer: Any) -> RawLine | None:
        text = decode_line(data.rstrip(b"\r\n\x00"), self.max_message_bytes)
        if text is None:
            return None
        line = parse_syslog(text, source=self.source, tz=self.tz)
        if isinstance(peer, tuple) and peer:
            line = dataclasses.replace(line, fields={**line.fields, "peer": str(peer[0])})
        self.stats["messages"] += 1
        return line

    def _take_batch(self) -> list[RawLine]:
        batch: list[RawLine] = []
        while len(batch) < self.batch_size:
            try:
                batch.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return batch

    async def run(self, sink: Sink) -> None:
        """Receive and deliver batches to ``sink`` until :meth:`stop`, then deliver the rest.

        If ``sink`` raises, the server shuts down without calling it again and re-raises.
        """
        await self.start()
        stop_wait = asyncio.ensure_future(self._stop.wait())
        try:
            while not self._stop.is_set():
                get = asyncio.ensure_future(self._queue.get())
                done, _ = await asyncio.wait({get, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    break
                await sink([get.result(), *self._take_batch()])
        except BaseException:
            await self._shutdown(None)
            raise
        finally:
            stop_wait.cancel()
        await self._shutdown(sink)

    async def _shutdown(self, sink: Sink | None) -> None:
        """Close listeners and connections, meanwhile delivering (or discarding) queued lines."""
        closing = asyncio.ensure_future(self._close())
        try:
            # keep draining while connections wind down (they may wait on a full queue)
            while not (closing.done() and self._queue.empty()):
                batch = self._take_batch()
                if batch and sink is not None:
                    await sink(batch)
                elif not batch:
                    await asyncio.sleep(0.005)
        finally:
            await closing


class SyslogUDPServer(_SyslogServer):
    """Syslog over UDP (RFC 5426): each datagram is one message."""

    transport_name = "udp"

    def __init__(self, host: str = "127.0.0.1", port: int = 514, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        """Bind the UDP socket (idempotent)."""
        if self._transport is not None:
            return
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UDPProtocol(self), local_addr=(self.host, self.requested_port)
        )
        self._transport = transport
        self._port = transport.get_extra_info("sockname")[1]

    def _datagram(self, data: bytes, addr: Any) -> None:
        line = self._make_line(data, addr)
        if line is None:
            return
        try:
            self._queue.put_nowait(line)
        except asyncio.QueueFull:
            self.stats["dropped"] += 1

    async def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None


class _UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: SyslogUDPServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.server._datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("syslog udp socket error: %s", exc)


class SyslogTCPServer(_SyslogServer):
    """Syslog over TCP: octet-counted (RFC 6587 §3.4.1) or newline-framed messages, many clients.

    ``max_clients`` caps concurrent connections (extra ones are closed at once);
    ``idle_timeout`` (seconds, ``None`` for never) closes connections that send nothing.
    """

    transport_name = "tcp"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 514,
        *,
        max_clients: int = 512,
        idle_timeout: float | None = 300.0,
        read_size: int = 65536,
        **kwargs: Any,
    ) -> None:
        super().__init__(host, port, **kwargs)
        self.max_clients = max_clients
        self.idle_timeout = idle_timeout
        self.read_size = read_size
        self._server: asyncio.Server | None = None
        self._clients: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    async def start(self) -> None:
        """Bind and listen (idempotent)."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._handle, self.host, self.requested_port, limit=self.read_size
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._clients) >= self.max_clients or self._stop.is_set() or task is None:
            self.stats["rejected_clients"] += 1
            writer.close()
            return
        self._clients[task] = writer
        peer = writer.get_extra_info("peername")
        framer = TcpFramer(self.max_message_bytes)
        try:
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(self.read_size), self.idle_timeout)
                except (TimeoutError, ConnectionError):
                    break
                if not data:
                    break
                for frame in framer.feed(data):
                    await self._put(frame, peer)
        finally:
            for frame in framer.close():
                await self._put(frame, peer)
            self._clients.pop(task, None)
            writer.close()

    async def _put(self, frame: bytes, peer: Any) -> None:
        line = self._make_line(frame, peer)
        if line is not None:
            await self._queue.put(line)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for writer in list(self._clients.values()):
            writer.close()  # the handler's read returns; it flushes the partial frame and exits
        tasks = list(self._clients)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=5)
            for task in pending:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*pending, return_exceptions=True)
        self._server = None
