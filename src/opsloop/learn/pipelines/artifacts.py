"""Artifact storage: step outputs live here, not in the memory of one process.

Artifacts are content-addressed: the reference of a stored value carries the SHA-256 of
its encoded bytes, so identical outputs are stored once and downstream cache keys can use
the hash without reading the data again.

How a value becomes bytes is decided by a list of :class:`Codec` objects, tried in order.
The defaults store ``bytes`` as-is, numpy arrays as ``.npy`` (no pickle), pandas DataFrames
as Parquet with fixed writer options (equal frames give equal bytes, see ``parquet.py``) and
anything JSON-able as canonical JSON. Other codecs plug in by putting them first::

    store = LocalArtifactStore(root, codecs=[MyCodec(), *default_codecs()])

>>> import tempfile
>>> store = LocalArtifactStore(tempfile.mkdtemp())
>>> ref = store.put({"b": 1, "a": [1, 2]})
>>> ref.codec, store.get(ref)
('json', {'a': [1, 2], 'b': 1})
>>> store.put({"a": [1, 2], "b": 1}).content_hash == ref.content_hash
True
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict

from opsloop.learn.pipelines.parquet import ParquetCodec


class ArtifactError(RuntimeError):
    """An artifact cannot be stored or read back."""


class ArtifactRef(BaseModel):
    """Where an artifact lives and what it contains (hash of the encoded bytes)."""

    model_config = ConfigDict(frozen=True)

    uri: str
    content_hash: str
    codec: str
    size: int


@runtime_checkable
class Codec(Protocol):
    """Turns one family of values into bytes and back."""

    name: str
    extension: str

    def can_encode(self, value: Any) -> bool:
        """Whether this codec handles ``value``."""
        ...

    def encode(self, value: Any) -> bytes:
        """The bytes to store."""
        ...

    def decode(self, data: bytes) -> Any:
        """The value back from stored bytes."""
        ...


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def canonical_json(value: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces); numpy scalars become Python numbers.

    >>> canonical_json({"b": 1, "a": (1, 2.5)})
    '{"a":[1,2.5],"b":1}'
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), default=_json_default, allow_nan=True
    )


class BytesCodec:
    """``bytes``/``bytearray`` stored verbatim (models, images, archives)."""

    name = "bytes"
    extension = ".bin"

    def can_encode(self, value: Any) -> bool:
        """Raw bytes only."""
        return isinstance(value, bytes | bytearray | memoryview)

    def encode(self, value: Any) -> bytes:
        """Unchanged."""
        return bytes(value)

    def decode(self, data: bytes) -> Any:
        """Unchanged."""
        return data


class NumpyCodec:
    """numpy arrays as ``.npy`` (object arrays refused: no pickle)."""

    name = "npy"
    extension = ".npy"

    def can_encode(self, value: Any) -> bool:
        """Non-object ndarrays."""
        return isinstance(value, np.ndarray) and value.dtype != object

    def encode(self, value: Any) -> bytes:
        """``np.save`` without pickle."""
        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        return buf.getvalue()

    def decode(self, data: bytes) -> Any:
        """``np.load`` without pickle."""
        return np.load(io.BytesIO(data), allow_pickle=False)


class JsonCodec:
    """JSON-able values as canonical JSON (tuples come back as lists)."""

    name = "json"
    extension = ".json"

    def can_encode(self, value: Any) -> bool:
        """Whether canonical JSON can represent ``value``."""
        try:
            canonical_json(value)
        except (TypeError, ValueError):
            return False
        return True

    def encode(self, value: Any) -> bytes:
        """Canonical JSON, UTF-8."""
        return canonical_json(value).encode()

    def decode(self, data: bytes) -> Any:
        """Parsed JSON."""
        return json.loads(data)


def default_codecs() -> list[Codec]:
    """Bytes, numpy, Parquet (pandas DataFrames), JSON, in that order."""
    return [BytesCodec(), NumpyCodec(), ParquetCodec(), JsonCodec()]


@runtime_checkable
class ArtifactStore(Protocol):
    """Stores step outputs; must be picklable and usable from any worker process."""

    def put(self, value: Any) -> ArtifactRef:
        """Store ``value``; the returned ref is enough to read it back anywhere."""
        ...

    def get(self, ref: ArtifactRef) -> Any:
        """Read a value back."""
        ...

    def exists(self, ref: ArtifactRef) -> bool:
        """Whether the artifact is still there (caches check before reusing it)."""
        ...


class LocalArtifactStore:
    """Artifacts as files under ``root/objects/<hash[:2]>/<hash><ext>``.

    Writes go through a temporary file and an atomic rename, so a crashed step never
    leaves a half-written artifact under its final name.
    """

    def __init__(self, root: str | os.PathLike[str], codecs: Sequence[Codec] | None = None):
        self.root = Path(root)
        self.codecs: list[Codec] = list(codecs) if codecs is not None else default_codecs()
        self._by_name = {c.name: c for c in self.codecs}

    def _codec_for(self, value: Any) -> Codec:
        for codec in self.codecs:
            if codec.can_encode(value):
                return codec
        names = ", ".join(c.name for c in self.codecs)
        raise ArtifactError(
            f"no codec can store a {type(value).__name__} (codecs: {names}); return "
            "JSON-able data, bytes or a numpy array, or register a codec"
        )

    def _path(self, content_hash: str, codec: Codec) -> Path:
        return self.root / "objects" / content_hash[:2] / f"{content_hash}{codec.extension}"

    def put(self, value: Any) -> ArtifactRef:
        """Encode with the first codec that accepts ``value`` and write it once."""
        codec = self._codec_for(value)
        data = codec.encode(value)
        content_hash = hashlib.sha256(codec.name.encode() + b"\0" + data).hexdigest()
        path = self._path(content_hash, codec)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return ArtifactRef(
            uri=path.resolve().as_uri(), content_hash=content_hash, codec=codec.name, size=len(data)
        )

    def _local_path(self, ref: ArtifactRef) -> Path:
        codec = self._by_name.get(ref.codec)
        if codec is None:
            raise ArtifactError(f"artifact {ref.uri} uses codec {ref.codec!r}, not registered here")
        return self._path(ref.content_hash, codec)

    def get(self, ref: ArtifactRef) -> Any:
        """Decode the stored bytes."""
        path = self._local_path(ref)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ArtifactError(f"artifact {ref.uri} is missing") from None
        return self._by_name[ref.codec].decode(data)

    def exists(self, ref: ArtifactRef) -> bool:
        """Whether the file is there."""
        try:
            return self._local_path(ref).exists()
        except ArtifactError:
            return False
