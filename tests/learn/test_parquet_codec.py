"""Parquet codec: DataFrames round-trip, encode to stable bytes, and are the default for tables."""

from __future__ import annotations

import doctest
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from opsloop.learn.pipelines import (
    LocalArtifactStore,
    LocalStepCache,
    Pipeline,
    Runner,
    StepStatus,
    default_codecs,
    step,
)
from opsloop.learn.pipelines import parquet as parquet_module
from opsloop.learn.pipelines.parquet import ParquetCodec, frame_hash, is_dataframe

# pyarrow reads tz-aware columns through Series.values, which pandas 3.1 deprecates
pytestmark = pytest.mark.filterwarnings("ignore:Series.values returning an ndarray")


def sample_frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "i": np.arange(50, dtype="int64"),
            "f": rng.normal(size=50),
            "nan": [1.5, np.nan] * 25,
            "s": [f"row-{k}" for k in range(50)],
            "b": [True, False] * 25,
            "cat": pd.Categorical(["x", "y", "z", "x", "y"] * 10),
            "ts": pd.date_range("2024-01-01", periods=50, freq="h", tz="UTC"),
            "nullable": pd.array([1, None] * 25, dtype="Int64"),
        }
    )


@pytest.fixture
def codec() -> ParquetCodec:
    return ParquetCodec()


def test_round_trip_keeps_values_dtypes_and_index(codec):
    df = sample_frame()
    back = codec.decode(codec.encode(df))
    pd.testing.assert_frame_equal(back, df)
    shuffled = df.sample(frac=1.0, random_state=3).set_index("s")
    back = codec.decode(codec.encode(shuffled))
    pd.testing.assert_frame_equal(back, shuffled)
    assert back.index.name == "s" and list(back.index[:3]) == list(shuffled.index[:3])


def test_equal_frames_encode_to_identical_bytes(codec):
    df = sample_frame()
    first = codec.encode(df)
    assert codec.encode(df) == first
    assert codec.encode(df.copy(deep=True)) == first
    rebuilt = pd.DataFrame({name: df[name].copy() for name in df.columns})
    assert codec.encode(rebuilt) == first
    # what comes back from storage stores to the very same bytes (hash-stable pipelines)
    assert codec.encode(codec.decode(first)) == first


@pytest.mark.parametrize(
    "change",
    [
        lambda df: df.assign(f=df["f"] + 1e-12),
        lambda df: df.astype({"i": "int32"}),
        lambda df: df[list(reversed(df.columns))],
        lambda df: df.rename(columns={"i": "j"}),
        lambda df: df.set_axis(range(1, 51)),
        lambda df: df.iloc[:49],
    ],
    ids=["value", "dtype", "column-order", "column-name", "index", "rows"],
)
def test_different_frames_encode_differently(codec, change):
    df = sample_frame()
    assert codec.encode(change(df)) != codec.encode(df)


def test_hash_is_stable_across_interpreters_and_pandas_is_imported_lazily(tmp_path):
    """A fresh interpreter gives the same hash; storing non-tables never imports pandas."""
    script = textwrap.dedent(
        f"""
        import sys
        from opsloop.learn.pipelines import LocalArtifactStore, default_codecs
        store = LocalArtifactStore({str(tmp_path)!r})
        store.put({{"a": 1}}); store.put(b"raw")
        assert [c.name for c in default_codecs()] == ["bytes", "npy", "parquet", "json"]
        assert "pandas" not in sys.modules and "pyarrow" not in sys.modules, "imported eagerly"
        import numpy as np, pandas as pd
        df = pd.DataFrame({{"x": np.arange(10), "y": [str(i) for i in range(10)]}})
        print(store.put(df).content_hash)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    df = pd.DataFrame({"x": np.arange(10), "y": [str(i) for i in range(10)]})
    assert out.stdout.strip() == frame_hash(df)


def test_dataframes_are_recognised_without_being_other_things(codec):
    assert codec.can_encode(sample_frame())

    class MyFrame(pd.DataFrame):
        pass

    assert is_dataframe(MyFrame({"a": [1]}))
    for value in ({"a": [1]}, [1, 2], b"x", pd.Series([1, 2]), np.arange(3), None, "DataFrame"):
        assert not codec.can_encode(value), value


def test_non_string_column_names_are_refused_clearly(codec):
    with pytest.raises(ValueError, match=r"column names must be strings.*\[0, 1\]"):
        codec.encode(pd.DataFrame([[1, 2]]))


def test_store_uses_parquet_for_tables_and_hash_matches_frame_hash(tmp_path):
    assert [c.name for c in default_codecs()].index("parquet") < [
        c.name for c in default_codecs()
    ].index("json")
    store = LocalArtifactStore(tmp_path)
    df = sample_frame()
    ref = store.put(df)
    assert ref.codec == "parquet" and ref.uri.endswith(".parquet")
    assert ref.content_hash == frame_hash(df)
    pd.testing.assert_frame_equal(store.get(ref), df)
    assert store.put(df.copy()).content_hash == ref.content_hash
    # plain JSON-able data is unaffected
    assert store.put({"a": [1, 2]}).codec == "json"


@step(inputs=(), outputs=("table",))
def make_table(n: int = 20) -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(n), "y": np.arange(n) * 0.5})


@step
def column_sum(table: pd.DataFrame, column: str = "y") -> float:
    assert isinstance(table, pd.DataFrame)
    return float(table[column].sum())


def test_tables_flow_between_steps_and_are_cached(tmp_path):
    p = Pipeline("tables")
    p.add(make_table)
    p.add(column_sum, inputs={"table": "make_table"})
    runner = Runner(LocalArtifactStore(tmp_path / "a"), cache=LocalStepCache(tmp_path / "c"))
    first = runner.run(p)
    assert runner.output(first, "column_sum") == pytest.approx(95.0)
    assert first.steps["make_table"].outputs["table"].codec == "parquet"
    second = runner.run(p)
    assert {s.status for s in second.steps.values()} == {StepStatus.CACHED}


def test_doctests():
    assert doctest.testmod(parquet_module).failed == 0
