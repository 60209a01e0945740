"""Syslog UDP/TCP servers over real loopback sockets, and the TCP framer."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable

from opsloop.observe.record import TRUNCATION_MARKER, RawLine
from opsloop.observe.syslog_server import SyslogTCPServer, SyslogUDPServer, TcpFramer

M5424 = b'<165>1 2003-10-11T22:14:15.003Z host1 app 42 ID1 [x@1 k="v"] five424'
M3164 = b"<13>Jan  5 10:00:00 host2 tagger[7]: three164"


class Collector:
    def __init__(self) -> None:
        self.lines: list[RawLine] = []

    async def __call__(self, batch: list[RawLine]) -> None:
        self.lines.extend(batch)

    @property
    def texts(self) -> list[str]:
        return [line.text for line in self.lines]

    async def wait_for(self, count: int, timeout: float = 3.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.lines) < count:
            assert time.monotonic() < deadline, f"got {len(self.lines)} of {count}: {self.texts}"
            await asyncio.sleep(0.005)


def serve(server, body: Callable[[object, Collector], Awaitable[None]]) -> Collector:
    """Start ``server`` on an ephemeral port, run ``body``, stop, return what was delivered."""
    sink = Collector()

    async def go() -> None:
        await server.start()
        assert server.port and server.port > 0
        task = asyncio.create_task(server.run(sink))
        try:
            await body(server, sink)
        finally:
            server.stop()
            await asyncio.wait_for(task, 3)

    asyncio.run(asyncio.wait_for(go(), 10))
    return sink


async def tcp_send(port: int, *chunks: bytes, pause: bool = False) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    for chunk in chunks:
        writer.write(chunk)
        await writer.drain()
        if pause:
            await asyncio.sleep(0.001)
    writer.close()
    await writer.wait_closed()


# ------------------------------------------------------------------ framer


def test_framer_mixed_framing_and_split_headers():
    stream = b"10 <1>a\nbcdef" + b"<2>newline\n" + b"6 <3>xyz" + b"17 <4>octet\nwith nl\n"
    for step in (1, 2, 3, len(stream)):  # every way of cutting the stream into reads
        f = TcpFramer()
        frames = []
        for i in range(0, len(stream), step):
            frames += f.feed(stream[i : i + step])
        frames += f.close()
        assert frames == [b"<1>a\nbcdef", b"<2>newline", b"<3>xyz", b"<4>octet\nwith nl\n"]


def test_framer_digits_without_syslog_message_are_newline_framed():
    f = TcpFramer()
    assert f.feed(b"404 not found\n0 <1>zero-length is invalid\n") == [
        b"404 not found",
        b"0 <1>zero-length is invalid",
    ]
    assert f.feed(b"12345") == []  # undecided head waits…
    assert f.close() == [b"12345"]  # …and is not lost at close


def test_framer_bounds_memory():
    f = TcpFramer(limit=8)
    assert f.feed(b"x" * 100_000) == []
    assert len(f._frame) <= 9
    assert f.feed(b"\n") == [b"x" * 9]
    assert f.feed(b"30 <1>" + b"y" * 27) == [b"<1>" + b"y" * 6]


# ------------------------------------------------------------------ UDP


def test_udp_server_parses_datagrams():
    async def body(server, sink):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for msg in (M5424, M3164 + b"\n", b"<11>1 - - - - - - bad \xff utf8", b"", b"\n"):
                s.sendto(msg, ("127.0.0.1", server.port))
        await sink.wait_for(3)

    server = SyslogUDPServer(port=0)
    sink = serve(server, body)
    assert sink.texts == ["five424", "three164", "bad \ufffd utf8"]
    first = sink.lines[0]
    assert first.source == "syslog:udp" and first.host == "host1" and first.level == "notice"
    assert first.fields["structured_data"] == {"x@1": {"k": "v"}}
    assert first.fields["peer"] == "127.0.0.1"
    assert sink.lines[1].fields["appname"] == "tagger"
    assert sink.lines[2].level == "error"
    assert server.stats["messages"] == 3


def test_udp_long_datagram_truncated():
    async def body(server, sink):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"<13>" + b"a" * 500, ("127.0.0.1", server.port))
        await sink.wait_for(1)

    sink = serve(SyslogUDPServer(port=0, max_message_bytes=100), body)
    assert sink.texts == ["a" * 96 + TRUNCATION_MARKER]


# ------------------------------------------------------------------ TCP


def test_tcp_newline_and_octet_counted_framing():
    async def body(server, sink):
        await tcp_send(server.port, M3164 + b"\n" + M5424 + b"\r\n")
        octet = b"<14>1 - h app - - - multi\nline"
        await tcp_send(server.port, str(len(octet)).encode() + b" " + octet)
        # a count larger than what is sent: the short frame is delivered when the client leaves
        await tcp_send(server.port, b"99 <13>Jan  5 10:00:00 a b: c", b"\n")
        await sink.wait_for(4)

    sink = serve(SyslogTCPServer(port=0), body)
    assert sink.texts == ["three164", "five424", "multi\nline", "c"]
    assert sink.lines[0].source == "syslog:tcp"
    assert sink.lines[2].host == "h" and sink.lines[2].level == "info"


def test_tcp_byte_by_byte_and_partial_frame_at_close():
    data = b"9 <13>hello" + b"<13>line two\n" + b"<13>no newline at end"

    async def body(server, sink):
        await tcp_send(server.port, *[data[i : i + 1] for i in range(len(data))])
        await sink.wait_for(3)

    sink = serve(SyslogTCPServer(port=0), body)
    assert sink.texts == ["hello", "line two", "no newline at end"]


def test_tcp_garbage_client_does_not_hurt_others():
    async def body(server, sink):
        _, bad = await asyncio.open_connection("127.0.0.1", server.port)
        bad.write(b"\x00\xff\xfe garbage " * 2000)  # 24 kB, no newline
        await bad.drain()
        await tcp_send(server.port, b"<13>Jan  5 10:00:00 h good: still works\n")
        await sink.wait_for(1)
        bad.write(b"\n9999999999 <")  # absurd octet count: swallowed, bounded
        bad.write(b"x" * 5000)
        await bad.drain()
        bad.close()
        await sink.wait_for(3)

    server = SyslogTCPServer(port=0, max_message_bytes=1000)
    sink = serve(server, body)
    assert sink.texts[0] == "still works"
    garbage = sink.lines[1].text
    assert garbage.endswith(TRUNCATION_MARKER) and "\ufffd" in garbage
    assert len(garbage) <= 1000 + len(TRUNCATION_MARKER)  # kept bytes are capped
    assert sink.texts[2].endswith(TRUNCATION_MARKER)  # the endless frame, cut at close


def test_tcp_many_clients():
    clients, per_client = 30, 20

    async def body(server, sink):
        async def client(c: int) -> None:
            lines = [f"<13>1 - host{c} app - - - msg {c}-{i}".encode() for i in range(per_client)]
            if c % 2:
                payload = b"".join(str(len(m)).encode() + b" " + m for m in lines)
            else:
                payload = b"".join(m + b"\n" for m in lines)
            await tcp_send(server.port, payload[:37], payload[37:], pause=True)

        await asyncio.gather(*(client(c) for c in range(clients)))
        await sink.wait_for(clients * per_client)

    sink = serve(SyslogTCPServer(port=0), body)
    assert sorted(sink.texts) == sorted(
        f"msg {c}-{i}" for c in range(clients) for i in range(per_client)
    )
    for c in range(clients):  # per-connection order is kept
        mine = [t for t in sink.texts if t.startswith(f"msg {c}-")]
        assert mine == [f"msg {c}-{i}" for i in range(per_client)]


def test_tcp_client_limit_and_idle_timeout():
    async def body(server, sink):
        _, first = await asyncio.open_connection("127.0.0.1", server.port)
        first.write(b"<13>held\n")
        await first.drain()
        await sink.wait_for(1)
        reader, second = await asyncio.open_connection("127.0.0.1", server.port)
        assert await asyncio.wait_for(reader.read(), 2) == b""  # rejected: closed at once
        second.close()
        assert server.stats["rejected_clients"] == 1
        deadline = time.monotonic() + 2
        while server._clients and time.monotonic() < deadline:  # idle connection dropped
            await asyncio.sleep(0.01)
        assert not server._clients
        first.close()

    serve(SyslogTCPServer(port=0, max_clients=1, idle_timeout=0.2), body)


def test_stop_delivers_what_was_received():
    async def body(server, sink):
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"<13>complete\n<13>partial, connection still open")
        await writer.drain()
        await sink.wait_for(1)
        # stop while the client is connected: the partial frame must still be delivered
        server.stop()
        await asyncio.sleep(0.05)
        writer.close()

    sink = serve(SyslogTCPServer(port=0), body)
    assert sink.texts == ["complete", "partial, connection still open"]


def test_failing_sink_stops_server_and_raises():
    async def failing(batch: list[RawLine]) -> None:
        raise RuntimeError("downstream is down")

    async def go() -> None:
        server = SyslogTCPServer(port=0)
        await server.start()
        task = asyncio.create_task(server.run(failing))
        await tcp_send(server.port, b"<13>boom\n")
        try:
            await asyncio.wait_for(task, 3)
        except RuntimeError as exc:
            assert "downstream" in str(exc)
        else:
            raise AssertionError("run() should re-raise the sink's error")
        try:  # the listener is closed
            await asyncio.open_connection("127.0.0.1", server.port)
        except OSError:
            return
        raise AssertionError("still listening")

    asyncio.run(go())
