"""Request bodies of the gateway, parsed into one :class:`Payload`.

Two entry points read the two protocols:

* :func:`parse_api` reads opsloop's ``/predict`` body: ``{"records": [{...}]}``,
  ``{"columns": [...], "data": [[...]]}`` or ``{"inputs": ...}`` (MLflow's own keys
  ``dataframe_split``, ``dataframe_records`` and ``instances`` are accepted too), with
  optional ``"params"``.
* :func:`parse_invocations` reads MLflow's scoring protocol (``/invocations``) exactly as
  ``mlflow models serve`` does.

Well-formed tabular bodies (split or records) become *rows*, which the gateway can batch with
other requests; everything else (tensors, ``instances``, ``inputs``, CSV, parquet, odd shapes)
stays the raw body, handed to MLflow's own parser so that it gets MLflow's exact answer.

>>> p = parse_api({"columns": ["b", "a"], "data": [[2, 1], [4, 3]]})
>>> p.kind, p.n_rows, p.rows_for(["a", "b"], ["a", "b"])
('split', 2, [[1, 2], [3, 4]])
>>> parse_api({"records": [{"a": 1}]}).rows_for(["a", "b"], ["a", "b"]) is None  # b missing
True
>>> parse_invocations(b'{"instances": [[1, 2]]}', "application/json").kind
'mlflow'
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from opsloop.learn.serving.errors import BadInput

JSON = "application/json"
MLFLOW_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
API_FORMATS = ("records", "columns", "inputs", *MLFLOW_FORMATS[:3])


@dataclass
class Payload:
    """One request's input: tabular rows (batchable) or a raw MLflow scoring body."""

    kind: str  # "split", "records" or "mlflow"
    columns: list[str] | None = None
    rows: list[list[Any]] | None = None
    records: list[dict[str, Any]] | None = None
    raw: bytes | None = None
    content_type: str = JSON
    params: dict[str, Any] | None = None

    @property
    def tabular(self) -> bool:
        """Whether the input is rows the gateway may batch (no params, well formed)."""
        return self.kind in ("split", "records") and not self.params

    @property
    def n_rows(self) -> int:
        """Number of rows (0 for a raw body, whose shape only MLflow's parser knows)."""
        if self.kind == "split":
            return len(self.rows or [])
        if self.kind == "records":
            return len(self.records or [])
        return 0

    def rows_for(self, names: list[str], required: list[str]) -> list[list[Any]] | None:
        """The rows in the model's column order, or ``None`` where MLflow should judge.

        A required column that is missing makes it ``None``: MLflow's own path then answers
        with its own error. Columns the model does not take are dropped (as MLflow does).
        """
        if self.kind == "split":
            columns, rows = self.columns or [], self.rows or []
            if columns == names:
                return rows
            index = {c: i for i, c in enumerate(columns)}
            if len(index) != len(columns) or any(c not in index for c in required):
                return None
            picks = [index.get(c) for c in names]
            return [[row[i] if i is not None else None for i in picks] for row in rows]
        if self.kind == "records":
            records = self.records or []
            if any(c not in r for r in records for c in required):
                return None
            return [[r.get(c) for c in names] for r in records]
        return None

    def mlflow_body(self) -> tuple[bytes, str]:
        """The body and content type to give MLflow's scoring parser."""
        if self.raw is not None:
            return self.raw, self.content_type
        if self.kind == "split":
            data: dict[str, Any] = {"dataframe_split": {"columns": self.columns, "data": self.rows}}
        else:
            data = {"dataframe_records": self.records}
        if self.params:
            data["params"] = self.params
        return json.dumps(data).encode(), JSON

    def input_records(self, names: list[str] | None = None) -> Any:
        """The input as a list of records (for the prediction log); raw inputs as sent."""
        if self.kind == "records":
            return self.records
        if self.kind == "split":
            columns = self.columns or []
            return [dict(zip(columns, row, strict=False)) for row in self.rows or []]
        try:
            body = json.loads(self.raw or b"null")
        except ValueError:
            return None
        if isinstance(body, dict):
            for key in MLFLOW_FORMATS:
                if key in body:
                    return body[key]
        return body


def _split(value: Any) -> tuple[list[str], list[list[Any]]] | None:
    """``(columns, rows)`` of a well-formed split frame, else ``None``."""
    if not isinstance(value, dict) or set(value) - {"columns", "data", "index"}:
        return None
    columns, data = value.get("columns"), value.get("data")
    if not isinstance(columns, list) or not columns or not isinstance(data, list) or not data:
        return None
    if not all(isinstance(c, str) for c in columns):
        return None
    width = len(columns)
    if not all(isinstance(r, list) and len(r) == width for r in data):
        return None
    return columns, data


def _records(value: Any) -> list[dict[str, Any]] | None:
    if not isinstance(value, list) or not value or not all(isinstance(r, dict) for r in value):
        return None
    return value


def _params(body: dict[str, Any]) -> dict[str, Any] | None:
    params = body.get("params")
    if params is not None and not isinstance(params, dict):
        raise BadInput("'params' must be an object")
    return params or None


def _raw(body: dict[str, Any], key: str, params: dict[str, Any] | None) -> Payload:
    data: dict[str, Any] = {key: body[key]}
    if params:
        data["params"] = params
    return Payload("mlflow", raw=json.dumps(data).encode(), params=params)


def parse_api(body: Any) -> Payload:
    """Read a ``/predict`` body (see the module docstring)."""
    if not isinstance(body, dict):
        raise BadInput(
            "expected a JSON object: {'records': [...]}, {'columns': [...], 'data': [[...]]} "
            "or {'inputs': ...}"
        )
    present = [k for k in API_FORMATS if k in body]
    if "columns" in present and "data" not in body:
        raise BadInput("'columns' needs 'data': {'columns': [...], 'data': [[...]]}")
    if len(present) != 1:
        raise BadInput(
            "give exactly one input: 'records', 'columns' + 'data', 'inputs' "
            f"(or MLflow's 'dataframe_split', 'dataframe_records', 'instances'); got {present}"
        )
    key = present[0]
    params = _params(body)
    if key == "columns":
        split = _split({"columns": body["columns"], "data": body["data"]})
        if split is None:
            raise BadInput("'columns' must be a list of names and 'data' a list of equal rows")
        return Payload("split", columns=split[0], rows=split[1], params=params)
    if key in ("records", "dataframe_records"):
        records = _records(body[key])
        if records is None:
            raise BadInput(f"'{key}' must be a non-empty list of objects")
        return Payload("records", records=records, params=params)
    if key == "dataframe_split":
        split = _split(body[key])
        if split is not None:
            return Payload("split", columns=split[0], rows=split[1], params=params)
    return _raw(body, key, params)


def parse_invocations(body: bytes, content_type: str | None) -> Payload:
    """Read an MLflow scoring request; tabular JSON bodies become rows, the rest stays raw."""
    ctype = content_type or ""
    raw = Payload("mlflow", raw=body, content_type=ctype)
    if ctype.split(";")[0].strip().lower() != JSON or ";" in ctype:
        return raw
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return raw
    if not isinstance(data, dict) or set(data) - {*MLFLOW_FORMATS, "params"}:
        return raw
    keys = [k for k in MLFLOW_FORMATS if k in data]
    if len(keys) != 1 or data.get("params") is not None:
        return raw
    if keys[0] == "dataframe_split":
        split = _split(data["dataframe_split"])
        if split is not None:
            return Payload("split", columns=split[0], rows=split[1])
    elif keys[0] == "dataframe_records":
        records = _records(data["dataframe_records"])
        if records is not None:
            return Payload("records", records=records)
    return raw
