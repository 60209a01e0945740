"""Parquet codec: pandas DataFrames stored as Parquet bytes (via pyarrow).

Part of :func:`~opsloop.learn.pipelines.artifacts.default_codecs`, ahead of JSON, so a step
that returns a DataFrame gets a typed, columnar artifact instead of an error. DataFrames are
recognised by their class (module and name), so neither pandas nor pyarrow is imported until
a table is actually stored or read.

Encoding is deterministic: equal frames (same values, dtypes, column names and index)
give identical bytes, hence the same content hash, so an unchanged table never invalidates
a downstream cache entry. The index is kept: a ``RangeIndex`` costs only metadata, any other
index is stored as columns and comes back as it was.

>>> codec = ParquetCodec()
>>> codec.can_encode({"a": [1]}), codec.can_encode(b"x")
(False, False)
>>> import pandas as pd
>>> df = pd.DataFrame({"x": [1, 2], "y": ["a", "b"]})
>>> codec.can_encode(df), codec.encode(df) == codec.encode(df.copy())
(True, True)
>>> codec.decode(codec.encode(df)).equals(df)
True
>>> frame_hash(df) == frame_hash(df.copy())
True
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

# Fixed writer options: part of the bytes, hence of every content hash. Changing any of
# them changes the hash of every stored table (downstream caches miss once).
_WRITE_OPTIONS: dict[str, Any] = {
    "compression": "snappy",
    "use_dictionary": True,
    "write_statistics": True,
    "version": "2.6",
    "data_page_version": "1.0",
}


def is_dataframe(value: Any) -> bool:
    """Whether ``value`` is a pandas DataFrame (or subclass), without importing pandas.

    >>> is_dataframe([1, 2]), is_dataframe(None)
    (False, False)
    """
    return any(
        cls.__name__ == "DataFrame" and cls.__module__.split(".")[0] == "pandas"
        for cls in type(value).__mro__
    )


class ParquetCodec:
    """pandas DataFrames as Parquet (snappy, index kept, deterministic bytes)."""

    name = "parquet"
    extension = ".parquet"

    def can_encode(self, value: Any) -> bool:
        """pandas DataFrames (checked by class, pandas is not imported)."""
        return is_dataframe(value)

    def encode(self, value: Any) -> bytes:
        """Parquet bytes of the frame; column names must be strings."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        bad = [c for c in value.columns if not isinstance(c, str)]
        if bad:
            raise ValueError(
                f"DataFrame column names must be strings to be stored as Parquet, got {bad[:5]!r}"
                " (rename them, e.g. df.columns = df.columns.map(str))"
            )
        table = pa.Table.from_pandas(value, preserve_index=None)
        buf = io.BytesIO()
        pq.write_table(table, buf, **_WRITE_OPTIONS)
        return buf.getvalue()

    def decode(self, data: bytes) -> Any:
        """The DataFrame back (dtypes and index restored from the pandas metadata)."""
        import pyarrow.parquet as pq

        return pq.read_table(io.BytesIO(data)).to_pandas()


def frame_hash(value: Any) -> str:
    """The content hash a :class:`LocalArtifactStore` gives ``value`` when storing it.

    Lets a step name the exact artifact it was given (e.g. as lineage on a registered model)
    without access to the artifact reference: encoding is deterministic, so hashing the
    decoded frame again reproduces the stored hash.
    """
    data = ParquetCodec().encode(value)
    return hashlib.sha256(ParquetCodec.name.encode() + b"\0" + data).hexdigest()
