"""Data validation: declarative table schemas, checked with pandera, with readable reports.

A schema is plain data, so it can live in a pipeline's YAML as well as in Python:

.. code-block:: yaml

    - uses: opsloop.learn.validation:validate
      inputs: {table: load}
      params:
        schema:
          min_rows: 100            # table-level: min_rows, strict, coerce, unique
          columns:
            age: {type: int, min: 0, max: 120}
            id: {type: int, unique: true}
            country: {type: str, allowed: [DE, FR, US], nullable: true}
            email: {type: str, regex: '^[^@]+@[^@]+$', required: false}
            score: float           # shorthand for {type: float}

Column keys: ``type`` (``int``, ``float``, ``str``, ``bool``, ``datetime``, ``category`` or
any pandas dtype name such as ``int32``; the check is exact: ``int`` means ``int64``),
``nullable`` (default false: nulls fail), ``unique``, ``required`` (default true), ``min`` /
``max`` (inclusive), ``allowed`` (list of values) and ``regex`` (strings must match from the
start). Table keys: ``columns``, ``strict`` (other columns are an error), ``coerce``
(convert to the declared types first), ``min_rows`` and ``unique`` (columns whose
combination must be unique). Unknown keys are an error, with a suggestion.

:func:`validate_table` raises :class:`DataValidationError` naming each bad column, the
failed check, how many rows fail and a few of the offending values::

    table 'input' failed validation (6 rows, 2 problems):
      - column 'age': 3 rows outside [0, 120] (e.g. -5, 150, 999)
      - column 'id': 2 rows with duplicate values (e.g. 2)

Python steps declare schemas on their inputs and outputs with :func:`with_schema`, placed
above ``@step``. pandas and pandera are imported only when a table is validated.

>>> TableSchema.from_dict({"columns": {"age": {"type": "int", "min": 0}}}).columns[0]
ColumnSpec(name='age', type='int', nullable=False, unique=False, required=True, min=0, \
max=None, allowed=None, regex=None)
>>> TableSchema.from_dict({"colums": {}})
Traceback (most recent call last):
...
opsloop.learn.validation.SchemaSpecError: schema: unknown key 'colums' (did you mean \
'columns'?); allowed: coerce, columns, min_rows, strict, unique
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from opsloop.learn.pipelines.artifacts import canonical_json
from opsloop.learn.pipelines.executor import current_step, split_outputs
from opsloop.learn.pipelines.parquet import is_dataframe
from opsloop.learn.pipelines.step import SPEC_ATTR, StepDefinitionError, step, step_spec

F = TypeVar("F", bound=Callable[..., Any])

TABLE_KEYS = ("columns", "strict", "coerce", "min_rows", "unique")
COLUMN_KEYS = ("type", "nullable", "unique", "required", "min", "max", "allowed", "regex")
TYPE_ALIASES: dict[str, Any] = {
    "int": "int64",
    "integer": "int64",
    "float": "float64",
    "number": "float64",
    "str": str,
    "string": str,
    "bool": "bool",
    "boolean": "bool",
    "datetime": "datetime64[ns]",
    "category": "category",
}
MAX_EXAMPLES = 3


class SchemaSpecError(ValueError):
    """A schema declaration is malformed (unknown key, wrong value type, unknown type)."""


@dataclass(frozen=True)
class Problem:
    """One failed check: which column, which check, how many rows, a few bad values."""

    column: str | None
    check: str
    rows: int
    examples: tuple[str, ...]
    message: str


class DataValidationError(ValueError):
    """A table does not satisfy its schema; ``problems`` lists every failed check."""

    def __init__(self, table: str, problems: Sequence[Problem], n_rows: int | None = None):
        self.table = table
        self.problems = list(problems)
        self.n_rows = n_rows
        size = f"{n_rows} rows, " if n_rows is not None else ""
        count = len(self.problems)
        head = f"{table} failed validation ({size}{count} problem{'s' if count != 1 else ''}):"
        super().__init__("\n".join([head, *(f"  - {p.message}" for p in self.problems)]))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.table, self.problems, self.n_rows))


def _suggest(key: str, allowed: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_keys(data: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    for key in data:
        if key not in allowed:
            raise SchemaSpecError(
                f"{where}: unknown key {key!r}{_suggest(str(key), allowed)}; "
                f"allowed: {', '.join(sorted(allowed))}"
            )


def _flag(value: Any, key: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise SchemaSpecError(f"{where}: {key!r} must be true or false, got {value!r}")
    return value


def _bound(value: Any, key: str, where: str) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise SchemaSpecError(f"{where}: {key!r} must be a number (or a date string)")
    return value


@dataclass(frozen=True)
class ColumnSpec:
    """The checks on one column (see the module docstring for the meaning of each key)."""

    name: str
    type: str | None = None
    nullable: bool = False
    unique: bool = False
    required: bool = True
    min: Any = None
    max: Any = None
    allowed: tuple[Any, ...] | None = None
    regex: str | None = None

    @classmethod
    def from_value(cls, name: str, value: Any) -> ColumnSpec:
        """From ``{type: int, min: 0, ...}``, a bare type name, or ``None``/``{}``."""
        where = f"schema column {name!r}"
        if value is None:
            return cls(name)
        if isinstance(value, str):
            return cls(name, type=value)
        if not isinstance(value, Mapping):
            raise SchemaSpecError(f"{where}: expected a mapping of checks or a type name")
        _check_keys(value, COLUMN_KEYS, where)
        kind = value.get("type")
        if kind is not None and not isinstance(kind, str):
            raise SchemaSpecError(f"{where}: 'type' must be a type name such as 'int'")
        allowed = value.get("allowed")
        if allowed is not None and (isinstance(allowed, str | bytes) or not _is_seq(allowed)):
            raise SchemaSpecError(f"{where}: 'allowed' must be a list of values")
        regex = value.get("regex")
        if regex is not None and not isinstance(regex, str):
            raise SchemaSpecError(f"{where}: 'regex' must be a string")
        spec = cls(
            name=name,
            type=kind,
            nullable=_flag(value.get("nullable", False), "nullable", where),
            unique=_flag(value.get("unique", False), "unique", where),
            required=_flag(value.get("required", True), "required", where),
            min=_bound(value.get("min"), "min", where),
            max=_bound(value.get("max"), "max", where),
            allowed=tuple(allowed) if allowed is not None else None,
            regex=regex,
        )
        if spec.min is not None and spec.max is not None:
            try:
                inverted = spec.min > spec.max
            except TypeError:
                raise SchemaSpecError(f"{where}: 'min' and 'max' are not comparable") from None
            if inverted:
                raise SchemaSpecError(f"{where}: 'min' ({spec.min}) is above 'max' ({spec.max})")
        return spec

    def to_dict(self) -> dict[str, Any]:
        """Only the keys that differ from the defaults."""
        out: dict[str, Any] = {}
        for key in COLUMN_KEYS:
            value = getattr(self, key)
            if value != _COLUMN_DEFAULTS[key]:
                out[key] = list(value) if isinstance(value, tuple) else value
        return out


_COLUMN_DEFAULTS = {k: getattr(ColumnSpec("_"), k) for k in COLUMN_KEYS}


def _is_seq(value: Any) -> bool:
    return isinstance(value, Sequence | set | frozenset)


@dataclass(frozen=True)
class TableSchema:
    """A declarative table schema; build it with :meth:`from_dict` (YAML) or directly."""

    columns: tuple[ColumnSpec, ...] = ()
    strict: bool = False
    coerce: bool = False
    min_rows: int = 0
    unique: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableSchema:
        """Parse the plain-data form; unknown keys and wrong value types raise."""
        if isinstance(data, TableSchema):
            return data
        if not isinstance(data, Mapping):
            raise SchemaSpecError(
                f"schema: expected a mapping with 'columns', got {type(data).__name__}"
            )
        _check_keys(data, TABLE_KEYS, "schema")
        columns = data.get("columns", {})
        columns = {} if columns is None else columns
        if not isinstance(columns, Mapping):
            raise SchemaSpecError("schema: 'columns' must map column names to their checks")
        min_rows = data.get("min_rows", 0)
        if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 0:
            raise SchemaSpecError(f"schema: 'min_rows' must be an integer >= 0, got {min_rows!r}")
        unique = data.get("unique", ())
        if isinstance(unique, str):
            unique = (unique,)
        if not _is_seq(unique) or not all(isinstance(u, str) for u in unique):
            raise SchemaSpecError("schema: 'unique' must be a list of column names")
        return cls(
            columns=tuple(ColumnSpec.from_value(str(k), v) for k, v in columns.items()),
            strict=_flag(data.get("strict", False), "strict", "schema"),
            coerce=_flag(data.get("coerce", False), "coerce", "schema"),
            min_rows=min_rows,
            unique=tuple(unique),
        )

    def to_dict(self) -> dict[str, Any]:
        """The plain-data form (round-trips through :meth:`from_dict`)."""
        out: dict[str, Any] = {"columns": {c.name: c.to_dict() for c in self.columns}}
        if self.strict:
            out["strict"] = True
        if self.coerce:
            out["coerce"] = True
        if self.min_rows:
            out["min_rows"] = self.min_rows
        if self.unique:
            out["unique"] = list(self.unique)
        return out

    def fingerprint(self) -> str:
        """SHA-256 of the canonical plain-data form (enters cache keys)."""
        return hashlib.sha256(canonical_json(self.to_dict()).encode()).hexdigest()

    def to_pandera(self) -> Any:
        """The equivalent ``pandera.pandas.DataFrameSchema`` (imports pandera)."""
        return _build_pandera(self)


SchemaLike = TableSchema | Mapping[str, Any]


def as_schema(schema: SchemaLike) -> TableSchema:
    """A :class:`TableSchema` from either form."""
    return schema if isinstance(schema, TableSchema) else TableSchema.from_dict(schema)


def _column_checks(col: ColumnSpec) -> list[tuple[Any, str]]:
    """The pandera checks of a column, each with the phrase that reports its failure."""
    import pandera.pandas as pa

    checks: list[tuple[Any, str]] = []
    if col.min is not None and col.max is not None:
        checks.append((pa.Check.in_range(col.min, col.max), f"outside [{col.min}, {col.max}]"))
    elif col.min is not None:
        checks.append((pa.Check.ge(col.min), f"below the minimum {col.min}"))
    elif col.max is not None:
        checks.append((pa.Check.le(col.max), f"above the maximum {col.max}"))
    if col.allowed is not None:
        shown = ", ".join(_fmt(v) for v in col.allowed[:10])
        more = ", ..." if len(col.allowed) > 10 else ""
        checks.append(
            (pa.Check.isin(list(col.allowed)), f"not in the allowed values [{shown}{more}]")
        )
    if col.regex is not None:
        checks.append((pa.Check.str_matches(col.regex), f"not matching the pattern {col.regex!r}"))
    return checks


def _build_pandera(schema: TableSchema) -> Any:
    import pandera.pandas as pa

    columns = {}
    for col in schema.columns:
        dtype = TYPE_ALIASES.get(col.type, col.type) if col.type is not None else None
        try:
            columns[col.name] = pa.Column(
                dtype,
                checks=[c for c, _ in _column_checks(col)],
                nullable=col.nullable,
                unique=col.unique,
                required=col.required,
                coerce=schema.coerce,
            )
        except (TypeError, ValueError) as exc:
            raise SchemaSpecError(f"schema column {col.name!r}: {exc}") from exc
    return pa.DataFrameSchema(
        columns, strict=schema.strict, unique=list(schema.unique) or None, coerce=schema.coerce
    )


def _fmt(value: Any) -> str:
    """A short, readable rendering of one value.

    >>> [_fmt(v) for v in (-5.0, 1.5, "z", None, float("nan"), 7)]
    ['-5', '1.5', "'z'", 'null', 'null', '7']
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return repr(text)
    if hasattr(value, "item") and not isinstance(value, str):  # numpy / pandas scalars
        try:
            return _fmt(value.item())
        except (TypeError, ValueError, AttributeError):
            pass
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _rows(n: int) -> str:
    return f"{n} row{'s' if n != 1 else ''}"


def _problems(schema: TableSchema, df: Any, cases: Any) -> list[Problem]:
    """Group pandera's failure cases per (column, check) into readable problems."""
    import pandas as pd

    phrases = {c.name: [p for _, p in _column_checks(c)] for c in schema.columns}
    declared = {c.name: c for c in schema.columns}
    coerce_failed = set(
        cases.loc[cases["check"].astype(str).str.startswith("coerce_dtype"), "column"]
    )
    groups: dict[tuple[Any, str], list[Any]] = {}
    for row in cases.itertuples(index=False):
        column = None if pd.isna(row.column) else str(row.column)
        check = str(row.check)
        if check.startswith("dtype(") and column in coerce_failed:
            continue  # the coercion failure already says it
        groups.setdefault((column, check), []).append(row)
    problems = []
    for (column, check), rows in groups.items():
        count = sum(1 for r in rows if r.index is not None and not _isnull(r.index))
        values: list[str] = []
        for r in rows:
            text = _fmt(r.failure_case)
            if text not in values:
                values.append(text)
            if len(values) == MAX_EXAMPLES:
                break
        examples = tuple(values)
        eg = f" (e.g. {', '.join(examples)})" if examples else ""
        where = f"column {column!r}"
        if check == "column_in_dataframe":
            column = str(rows[0].failure_case)
            message = f"column {column!r}: required column is missing"
            examples = ()
        elif check == "column_in_schema":
            column = str(rows[0].failure_case)
            message = f"column {column!r}: not in the schema (the schema is strict)"
            examples = ()
        elif check == "not_nullable":
            message = f"{where}: {_rows(count)} null (the column is not nullable)"
            examples = ()
        elif check == "field_uniqueness":
            message = f"{where}: {_rows(count)} with duplicate values{eg}"
        elif check == "multiple_fields_uniqueness":
            cols = ", ".join(repr(c) for c in schema.unique)
            column = None
            message = f"columns [{cols}]: {_rows(count)} with duplicate combinations"
            examples = ()
        elif check.startswith("coerce_dtype("):
            target = declared[column].type if column in declared else check[13:-1]
            message = f"{where}: {_rows(count)} cannot be converted to {target}{eg}"
        elif check.startswith("dtype("):
            expected = declared[column].type if column in declared else check[6:-1]
            actual = str(df[column].dtype) if column in df.columns else "?"
            message = f"{where}: has type {actual}, expected {expected}"
            examples = ()
        else:
            number = rows[0].check_number
            known = phrases.get(column or "", [])
            if number is not None and not _isnull(number) and int(number) < len(known):
                phrase = known[int(number)]
            else:
                phrase = f"failing check {check}"
            message = f"{where}: {_rows(count)} {phrase}{eg}"
        problems.append(Problem(column, check, count, examples, message))
    # dedupe rows counted twice for multi-column uniqueness (pandera reports per column)
    seen: set[str] = set()
    unique_problems = []
    for p in problems:
        if p.message not in seen:
            seen.add(p.message)
            unique_problems.append(p)
    return unique_problems


def _isnull(value: Any) -> bool:
    try:
        return bool(value != value)
    except (TypeError, ValueError):
        return False


def validate_table(df: Any, schema: SchemaLike, *, name: str = "table") -> Any:
    """Check ``df`` against ``schema``; return the (possibly coerced) frame or raise.

    Raises :class:`DataValidationError` listing every failed check (all checks run, not
    just the first), and :class:`SchemaSpecError` if the schema itself is malformed.
    ``name`` labels the table in the report: a bare name is quoted (``table 'people'``),
    a phrase with spaces is used as is (``step 'clean' input 'raw'``).
    """
    parsed = as_schema(schema)
    label = name if name == "table" or " " in name else f"table {name!r}"
    if not is_dataframe(df):
        problem = Problem(
            None, "type", 0, (), f"expected a pandas DataFrame, got {type(df).__name__}"
        )
        raise DataValidationError(label, [problem])
    pandera_schema = parsed.to_pandera()
    import pandera.errors

    problems: list[Problem] = []
    if len(df) < parsed.min_rows:
        problems.append(
            Problem(
                None,
                "min_rows",
                len(df),
                (),
                f"table: {_rows(len(df))}, expected at least {parsed.min_rows}",
            )
        )
    try:
        out = pandera_schema.validate(df, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        problems.extend(_problems(parsed, df, exc.failure_cases))
        out = None
    if problems:
        raise DataValidationError(label, problems, len(df))
    return out


@step(inputs=("table",), outputs=("table",), version="validation-1")
def validate(table: Any, schema: Mapping[str, Any]) -> Any:
    """Pipeline step: pass ``table`` through if it satisfies ``schema``, else fail.

    From YAML: ``uses: opsloop.learn.validation:validate`` with ``inputs: {table: <step>}``
    and ``params: {schema: {...}}``. The output is the validated (coerced, if the schema
    says ``coerce: true``) table; unchanged data keeps its content hash.
    """
    try:
        label = f"step {current_step().step!r} input 'table'"
    except RuntimeError:
        label = "table"
    return validate_table(table, schema, name=label)


def with_schema(
    *,
    inputs: Mapping[str, SchemaLike] | None = None,
    output: SchemaLike | None = None,
    outputs: Mapping[str, SchemaLike] | None = None,
) -> Callable[[F], F]:
    """Validate a step's input tables before it runs and its output tables after.

    Place it above ``@step`` (it reuses the step's options)::

        @with_schema(inputs={"raw": RAW}, output=CLEAN)
        @step
        def clean(raw: pd.DataFrame) -> pd.DataFrame: ...

    ``output`` checks the single output; ``outputs`` checks named outputs of a multi-output
    step. The schemas enter the step's code hash, so changing one re-runs the step.
    """
    in_schemas = {k: as_schema(v) for k, v in (inputs or {}).items()}
    out_schemas = {k: as_schema(v) for k, v in (outputs or {}).items()}
    single = as_schema(output) if output is not None else None

    def decorate(func: F) -> F:
        base = step_spec(func)
        problems = [k for k in in_schemas if k not in base.inputs]
        if problems:
            raise StepDefinitionError(
                f"step {base.name!r}: schemas given for {problems}, which are not inputs "
                f"(inputs: {list(base.inputs)})"
            )
        outs = dict(out_schemas)
        if single is not None:
            if len(base.outputs) != 1:
                raise StepDefinitionError(
                    f"step {base.name!r} has outputs {list(base.outputs)}: use outputs={{...}}"
                )
            outs[base.outputs[0]] = single
        unknown = [k for k in outs if k not in base.outputs]
        if unknown:
            raise StepDefinitionError(
                f"step {base.name!r}: schemas given for {unknown}, which are not outputs "
                f"(outputs: {list(base.outputs)})"
            )
        signature = inspect.signature(base.func)

        @functools.wraps(func)
        def checked(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            for arg, schema in in_schemas.items():
                if arg in bound.arguments:
                    bound.arguments[arg] = validate_table(
                        bound.arguments[arg], schema, name=f"step {base.name!r} input {arg!r}"
                    )
            result = func(*bound.args, **bound.kwargs)
            if outs:
                values = split_outputs(base.name, base.outputs, result)
                for out, schema in outs.items():
                    validate_table(values[out], schema, name=f"step {base.name!r} output {out!r}")
            return result

        digest = hashlib.sha256(base.code_hash.encode())
        for kind, schemas in (("in", in_schemas), ("out", outs)):
            for key in sorted(schemas):
                digest.update(f"\0{kind}:{key}:{schemas[key].fingerprint()}".encode())
        spec = base.with_options(func=checked, code_hash=digest.hexdigest())
        setattr(checked, SPEC_ATTR, spec)
        return checked  # type: ignore[return-value]

    return decorate
