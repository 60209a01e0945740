"""Where sources remember how far they got: a tiny key → dict store.

:class:`JsonCheckpointStore` keeps everything in one JSON file and rewrites it atomically on each
:meth:`~JsonCheckpointStore.put` (temp file in the same directory, fsync, ``os.replace``, fsync of
the directory), so a crash leaves either the old or the new file, never a torn one.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger(__name__)


@runtime_checkable
class CheckpointStore(Protocol):
    """Key → JSON-able dict. ``put`` must be durable when it returns."""

    def get(self, key: str) -> dict[str, Any] | None:
        """The value last stored under ``key``, or ``None``."""
        ...

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Store ``value`` under ``key``."""
        ...


class MemoryCheckpointStore:
    """In-memory store: remembers positions for the life of the process (tests, one-shot runs)."""

    def __init__(self) -> None:
        self._data: dict[str, dict[str, Any]] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        """The value last stored under ``key``, or ``None``."""
        value = self._data.get(key)
        return copy.deepcopy(value) if value is not None else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Store a copy of ``value`` under ``key``."""
        self._data[key] = copy.deepcopy(value)


class JsonCheckpointStore:
    """All keys in one JSON file, rewritten atomically and fsynced on every ``put``.

    A file that can't be parsed is moved aside to ``<name>.corrupt`` and the store starts empty
    (the sources then re-read, which is the at-least-once side of the trade-off).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._data: dict[str, dict[str, Any]] = self._load()

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("checkpoint file is not a JSON object")
        except ValueError as exc:
            aside = self.path.with_name(self.path.name + ".corrupt")
            log.warning("unreadable checkpoint file %s (%s); moved to %s", self.path, exc, aside)
            os.replace(self.path, aside)
            return {}
        return {str(k): v for k, v in data.items() if isinstance(v, dict)}

    def get(self, key: str) -> dict[str, Any] | None:
        """The value last stored under ``key``, or ``None``."""
        with self._lock:
            value = self._data.get(key)
            return copy.deepcopy(value) if value is not None else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Store ``value`` under ``key`` and durably rewrite the file."""
        with self._lock:
            self._data[key] = copy.deepcopy(value)
            self._write()

    def _write(self) -> None:
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        payload = json.dumps(self._data, sort_keys=True, separators=(",", ":")).encode()
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (POSIX); a no-op where directories can't be opened."""
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
