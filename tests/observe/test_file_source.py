"""File follower (rotation, truncation, restart, globs), checkpoint store, stdin source."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import time

import pytest

from opsloop.observe.checkpoint import (
    CheckpointStore,
    JsonCheckpointStore,
    MemoryCheckpointStore,
)
from opsloop.observe.file_source import FileFollower
from opsloop.observe.record import (
    MAX_LINE_BYTES,
    TRUNCATION_MARKER,
    LineSplitter,
    RawLine,
    decode_line,
)
from opsloop.observe.stdin_source import StdinSource


class Collector:
    def __init__(self) -> None:
        self.lines: list[RawLine] = []
        self.batches = 0

    async def __call__(self, batch: list[RawLine]) -> None:
        self.batches += 1
        self.lines.extend(batch)

    @property
    def texts(self) -> list[str]:
        return [line.text for line in self.lines]


def write(path, text: str | bytes, mode: str = "a") -> None:
    data = text.encode() if isinstance(text, str) else text
    with open(path, mode + "b") as fh:
        fh.write(data)


def poll(follower: FileFollower, sink, times: int = 1) -> None:
    async def go() -> None:
        for _ in range(times):
            await follower.poll_once(sink)

    asyncio.run(go())


def follower_for(pattern, store: CheckpointStore | None = None, **kw) -> FileFollower:
    kw.setdefault("rotate_wait", 0.0)
    return FileFollower(str(pattern), checkpoints=store, poll_interval=0.01, **kw)


# ------------------------------------------------------------------ record helpers


def test_decode_line_rules():
    assert decode_line(b"hello\r\n") == "hello"
    assert decode_line(b"") is None
    assert decode_line(b" \t ") is None
    assert decode_line(b"a\xffb") == "a\ufffdb"
    long = "é" * 10  # 20 bytes
    cut = decode_line(long.encode(), limit=5)  # cut inside a character → back off to 4 bytes
    assert cut == "éé" + TRUNCATION_MARKER
    assert decode_line(b"x" * (MAX_LINE_BYTES + 10)) == "x" * MAX_LINE_BYTES + TRUNCATION_MARKER
    assert decode_line(b"x" * MAX_LINE_BYTES) == "x" * MAX_LINE_BYTES


def test_line_splitter_bounds_memory_and_tracks_positions():
    s = LineSplitter(limit=4)
    assert s.feed(b"ab\ncdefghij") == [(b"ab", 3)]
    assert s.pending == 8 and len(s._buf) == 5  # never more than limit + 1 bytes kept
    assert s.feed(b"kl\nm") == [(b"cdefg", 14)]
    assert s.flush() == (b"m", 15)
    assert s.flush() is None


# ------------------------------------------------------------------ following


def test_follows_appends_without_loss_or_duplicates(tmp_path):
    log = tmp_path / "app.log"
    write(log, "one\ntwo\n")
    sink = Collector()
    f = follower_for(log)
    poll(f, sink)
    write(log, "three\nfour")  # "four" is unterminated: waits
    poll(f, sink)
    assert sink.texts == ["one", "two", "three"]
    write(log, " and more\n\n\nfive\n")  # blank lines skipped
    poll(f, sink, times=2)
    assert sink.texts == ["one", "two", "three", "four and more", "five"]
    assert {line.source for line in sink.lines} == {str(log)}
    f.close()


def test_invalid_utf8_and_long_lines_in_files(tmp_path):
    log = tmp_path / "app.log"
    write(log, b"bad \xff\xfe byte\n" + b"y" * 200 + b"\nnext\n")
    sink = Collector()
    f = follower_for(log, max_line_bytes=50, read_size=16)  # small reads: lines span chunks
    poll(f, sink)
    assert sink.texts == ["bad \ufffd\ufffd byte", "y" * 50 + TRUNCATION_MARKER, "next"]
    f.close()


def test_batches_are_bounded(tmp_path):
    log = tmp_path / "app.log"
    write(log, "".join(f"l{i}\n" for i in range(25)))
    sink = Collector()
    f = follower_for(log, batch_lines=10)
    poll(f, sink)
    assert sink.texts == [f"l{i}" for i in range(25)]
    assert sink.batches == 3
    f.close()


def test_rename_rotation_finishes_old_file_first(tmp_path):
    log = tmp_path / "app.log"
    write(log, "a\nb\n")
    sink = Collector()
    f = follower_for(log)
    poll(f, sink)
    os.rename(log, tmp_path / "app.log.1")
    write(tmp_path / "app.log.1", "c\nlast-unterminated")  # writer still had the old file open
    write(log, "d\n", mode="w")
    poll(f, sink)
    assert sink.texts == ["a", "b", "c", "last-unterminated", "d"]
    write(log, "e\n")
    poll(f, sink)
    assert sink.texts[-1] == "e" and len(sink.texts) == 6
    assert [path for path, _ in f.followed] == [str(log)]  # the rotated file was closed
    f.close()


def test_rotation_waits_for_late_writes_to_old_file(tmp_path):
    log = tmp_path / "app.log"
    write(log, "a\n")
    sink = Collector()
    f = follower_for(log, rotate_wait=30.0)
    poll(f, sink)
    os.rename(log, tmp_path / "app.log.1")
    write(log, "new\n", mode="w")
    poll(f, sink)
    write(tmp_path / "app.log.1", "late\n")  # before the writer reopened
    poll(f, sink)
    assert sink.texts == ["a", "new", "late"]
    assert [path for path, _ in f.followed] == [str(log), str(log)]  # old one still open
    f.close()


def test_rotated_name_matching_the_glob_is_not_read_twice(tmp_path):
    write(tmp_path / "app.log", "a\n")
    sink = Collector()
    f = follower_for(tmp_path / "app.log*")
    poll(f, sink)
    os.rename(tmp_path / "app.log", tmp_path / "app.log.1")
    write(tmp_path / "app.log.1", "b\n")
    write(tmp_path / "app.log", "c\n", mode="w")
    poll(f, sink)
    assert sorted(sink.texts) == ["a", "b", "c"]
    assert [path for path, _ in f.followed] == [
        str(tmp_path / "app.log"),
        str(tmp_path / "app.log.1"),
    ]
    f.close()


def test_copytruncate_recovers_unread_tail_from_copy(tmp_path):
    log = tmp_path / "app.log"
    write(log, "line-1\nline-2\n")
    sink = Collector()
    f = follower_for(log)
    poll(f, sink)
    write(log, "line-3\n")  # written after our last read…
    shutil.copyfile(log, tmp_path / "app.log.1")  # …then logrotate copies
    with open(log, "r+b") as fh:  # …and truncates
        fh.truncate(0)
    write(log, "line-4\n")
    poll(f, sink)
    assert sink.texts == ["line-1", "line-2", "line-3", "line-4"]
    write(log, "line-5\n")
    poll(f, sink)
    assert sink.texts[-1] == "line-5" and len(sink.texts) == 5
    f.close()


def test_truncation_without_copy_restarts_at_zero(tmp_path):
    log = tmp_path / "app.log"
    write(log, "first line that is long\n")
    sink = Collector()
    f = follower_for(log)
    poll(f, sink)
    write(log, "short\n", mode="w")  # truncated and rewritten, now smaller
    poll(f, sink)
    write(log, "x\n", mode="w")
    write(log, "replaced content, longer than before!!\n")  # same size class, new content
    poll(f, sink)
    assert sink.texts == [
        "first line that is long",
        "short",
        "x",
        "replaced content, longer than before!!",
    ]
    f.close()


def test_glob_picks_up_new_files(tmp_path):
    write(tmp_path / "a.log", "from a\n")
    write(tmp_path / "ignored.txt", "nope\n")
    sink = Collector()
    f = follower_for(tmp_path / "*.log")
    poll(f, sink)
    write(tmp_path / "b.log", "from b\n")
    poll(f, sink)
    assert sink.texts == ["from a", "from b"]
    assert sink.lines[1].source == str(tmp_path / "b.log")
    f.close()


def test_from_beginning_false_starts_existing_files_at_end(tmp_path):
    write(tmp_path / "old.log", "history\n")
    sink = Collector()
    f = follower_for(tmp_path / "*.log", from_beginning=False)
    poll(f, sink)
    write(tmp_path / "old.log", "fresh\n")
    write(tmp_path / "new.log", "all of it\n")
    poll(f, sink)
    assert sorted(sink.texts) == ["all of it", "fresh"]
    f.close()


# ------------------------------------------------------------------ restarts


def test_position_remembered_across_restart(tmp_path):
    log = tmp_path / "app.log"
    store_path = tmp_path / "state" / "checkpoints.json"
    write(log, "1\n2\n3\n")
    sink = Collector()

    async def run_until(follower: FileFollower, count: int) -> None:
        task = asyncio.create_task(follower.run(sink))
        deadline = time.monotonic() + 3
        while len(sink.lines) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        follower.stop()
        await asyncio.wait_for(task, 2)

    asyncio.run(run_until(follower_for(log, JsonCheckpointStore(store_path)), 3))
    assert sink.texts == ["1", "2", "3"]
    write(log, "4\n5\n")
    asyncio.run(run_until(follower_for(log, JsonCheckpointStore(store_path)), 5))
    assert sink.texts == ["1", "2", "3", "4", "5"]
    saved = json.loads(store_path.read_text())
    assert saved[f"file:{log}"]["files"][0]["offset"] == log.stat().st_size


def test_rotation_while_stopped_finishes_old_file(tmp_path):
    log = tmp_path / "app.log"
    store = MemoryCheckpointStore()
    write(log, "a\n")
    sink = Collector()
    first = follower_for(log, store)
    poll(first, sink)
    first.close()
    write(log, "b\n")
    os.rename(log, tmp_path / "app.log.1")
    write(log, "c\n", mode="w")
    second = follower_for(log, store)
    poll(second, sink)
    assert sink.texts == ["a", "b", "c"]
    second.close()


def test_truncated_while_stopped_recovers_copy_then_restarts(tmp_path):
    log = tmp_path / "app.log"
    store = MemoryCheckpointStore()
    write(log, "a\n")
    sink = Collector()
    first = follower_for(log, store)
    poll(first, sink)
    first.close()
    write(log, "b\n")
    shutil.copyfile(log, tmp_path / "app.log.1")
    write(log, "c\n", mode="w")
    second = follower_for(log, store)
    poll(second, sink)
    assert sink.texts == ["a", "b", "c"]
    second.close()


def test_failed_sink_does_not_advance_position(tmp_path):
    log = tmp_path / "app.log"
    store = MemoryCheckpointStore()
    write(log, "a\nb\n")

    async def failing(batch: list[RawLine]) -> None:
        raise RuntimeError("downstream is down")

    f = follower_for(log, store)
    with pytest.raises(RuntimeError):
        poll(f, failing)
    f.close()
    sink = Collector()
    again = follower_for(log, store)
    poll(again, sink)
    assert sink.texts == ["a", "b"]  # re-read: at-least-once
    again.close()


# ------------------------------------------------------------------ checkpoint store


def test_json_checkpoint_store_roundtrip_and_corruption(tmp_path):
    path = tmp_path / "cp.json"
    store = JsonCheckpointStore(path)
    assert store.get("k") is None
    value = {"files": [{"offset": 3}]}
    store.put("k", value)
    value["files"][0]["offset"] = 99  # the store keeps its own copy
    assert JsonCheckpointStore(path).get("k") == {"files": [{"offset": 3}]}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    path.write_text("{not json")
    fresh = JsonCheckpointStore(path)
    assert fresh.get("k") is None
    assert (tmp_path / "cp.json.corrupt").exists()
    assert isinstance(fresh, CheckpointStore)


# ------------------------------------------------------------------ stdin


def test_stdin_source_reads_to_eof():
    stream = io.BytesIO(b"one\n\nbad \xff\n" + b"z" * 30 + b"\nlast")
    sink = Collector()
    asyncio.run(asyncio.wait_for(StdinSource(stream, max_line_bytes=10).run(sink), 2))
    assert sink.texts == ["one", "bad \ufffd", "z" * 10 + TRUNCATION_MARKER, "last"]
    assert {line.source for line in sink.lines} == {"stdin"}


def test_stdin_source_stop_with_blocked_reader():
    read_fd, write_fd = os.pipe()
    sink = Collector()

    async def go() -> None:
        with open(read_fd, "rb", buffering=0) as stream:
            source = StdinSource(stream)
            task = asyncio.create_task(source.run(sink))
            os.write(write_fd, b"hello\n")
            deadline = time.monotonic() + 2
            while not sink.lines and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            source.stop()
            await asyncio.wait_for(task, 2)
            os.close(write_fd)  # lets the reader thread see EOF and exit

    asyncio.run(go())
    assert sink.texts == ["hello"]
