"""Follow log files like ``tail -F``: globs, rotation, truncation, positions kept over restarts.

Poll-based (no inotify): every ``poll_interval`` seconds the glob patterns are expanded and each
followed file is checked and read to its end.

* **Identity.** A file is its ``(st_dev, st_ino)`` plus a fingerprint (hash of its first
  ``fingerprint_bytes`` bytes, or fewer while the file is shorter). Following is by open file
  handle, so a renamed file keeps being read.
* **Rename rotation** (``app.log`` → ``app.log.1``, new ``app.log``): if the old inode no longer
  matches any pattern it is read to its end first (each poll, before the new file), and closed once
  it has not grown for ``rotate_wait`` seconds — its last unterminated line is then delivered. If
  the rotated name still matches a pattern it is simply followed under its new name.
* **Truncation / copytruncate.** Size below the read position, or a changed fingerprint, means the
  file was truncated (or replaced in place): it is read again from offset 0. Before that, lines the
  writer added after our last read are recovered from the copy (a sibling ``app.log*`` file whose
  first bytes match the old fingerprint), when there is one.
* **Positions.** A file's position advances only after the sink returned for a batch, and is
  stored in the :class:`~opsloop.observe.checkpoint.CheckpointStore` under
  ``file:<absolute path>`` at the end of each poll round — so a crash re-reads at most what the
  round delivered (at-least-once), never skips. On restart a file resumes from its
  stored offset when identity and fingerprint still match; a file rotated away while we were down
  is found again by inode among its siblings and finished first.

Lines are delivered without their newline; an unterminated last line waits for its newline (it is
delivered on its own only when the file is rotated away or truncated). File reads are blocking
but bounded to ``read_size`` bytes at a time, which is fine for local disks.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import hashlib
import logging
import os
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opsloop.observe.checkpoint import CheckpointStore
from opsloop.observe.record import MAX_LINE_BYTES, LineSplitter, RawLine, Sink, decode_line

log = logging.getLogger(__name__)

_Ident = tuple[int, int]


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass(eq=False)
class _Followed:
    """One open file being followed."""

    path: str
    fd: int
    dev: int
    ino: int
    splitter: LineSplitter
    fp: str
    fp_len: int
    read_pos: int
    committed: int
    size: int = -1
    mtime_ns: int = -1
    departed_at: float | None = None
    last_growth: float = 0.0

    @property
    def ident(self) -> _Ident:
        return (self.dev, self.ino)

    def state(self) -> dict[str, Any]:
        return {
            "dev": self.dev,
            "ino": self.ino,
            "fp": self.fp,
            "fp_len": self.fp_len,
            "offset": self.committed,
        }


class FileFollower:
    """Follow files matching glob ``patterns`` and deliver their new lines in batches.

    ``checkpoints`` (optional) remembers positions across restarts; ``from_beginning=False``
    starts files found at the first poll, and without a stored position, at their end (files that
    appear later are always read from the start). Each batch holds lines of a single file.
    """

    def __init__(
        self,
        patterns: str | Sequence[str],
        *,
        checkpoints: CheckpointStore | None = None,
        poll_interval: float = 0.25,
        rotate_wait: float = 1.0,
        from_beginning: bool = True,
        batch_lines: int = 1000,
        read_size: int = 64 * 1024,
        max_line_bytes: int = MAX_LINE_BYTES,
        fingerprint_bytes: int = 256,
    ) -> None:
        if isinstance(patterns, str):
            patterns = [patterns]
        self.patterns = [os.path.abspath(os.path.expanduser(p)) for p in patterns]
        self.checkpoints = checkpoints
        self.poll_interval = poll_interval
        self.rotate_wait = rotate_wait
        self.from_beginning = from_beginning
        self.batch_lines = batch_lines
        self.read_size = read_size
        self.max_line_bytes = max_line_bytes
        self.fingerprint_bytes = fingerprint_bytes
        self._files: dict[_Ident, _Followed] = {}
        self._loaded_keys: set[str] = set()
        self._resume: dict[_Ident, dict[str, Any]] = {}
        self._resume_key: dict[_Ident, str] = {}
        self._open_failed: set[str] = set()
        self._dirty: set[str] = set()
        self._polls = 0
        self._stop = asyncio.Event()

    # ---------------------------------------------------------------- public API

    async def run(self, sink: Sink) -> None:
        """Poll and deliver until :meth:`stop`; open files are closed on the way out."""
        try:
            while not self._stop.is_set():
                await self.poll_once(sink)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.poll_interval)
        finally:
            self.close()

    def stop(self) -> None:
        """Ask :meth:`run` to return after the batch in progress (call from the loop's thread)."""
        self._stop.set()

    def close(self) -> None:
        """Close every followed file; unterminated last lines stay unread (and uncommitted)."""
        for f in self._files.values():
            with contextlib.suppress(OSError):
                os.close(f.fd)
        self._files.clear()

    @property
    def followed(self) -> list[tuple[str, int]]:
        """``(path, committed offset)`` of every open file, sorted (for status and tests).

        A rotated-away file still being drained is listed under its old path.
        """
        return sorted((f.path, f.committed) for f in self._files.values())

    async def poll_once(self, sink: Sink) -> None:
        """One round: discover files, detect rotation/truncation, read and deliver new lines.

        Positions of the batches the sink accepted are stored once, at the end of the round
        (also when the sink raised), so a busy round costs one checkpoint write per file.
        """
        try:
            await self._poll(sink)
        finally:
            self._flush_commits()

    async def _poll(self, sink: Sink) -> None:
        now = time.monotonic()
        first = self._polls == 0
        self._polls += 1
        found = self._discover()
        self._load_checkpoints(found)

        for ident, f in self._files.items():
            hit = found.get(ident)
            if hit is None:
                if f.departed_at is None:
                    f.departed_at = f.last_growth = now
            else:
                if hit[0] != f.path:  # renamed, still matching a pattern
                    self._commit(f.path)
                    f.path = hit[0]
                    self._commit(f.path)
                f.departed_at = None
        for ident, (path, _) in found.items():
            if ident not in self._files:
                await self._open(path, ident, sink, initial=first)

        departed = sorted(
            (f for f in self._files.values() if f.departed_at is not None),
            key=lambda f: f.departed_at or 0.0,
        )
        live = sorted((f for f in self._files.values() if f.departed_at is None), key=_path_of)
        for f in [*departed, *live]:
            if self._stop.is_set():
                return
            await self._read(f, sink, now)
            if f.departed_at is not None and now - f.last_growth >= self.rotate_wait:
                await self._retire(f, sink)

    # ---------------------------------------------------------------- discovery

    def _discover(self) -> dict[_Ident, tuple[str, os.stat_result]]:
        found: dict[_Ident, tuple[str, os.stat_result]] = {}
        for pattern in self.patterns:
            for path in sorted(glob.glob(pattern, recursive=True)):
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    found.setdefault((st.st_dev, st.st_ino), (path, st))
        return found

    def _key(self, path: str) -> str:
        return f"file:{path}"

    def _load_checkpoints(self, found: dict[_Ident, tuple[str, os.stat_result]]) -> None:
        """Read stored positions of newly seen paths; re-open files rotated away meanwhile."""
        if self.checkpoints is None:
            return
        new_idents: list[_Ident] = []
        for path, _ in found.values():
            if path in self._loaded_keys:
                continue
            self._loaded_keys.add(path)
            stored = self.checkpoints.get(self._key(path)) or {}
            for raw_entry in stored.get("files", []):
                entry = _valid_entry(raw_entry)
                if entry is None:
                    continue
                ident = (entry["dev"], entry["ino"])
                if ident in self._files:
                    continue
                old = self._resume.get(ident)
                if old is None or entry["offset"] > old["offset"]:
                    self._resume[ident] = entry
                    self._resume_key[ident] = path
                    new_idents.append(ident)
        for ident in new_idents:
            if ident in found or ident not in self._resume:
                continue
            # rotated away while we were not running: look for the inode next to its old name
            key_path = self._resume_key[ident]
            entry = self._resume[ident]
            sibling = _find_sibling(
                key_path,
                lambda p, st, e=entry: (
                    (st.st_dev, st.st_ino) == (e["dev"], e["ino"])
                    and st.st_size >= e["offset"]
                    and _path_digest(p, e["fp_len"]) == e["fp"]
                ),
            )
            if sibling is not None:
                f = self._open_fd(sibling, self._resume.pop(ident), key_path)
                if f is not None:
                    f.departed_at = f.last_growth = time.monotonic()
                    self._files[f.ident] = f

    # ---------------------------------------------------------------- opening

    async def _open(self, path: str, ident: _Ident, sink: Sink, *, initial: bool) -> None:
        entry = self._resume.pop(ident, None)
        f = self._open_fd(path, entry, path)
        if f is None:
            return
        if f.ident != ident:  # replaced between stat and open; use what we opened
            entry = None
        if entry is None and initial and not self.from_beginning:
            self._seek(f, f.size)
        elif entry is not None and f.committed == 0 and entry["offset"] > 0:
            # stored position no longer valid (truncated or replaced while we were down)
            await self._recover_copy(f, entry["fp"], entry["fp_len"], entry["offset"], sink)
            self._commit(f.path)
        self._files[f.ident] = f

    def _open_fd(self, path: str, entry: dict[str, Any] | None, label: str) -> _Followed | None:
        """Open ``path`` and position it at ``entry``'s offset if identity still matches."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            if path not in self._open_failed:
                self._open_failed.add(path)
                log.warning("cannot open %s: %s", path, exc)
            return None
        self._open_failed.discard(path)
        st = os.fstat(fd)
        offset = 0
        if (
            entry is not None
            and (entry["dev"], entry["ino"]) == (st.st_dev, st.st_ino)
            and entry["offset"] <= st.st_size
            and _prefix_digest(fd, entry["fp_len"], st.st_size) == entry["fp"]
        ):
            offset = int(entry["offset"])
        fp_len = min(self.fingerprint_bytes, st.st_size)
        f = _Followed(
            path=label,
            fd=fd,
            dev=st.st_dev,
            ino=st.st_ino,
            splitter=LineSplitter(self.max_line_bytes, offset),
            fp=_prefix_digest(fd, fp_len, st.st_size) or "",
            fp_len=fp_len,
            read_pos=offset,
            committed=offset,
            size=st.st_size,
        )
        return f

    def _seek(self, f: _Followed, offset: int) -> None:
        f.splitter.reset(offset)
        f.read_pos = f.committed = offset

    # ---------------------------------------------------------------- reading

    async def _read(self, f: _Followed, sink: Sink, now: float) -> None:
        try:
            st = os.fstat(f.fd)
        except OSError as exc:
            log.warning("cannot stat %s: %s", f.path, exc)
            return
        if st.st_size != f.size or st.st_mtime_ns != f.mtime_ns:
            if st.st_size < f.read_pos or not self._fingerprint_ok(f, st.st_size):
                log.info("%s was truncated or replaced; reading it from the start", f.path)
                await self._recover_copy(f, f.fp, f.fp_len, f.splitter.position, sink)
                self._seek(f, 0)
                self._refingerprint(f, st.st_size)
                self._commit(f.path)
            elif f.fp_len < self.fingerprint_bytes and st.st_size > f.fp_len:
                self._refingerprint(f, st.st_size)
            f.size, f.mtime_ns = st.st_size, st.st_mtime_ns
        if st.st_size <= f.read_pos:
            return
        batch: list[RawLine] = []
        end = f.committed
        while not self._stop.is_set():
            try:
                data = os.pread(f.fd, self.read_size, f.read_pos)
            except OSError as exc:
                log.warning("cannot read %s: %s", f.path, exc)
                break
            if not data:
                break
            f.read_pos += len(data)
            f.last_growth = now
            received = time.time()
            for raw, pos in f.splitter.feed(data):
                end = pos
                text = decode_line(raw, self.max_line_bytes)
                if text is not None:
                    batch.append(RawLine(text, f.path, received))
                if len(batch) >= self.batch_lines:
                    await self._deliver(f, batch, end, sink)
                    batch = []
        if batch or end != f.committed:
            await self._deliver(f, batch, end, sink)

    async def _deliver(self, f: _Followed, batch: list[RawLine], end: int, sink: Sink) -> None:
        if batch:
            await sink(batch)
        f.committed = end
        self._commit(f.path)

    async def _retire(self, f: _Followed, sink: Sink) -> None:
        """A rotated-away file that stopped growing: deliver its last line and close it."""
        tail = f.splitter.flush()
        if tail is not None:
            await self._deliver(f, self._records([tail], f.path), tail[1], sink)
        self._files.pop(f.ident, None)
        with contextlib.suppress(OSError):
            os.close(f.fd)
        self._commit(f.path)

    # ---------------------------------------------------------------- truncation

    def _fingerprint_ok(self, f: _Followed, size: int) -> bool:
        if f.fp_len == 0:
            return True
        return size >= f.fp_len and _prefix_digest(f.fd, f.fp_len, size) == f.fp

    def _refingerprint(self, f: _Followed, size: int) -> None:
        f.fp_len = min(self.fingerprint_bytes, size)
        f.fp = _prefix_digest(f.fd, f.fp_len, size) or ""

    async def _recover_copy(
        self, f: _Followed, fp: str, fp_len: int, offset: int, sink: Sink
    ) -> None:
        """Deliver what a copytruncate copy holds past ``offset``; else ``f``'s pending tail."""
        copy = None
        if fp_len > 0:
            copy = _find_sibling(
                f.path,
                lambda p, st: (
                    (st.st_dev, st.st_ino) != f.ident
                    and st.st_size > offset
                    and _path_digest(p, fp_len) == fp
                ),
            )
        if copy is None:
            tail = f.splitter.flush()
            records = self._records([tail] if tail else [], f.path)
            if records:
                await sink(records)
            return
        log.info("recovering the end of %s from its copy %s", f.path, copy)
        splitter = LineSplitter(self.max_line_bytes, offset)
        batch: list[RawLine] = []
        with open(copy, "rb") as fh:
            fh.seek(offset)
            while chunk := fh.read(self.read_size):
                batch.extend(self._records(splitter.feed(chunk), f.path))
                if len(batch) >= self.batch_lines:
                    await sink(batch)
                    batch = []
        tail = splitter.flush()
        batch.extend(self._records([tail] if tail else [], f.path))
        if batch:
            await sink(batch)

    def _records(self, lines: list[tuple[bytes, int]], path: str) -> list[RawLine]:
        received = time.time()
        out = []
        for raw, _ in lines:
            text = decode_line(raw, self.max_line_bytes)
            if text is not None:
                out.append(RawLine(text, path, received))
        return out

    # ---------------------------------------------------------------- checkpoints

    def _commit(self, path: str) -> None:
        """Mark ``path``'s stored positions as out of date (written by :meth:`_flush_commits`)."""
        self._dirty.add(path)

    def _flush_commits(self) -> None:
        """Store the committed offsets of every file last seen under each changed path."""
        dirty, self._dirty = self._dirty, set()
        if self.checkpoints is None:
            return
        for path in sorted(dirty):
            files = [f.state() for f in self._files.values() if f.path == path]
            self.checkpoints.put(self._key(path), {"files": files})


def _path_of(f: _Followed) -> str:
    return f.path


def _valid_entry(entry: Any) -> dict[str, Any] | None:
    """A stored file state with the expected types, or ``None``."""
    try:
        return {
            "dev": int(entry["dev"]),
            "ino": int(entry["ino"]),
            "fp": str(entry["fp"]),
            "fp_len": int(entry["fp_len"]),
            "offset": int(entry["offset"]),
        }
    except (KeyError, TypeError, ValueError):
        return None


def _prefix_digest(fd: int, length: int, size: int) -> str | None:
    """Digest of the first ``length`` bytes, or ``None`` if the file is shorter."""
    if length > size:
        return None
    try:
        data = os.pread(fd, length, 0)
    except OSError:
        return None
    return _digest(data) if len(data) == length else None


def _path_digest(path: str, length: int) -> str | None:
    try:
        with open(path, "rb") as fh:
            data = fh.read(length)
    except OSError:
        return None
    return _digest(data) if len(data) == length else None


def _find_sibling(path: str, match: Any) -> str | None:
    """Newest regular file next to ``path`` named ``<name>…`` for which ``match(p, st)``."""
    directory, name = os.path.split(path)
    best: tuple[float, str] | None = None
    try:
        entries = list(os.scandir(directory or "."))
    except OSError:
        return None
    for entry in entries:
        if entry.name == name or not entry.name.startswith(name):
            continue
        try:
            st = entry.stat()
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and match(entry.path, st):
            key = (st.st_mtime, entry.path)
            if best is None or key > best:
                best = key
    return best[1] if best else None
