"""Step cache: an unchanged step (same code, params and input contents) is not re-run.

The key is a SHA-256 over the step's code hash, its params as canonical JSON and the
content hashes of its inputs, so it changes when any of them changes.

>>> k1 = cache_key("code", {"k": 3}, {"raw": "abc"})
>>> k1 == cache_key("code", {"k": 3}, {"raw": "abc"})
True
>>> k1 == cache_key("code", {"k": 4}, {"raw": "abc"})
False
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from opsloop.learn.pipelines.artifacts import ArtifactRef, canonical_json


class CacheKeyError(TypeError):
    """Params that cannot be hashed deterministically."""


def cache_key(code_hash: str, params: Mapping[str, Any], input_hashes: Mapping[str, str]) -> str:
    """Hash of code, params and input content hashes (order-independent)."""
    try:
        params_json = canonical_json(dict(params))
    except (TypeError, ValueError) as exc:
        raise CacheKeyError(
            f"step params must be JSON-serialisable to be hashed for caching: {exc}"
        ) from exc
    payload = canonical_json({"code": code_hash, "params": params_json, "inputs": input_hashes})
    return hashlib.sha256(payload.encode()).hexdigest()


class CacheEntry(BaseModel):
    """The outputs a step produced for one cache key, and the run that produced them."""

    outputs: dict[str, ArtifactRef]
    run_id: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


@runtime_checkable
class StepCache(Protocol):
    """Maps cache keys to the outputs produced for them."""

    def get(self, key: str) -> CacheEntry | None:
        """The entry for ``key``, if any."""
        ...

    def put(self, key: str, entry: CacheEntry) -> None:
        """Remember ``entry`` under ``key`` (last writer wins)."""
        ...


class InMemoryStepCache:
    """A dict behind a lock; lives as long as the process."""

    def __init__(self) -> None:
        self._entries: dict[str, CacheEntry] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> CacheEntry | None:
        """The entry for ``key``, if any."""
        with self._lock:
            return self._entries.get(key)

    def put(self, key: str, entry: CacheEntry) -> None:
        """Remember ``entry``."""
        with self._lock:
            self._entries[key] = entry


class LocalStepCache:
    """One JSON file per key under ``root``; survives restarts, shared by processes."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        if not key.isalnum():
            raise ValueError(f"invalid cache key {key!r}")
        return self.root / f"{key}.json"

    def get(self, key: str) -> CacheEntry | None:
        """The entry for ``key``; unreadable entries count as misses."""
        try:
            return CacheEntry.model_validate_json(self._path(key).read_text())
        except (FileNotFoundError, ValueError):
            return None

    def put(self, key: str, entry: CacheEntry) -> None:
        """Write atomically (temporary file + rename)."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(entry.model_dump_json())
            os.replace(tmp, self._path(key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
