"""Reference profile of a table: what the drift tests need from the training data, in JSON.

Built once when a model version is registered, stored beside it, and compared with every
window of live inputs (:mod:`opsloop.learn.monitoring.drift`). Per column:

* **kind**, decided the way Evidently 0.7 infers a column's type: floats are numeric; integers
  are categorical when they take at most 10 distinct values, numeric otherwise; booleans,
  pandas categories and strings are categorical, except string columns whose distinct count
  exceeds half their non-missing count, which Evidently calls *text* (free text, identifiers):
  those are skipped (listed in :attr:`ReferenceProfile.skipped`). Either kind can be forced.
* **numeric**: ``n`` finite values (NaN and +-inf are counted as missing, then dropped, as
  Evidently drops them), the population standard deviation ``std = sqrt(mean((x - mean)^2))``
  over all of them (the Wasserstein norm), and the sorted values themselves when
  ``n <= max_values`` (default 5,000, so every Kolmogorov-Smirnov case, ``n <= 1000``, is exact).
  Above that it keeps ``K = max_values`` equal-mass bins of the sorted values, each as its
  mean ``K (G((i+1)/K) - G(i/K))`` with ``G(u)`` the integral of the quantile function up to
  ``u``. The Wasserstein distance ``integral_0^1 |Q_r(u) - Q_c(u)| du`` against these bin means
  is exact on every bin the current quantile function does not cross; measured, it stays
  within about 1e-4 std of the full-data value (normal, log-normal, Poisson, up to 200,000
  rows, K = 5000), a few 1e-4 at most when both samples come from one distribution (the
  quantile functions cross often, but the distance is then far below the 0.1 threshold).
  Also kept: the value counts when at most 20 distinct values occur (the few-valued tests),
  and ``n_bins`` reference-quantile bins (inner edges, counts) for PSI.
* **categorical**: the category counts, keyed by a canonical string (``True``, ``3`` for
  ``3`` or ``3.0``, the string itself), capped at ``max_categories`` (rarest merged into one
  overflow count, never matched by a live value).

>>> data = {"x": [0.5, 1.5, 2.5, float("nan")], "c": ["a", "b", "a", "b"]}
>>> prof = ReferenceProfile.from_data(data)
>>> prof.columns["x"].kind, prof.columns["x"].n, prof.columns["x"].n_missing
('numeric', 3, 1)
>>> prof.columns["c"].counts
{'a': 2, 'b': 2}
>>> ReferenceProfile.from_dict(prof.to_dict()).to_dict() == prof.to_dict()
True
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = [
    "INTEGER_CARDINALITY_LIMIT",
    "CategoricalProfile",
    "NumericProfile",
    "ReferenceProfile",
    "category_key",
    "category_keys",
    "infer_kind",
    "to_float_array",
]

INTEGER_CARDINALITY_LIMIT = 10  # Evidently: integer columns with <= 10 values are categorical
FEW_VALUES_LIMIT = 20  # value counts kept for numeric columns with at most this many values
FORMAT_VERSION = 1

Kind = Literal["numeric", "categorical"]


def category_key(value: Any) -> str | None:
    """Canonical string for a category value; ``None`` for a missing one (None, NaN, +-inf).

    >>> [category_key(v) for v in (3, 3.0, True, "x", None, float("nan"))]
    ['3', '3', 'True', 'x', None, None]
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return "True" if value else "False"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        f = float(value)
        if not math.isfinite(f):
            return None
        return str(int(f)) if f.is_integer() else repr(f)
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    return str(value)


def category_keys(values: Any) -> list[str]:
    """Canonical keys of a column's non-missing values (see :func:`category_key`)."""
    arr = values.to_numpy() if hasattr(values, "to_numpy") else values
    if isinstance(arr, np.ndarray) and arr.dtype.kind in "iub":
        if arr.dtype.kind == "b":
            return ["True" if v else "False" for v in arr.tolist()]
        return [str(v) for v in arr.tolist()]
    if isinstance(arr, np.ndarray) and arr.dtype.kind == "f":
        arr = arr[np.isfinite(arr)]
        if arr.size and np.all(arr == np.floor(arr)) and np.all(np.abs(arr) < 2**53):
            return [str(v) for v in arr.astype(np.int64).tolist()]
        return [k for k in (category_key(v) for v in arr.tolist()) if k is not None]
    items = arr.tolist() if isinstance(arr, np.ndarray) else list(arr)
    out = []
    for v in items:
        if type(v) is str:
            out.append(v)
        else:
            k = category_key(v)
            if k is not None:
                out.append(k)
    return out


def to_float_array(values: Any) -> np.ndarray:
    """A column as float64; values that are not numbers become NaN (so: missing)."""
    arr = values.to_numpy() if hasattr(values, "to_numpy") else values
    try:
        return np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError):
        out = np.empty(len(arr), dtype=np.float64)
        for i, v in enumerate(arr):
            try:
                out[i] = float(v)
            except (TypeError, ValueError):
                out[i] = math.nan
        return out


def _sorted_quantile(s: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """``np.quantile(s, probs)`` (linear interpolation) of an already sorted array, in O(k)."""
    pos = probs * (s.size - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, s.size - 1)
    return s[lo] + (pos - lo) * (s[hi] - s[lo])


def _bin_means(s: np.ndarray, k: int) -> np.ndarray:
    """Means of ``k`` equal-mass bins of a sorted sample (a point split between bins by mass).

    With ``G(u) = integral_0^u Q(v) dv`` (``Q`` the sample's quantile function), bin ``i`` has
    mean ``k (G((i + 1)/k) - G(i/k))``.
    """
    n = s.size
    cum = np.concatenate(([0.0], np.cumsum(s)))
    u = np.arange(k + 1) / k
    j = np.minimum(np.floor(u * n).astype(np.int64), n - 1)
    g = cum[j] / n + (u - j / n) * s[j]
    g[-1] = cum[-1] / n
    return np.diff(g) * k


def _series(values: Any) -> Any:
    import pandas as pd

    if isinstance(values, pd.Series):
        return values
    return pd.Series(values if isinstance(values, np.ndarray) else list(values))


def infer_kind(values: Any) -> str:
    """``numeric``, ``categorical`` or ``text`` (or ``unknown``), by Evidently 0.7's rules.

    >>> infer_kind([1.0, 2.0]), infer_kind([1, 2, 3]), infer_kind(list(range(50)))
    ('numeric', 'categorical', 'numeric')
    >>> infer_kind(["a", "b", "a", "b"]), infer_kind(["u1", "u2", "u3"])
    ('categorical', 'text')
    """
    s = _series(values)
    name = s.dtype.name
    if name.startswith(("float", "Float")):
        return "numeric"
    if name.startswith(("int", "uint", "Int", "UInt")):
        return "categorical" if s.nunique() <= INTEGER_CARDINALITY_LIMIT else "numeric"
    if name in ("bool", "boolean", "category"):
        return "categorical"
    if name in ("string", "str") or name == "object":
        present = s.dropna()
        if present.empty:
            return "unknown"
        if name == "object" and not (
            isinstance(present.iloc[0], str) and isinstance(present.iloc[-1], str)
        ):
            return "unknown"
        return "text" if s.nunique() > s.count() * 0.5 else "categorical"
    return "unknown"


@dataclass
class NumericProfile:
    """Reference summary of one numeric column (see the module docstring)."""

    name: str
    n: int
    n_missing: int
    mean: float
    std: float
    min: float
    max: float
    values: np.ndarray  # sorted: every value (exact) or the means of equal-mass bins
    exact: bool
    n_unique: int  # distinct finite values
    few_values: dict[float, int] | None  # value -> count, when n_unique <= FEW_VALUES_LIMIT
    bin_edges: np.ndarray  # inner edges of the reference-quantile bins (PSI)
    bin_counts: np.ndarray  # reference count per bin, len(bin_edges) + 1
    kind: Kind = "numeric"

    @classmethod
    def from_values(
        cls, name: str, values: Any, *, max_values: int = 5000, n_bins: int = 10
    ) -> NumericProfile:
        """Profile a numeric column (any array-like; non-numbers count as missing)."""
        if max_values <= 1000:
            raise ValueError("max_values must exceed 1000 (KS needs every value up to 1000 rows)")
        raw = to_float_array(values)
        finite = raw[np.isfinite(raw)]
        n = int(finite.size)
        finite = np.sort(finite)
        if n == 0:
            empty = np.empty(0)
            nan = math.nan
            none = np.zeros(1, dtype=np.int64)
            return cls(
                name, 0, int(raw.size), nan, nan, nan, nan, empty, True, 0, None, empty, none
            )
        n_unique = int(np.count_nonzero(np.diff(finite))) + 1
        few = None
        if n_unique <= FEW_VALUES_LIMIT:
            uniq, counts = np.unique(finite, return_counts=True)
            few = {float(v): int(c) for v, c in zip(uniq, counts, strict=True)}
        if n <= max_values:
            kept, exact = finite, True
        else:
            kept, exact = _bin_means(finite, max_values), False
        edges = np.unique(_sorted_quantile(finite, np.arange(1, n_bins) / n_bins))
        bins = np.searchsorted(edges, finite, side="right")
        bin_counts = np.bincount(bins, minlength=edges.size + 1)
        return cls(
            name=name,
            n=n,
            n_missing=int(raw.size - n),
            mean=float(finite.mean()),
            std=float(finite.std()),
            min=float(finite[0]),
            max=float(finite[-1]),
            values=np.ascontiguousarray(kept, dtype=np.float64),
            exact=exact,
            n_unique=n_unique,
            few_values=few,
            bin_edges=edges,
            bin_counts=bin_counts.astype(np.int64),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "n": self.n,
            "n_missing": self.n_missing,
            "mean": _num(self.mean),
            "std": _num(self.std),
            "min": _num(self.min),
            "max": _num(self.max),
            "exact": self.exact,
            "n_unique": self.n_unique,
            "few_values": None
            if self.few_values is None
            else [list(i) for i in self.few_values.items()],
            "values": self.values.tolist(),
            "bin_edges": self.bin_edges.tolist(),
            "bin_counts": self.bin_counts.tolist(),
        }

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> NumericProfile:
        """Inverse of :meth:`to_dict`."""
        few = d.get("few_values")
        return cls(
            name=name,
            n=int(d["n"]),
            n_missing=int(d["n_missing"]),
            mean=_unnum(d["mean"]),
            std=_unnum(d["std"]),
            min=_unnum(d["min"]),
            max=_unnum(d["max"]),
            values=np.asarray(d["values"], dtype=np.float64),
            exact=bool(d["exact"]),
            n_unique=int(d["n_unique"]),
            few_values=None if few is None else {float(v): int(c) for v, c in few},
            bin_edges=np.asarray(d["bin_edges"], dtype=np.float64),
            bin_counts=np.asarray(d["bin_counts"], dtype=np.int64),
        )


@dataclass
class CategoricalProfile:
    """Reference summary of one categorical column: category counts."""

    name: str
    n: int
    n_missing: int
    counts: dict[str, int]
    overflow: int = 0  # rows of categories beyond ``max_categories`` (rarest first)
    kind: Kind = "categorical"

    @classmethod
    def from_values(
        cls, name: str, values: Any, *, max_categories: int = 10_000
    ) -> CategoricalProfile:
        """Profile a categorical column (missing: None, NaN, +-inf)."""
        length = len(values)
        keys = category_keys(values)
        counter = Counter(keys)
        overflow = 0
        if len(counter) > max_categories:
            common = counter.most_common(max_categories)
            overflow = len(keys) - sum(c for _, c in common)
            counter = Counter(dict(common))
        return cls(
            name=name,
            n=len(keys),
            n_missing=length - len(keys),
            counts=dict(sorted(counter.items())),
            overflow=overflow,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "n": self.n,
            "n_missing": self.n_missing,
            "counts": dict(self.counts),
            "overflow": self.overflow,
        }

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> CategoricalProfile:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=name,
            n=int(d["n"]),
            n_missing=int(d["n_missing"]),
            counts={str(k): int(v) for k, v in d["counts"].items()},
            overflow=int(d.get("overflow", 0)),
        )


ColumnProfile = NumericProfile | CategoricalProfile


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _unnum(x: Any) -> float:
    return math.nan if x is None else float(x)


def column_from_dict(name: str, d: Mapping[str, Any]) -> ColumnProfile:
    """A column profile from its :meth:`to_dict` form."""
    if d["kind"] == "numeric":
        return NumericProfile.from_dict(name, d)
    if d["kind"] == "categorical":
        return CategoricalProfile.from_dict(name, d)
    raise ValueError(f"unknown column kind {d['kind']!r}")


def profile_column(
    name: str,
    values: Any,
    kind: str | None = None,
    *,
    max_values: int = 5000,
    n_bins: int = 10,
    max_categories: int = 10_000,
) -> ColumnProfile:
    """Profile one column, its kind given or inferred (text and unknown columns are refused)."""
    kind = kind or infer_kind(values)
    if kind == "numeric":
        return NumericProfile.from_values(name, values, max_values=max_values, n_bins=n_bins)
    if kind == "categorical":
        return CategoricalProfile.from_values(name, values, max_categories=max_categories)
    raise ValueError(f"column {name!r} is {kind}: declare it numeric or categorical to profile it")


def _columns_of(data: Any) -> dict[str, Any]:
    if hasattr(data, "columns") and hasattr(data, "__getitem__"):  # a DataFrame
        return {str(c): data[c] for c in data.columns}
    if isinstance(data, Mapping):
        return {str(k): v for k, v in data.items()}
    raise TypeError("expected a pandas DataFrame or a mapping of column name to values")


@dataclass
class ReferenceProfile:
    """Per-column reference summaries of a table, plus the prediction's (optional)."""

    columns: dict[str, ColumnProfile]
    n_rows: int
    prediction: ColumnProfile | None = None
    skipped: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_data(
        cls,
        data: Any,
        *,
        numeric: Iterable[str] = (),
        categorical: Iterable[str] = (),
        exclude: Iterable[str] = (),
        prediction: str | Sequence[Any] | np.ndarray | None = None,
        prediction_kind: str | None = None,
        max_values: int = 5000,
        n_bins: int = 10,
        max_categories: int = 10_000,
    ) -> ReferenceProfile:
        """Profile a pandas DataFrame or a mapping of column name to values.

        ``numeric``/``categorical`` force a column's kind; ``exclude`` drops columns (ids,
        targets). ``prediction`` is a column name of ``data`` (taken out of the features) or
        the predictions themselves, profiled separately for prediction drift.
        """
        cols = _columns_of(data)
        forced = {c: "numeric" for c in numeric} | {c: "categorical" for c in categorical}
        dropped = set(exclude)
        pred_values = None
        if isinstance(prediction, str):
            pred_values = cols.pop(prediction)
        elif prediction is not None:
            pred_values = prediction
        opts = {"max_values": max_values, "n_bins": n_bins, "max_categories": max_categories}
        profiles: dict[str, ColumnProfile] = {}
        skipped: dict[str, str] = {}
        n_rows = 0
        for name, values in cols.items():
            n_rows = max(n_rows, len(values))
            if name in dropped:
                continue
            kind = forced.get(name) or infer_kind(values)
            if kind not in ("numeric", "categorical"):
                skipped[name] = kind
                continue
            profiles[name] = profile_column(name, values, kind, **opts)
        pred = None
        if pred_values is not None:
            pred = profile_column("prediction", pred_values, prediction_kind, **opts)
        return cls(columns=profiles, n_rows=n_rows, prediction=pred, skipped=skipped)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``json.dumps`` works on it as is)."""
        return {
            "format": FORMAT_VERSION,
            "n_rows": self.n_rows,
            "columns": {name: col.to_dict() for name, col in self.columns.items()},
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
            "skipped": dict(self.skipped),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReferenceProfile:
        """Inverse of :meth:`to_dict`."""
        if d.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported profile format {d.get('format')!r}")
        pred = d.get("prediction")
        return cls(
            columns={name: column_from_dict(name, c) for name, c in d["columns"].items()},
            n_rows=int(d["n_rows"]),
            prediction=None if pred is None else column_from_dict("prediction", pred),
            skipped={str(k): str(v) for k, v in d.get("skipped", {}).items()},
        )
