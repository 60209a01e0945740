"""Data validation: declarative schemas, readable failure reports, the validate step."""

from __future__ import annotations

import doctest
import pickle
import textwrap

import numpy as np
import pandas as pd
import pytest

from opsloop.learn import validation
from opsloop.learn.pipelines import (
    LocalArtifactStore,
    LocalStepCache,
    Pipeline,
    Runner,
    StepDefinitionError,
    StepStatus,
    load_pipeline,
    step,
    step_spec,
)
from opsloop.learn.validation import (
    DataValidationError,
    SchemaSpecError,
    TableSchema,
    validate,
    validate_table,
    with_schema,
)

PEOPLE_SCHEMA = {
    "min_rows": 3,
    "columns": {
        "id": {"type": "int", "unique": True},
        "age": {"type": "float", "min": 0, "max": 120},
        "country": {"type": "str", "allowed": ["DE", "FR", "US"], "nullable": True},
        "email": {"type": "str", "regex": r"^[^@]+@[^@]+$", "required": False},
        "score": "float",
    },
}


def people(**changes) -> pd.DataFrame:
    data = {
        "id": [1, 2, 3, 4, 5, 6],
        "age": [31.0, 45.0, 27.0, 60.0, 19.0, 88.0],
        "country": ["DE", "FR", None, "US", "DE", "FR"],
        "email": ["a@x.io", "b@x.io", "c@x.io", "d@x.io", "e@x.io", "f@x.io"],
        "score": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
    }
    data.update(changes)
    return pd.DataFrame(data)


def problems(df: pd.DataFrame, schema=PEOPLE_SCHEMA) -> list[str]:
    with pytest.raises(DataValidationError) as info:
        validate_table(df, schema, name="people")
    return [p.message for p in info.value.problems]


# -- schema declarations ---------------------------------------------------------------------


def test_schema_parses_round_trips_and_fingerprints():
    schema = TableSchema.from_dict(PEOPLE_SCHEMA)
    assert [c.name for c in schema.columns] == ["id", "age", "country", "email", "score"]
    assert schema.columns[4].type == "float" and schema.columns[4].nullable is False
    again = TableSchema.from_dict(schema.to_dict())
    assert again == schema and again.fingerprint() == schema.fingerprint()
    changed = dict(PEOPLE_SCHEMA, min_rows=4)
    assert TableSchema.from_dict(changed).fingerprint() != schema.fingerprint()


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"colums": {}}, r"schema: unknown key 'colums' \(did you mean 'columns'\?\)"),
        ({"columns": {"age": {"maximum": 3}}}, r"column 'age': unknown key 'maximum'.*'max'"),
        ({"columns": {"age": {"nullable": "no"}}}, "'nullable' must be true or false"),
        ({"columns": {"age": {"min": 5, "max": 1}}}, r"'min' \(5\) is above 'max' \(1\)"),
        ({"columns": {"age": {"allowed": "DE"}}}, "'allowed' must be a list"),
        ({"columns": {"age": {"type": "integr"}}}, "column 'age': data type 'integr' not"),
        ({"columns": ["age"]}, "'columns' must map column names"),
        ({"min_rows": -1}, "'min_rows' must be an integer >= 0"),
        ("age: int", "expected a mapping with 'columns'"),
    ],
)
def test_malformed_schemas_are_named(schema, message):
    with pytest.raises(SchemaSpecError, match=message):
        validate_table(people(), schema)


# -- reports ---------------------------------------------------------------------------------


def test_valid_table_passes_through_unchanged():
    df = people()
    out = validate_table(df, PEOPLE_SCHEMA)
    pd.testing.assert_frame_equal(out, df)


def test_range_report_names_column_count_and_examples():
    df = people(age=[31.0, -5.0, 150.0, 999.0, 19.0, 88.0])
    assert problems(df) == ["column 'age': 3 rows outside [0, 120] (e.g. -5, 150, 999)"]


def test_every_failed_check_is_reported_at_once():
    df = people(
        id=[1, 2, 2, 4, 5, 6],
        age=[31.0, np.nan, 27.0, 60.0, 19.0, 121.0],
        country=["DE", "XX", None, "US", "YY", "XX"],
        email=["a@x.io", "nope", "c@x.io", "d@x.io", "e@x.io", "f@x.io"],
    ).drop(columns=["score"])
    found = problems(df)
    assert sorted(found) == sorted(
        [
            "column 'score': required column is missing",
            "column 'id': 2 rows with duplicate values (e.g. 2)",
            "column 'age': 1 row null (the column is not nullable)",
            "column 'age': 1 row outside [0, 120] (e.g. 121)",
            "column 'country': 3 rows not in the allowed values ['DE', 'FR', 'US'] "
            "(e.g. 'XX', 'YY')",
            "column 'email': 1 row not matching the pattern '^[^@]+@[^@]+$' (e.g. 'nope')",
        ]
    )


def test_type_rows_strictness_and_combined_uniqueness():
    schema = {
        "strict": True,
        "min_rows": 10,
        "unique": ["a", "b"],
        "columns": {"a": "int", "b": "str"},
    }
    df = pd.DataFrame({"a": [1.5, 1.5, 2.0], "b": ["x", "x", "y"], "extra": [0, 0, 0]})
    found = problems(df, schema)
    assert "table: 3 rows, expected at least 10" in found
    assert "column 'a': has type float64, expected int" in found
    assert "column 'extra': not in the schema (the schema is strict)" in found
    assert "columns ['a', 'b']: 2 rows with duplicate combinations" in found


def test_coercion_converts_or_reports_what_cannot_be_converted():
    schema = {"coerce": True, "columns": {"n": "int"}}
    out = validate_table(pd.DataFrame({"n": ["1", "2", "3"]}), schema)
    assert out["n"].dtype == np.int64 and out["n"].tolist() == [1, 2, 3]
    found = problems(pd.DataFrame({"n": ["1", "two", "3"]}), schema)
    assert found == ["column 'n': 1 row cannot be converted to int (e.g. 'two')"]


def test_error_is_a_readable_picklable_value_error():
    with pytest.raises(ValueError) as info:
        validate_table(people(age=[-1.0] * 6), PEOPLE_SCHEMA, name="people")
    err = info.value
    assert isinstance(err, DataValidationError)
    assert str(err).splitlines() == [
        "table 'people' failed validation (6 rows, 1 problem):",
        "  - column 'age': 6 rows outside [0, 120] (e.g. -1)",
    ]
    problem = err.problems[0]
    assert (problem.column, problem.rows, problem.examples) == ("age", 6, ("-1",))
    copy = pickle.loads(pickle.dumps(err))
    assert str(copy) == str(err) and copy.problems == err.problems


def test_non_tables_are_rejected():
    with pytest.raises(DataValidationError, match="expected a pandas DataFrame, got list"):
        validate_table([1, 2], PEOPLE_SCHEMA)


# -- the validate step -----------------------------------------------------------------------


@step(inputs=(), outputs=("table",))
def people_table(bad_age: bool = False) -> pd.DataFrame:
    return people(age=[31.0, -3.0, 27.0, 60.0, 19.0, 200.0]) if bad_age else people()


@step
def count_rows(table: pd.DataFrame) -> int:
    return len(table)


def validation_pipeline(schema=PEOPLE_SCHEMA) -> Pipeline:
    p = Pipeline("checked")
    p.add(people_table)
    p.add(validate, inputs={"table": "people_table"}, params={"schema": schema})
    p.add(count_rows, inputs={"table": "validate"})
    return p


@pytest.fixture
def runner(tmp_path):
    return Runner(LocalArtifactStore(tmp_path / "a"), cache=LocalStepCache(tmp_path / "c"))


def test_validate_step_passes_data_through_with_the_same_hash(runner):
    record = runner.run(validation_pipeline())
    assert record.status.value == "succeeded"
    steps = record.steps
    assert steps["validate"].outputs["table"] == steps["people_table"].outputs["table"]
    assert runner.output(record, "count_rows") == 6
    # a new schema re-runs validation only: its output is unchanged, so downstream is cached
    looser = dict(PEOPLE_SCHEMA, min_rows=1)
    again = runner.run(validation_pipeline(looser))
    assert again.steps["validate"].status is StepStatus.SUCCEEDED
    assert again.steps["count_rows"].status is StepStatus.CACHED


def test_validate_step_failure_names_the_column_and_stops_downstream(runner):
    record = runner.run(validation_pipeline(), params={"people_table": {"bad_age": True}})
    assert record.status.value == "failed"
    failed = record.steps["validate"]
    assert failed.status is StepStatus.FAILED
    assert "DataValidationError: step 'validate' input 'table' failed validation" in failed.error
    assert "column 'age': 2 rows outside [0, 120] (e.g. -3, 200)" in failed.error
    assert record.steps["count_rows"].status is StepStatus.UPSTREAM_FAILED


def test_validate_step_from_yaml(runner):
    text = textwrap.dedent(
        f"""
        name: yaml-checked
        steps:
          - uses: {__name__}:people_table
            params: {{bad_age: true}}
          - uses: opsloop.learn.validation:validate
            inputs: {{table: people_table}}
            params:
              schema:
                columns:
                  age: {{type: float, max: 100}}
                  id: {{type: int, unique: true}}
        """
    )
    record = runner.run(load_pipeline(text))
    assert "column 'age': 1 row above the maximum 100 (e.g. 200)" in record.steps["validate"].error
    bad = text.replace("max: 100", "maxx: 100")
    record = runner.run(load_pipeline(bad))
    assert "unknown key 'maxx' (did you mean 'max'?)" in record.steps["validate"].error


# -- schemas on Python steps -----------------------------------------------------------------

CLEAN = {"columns": {"age": {"type": "float", "min": 0}, "band": {"allowed": ["young", "old"]}}}


@with_schema(inputs={"raw": {"columns": {"age": {"type": "float", "max": 120}}}}, output=CLEAN)
@step
def add_band(raw: pd.DataFrame, threshold: float = 50.0, label: str = "old") -> pd.DataFrame:
    return raw.assign(band=np.where(raw["age"] >= threshold, label, "young"))


def test_with_schema_checks_inputs_and_outputs(runner):
    assert step_spec(add_band).params == ("threshold", "label")
    out = add_band(people())  # still a plain, callable function
    assert set(out["band"]) == {"young", "old"}
    with pytest.raises(DataValidationError, match=r"step 'add_band' input 'raw'.*\n.*'age'"):
        add_band(people(age=[31.0, 45.0, 27.0, 60.0, 19.0, 130.0]))
    with pytest.raises(DataValidationError, match=r"output 'output'.*\n.*column 'band': 2 rows"):
        add_band(people(), label="senior")

    p = Pipeline("banded")
    p.add(people_table)
    p.add(add_band, inputs={"raw": "people_table"}, params={"label": "senior"})
    record = runner.run(p)
    assert "column 'band': 2 rows not in the allowed values" in record.steps["add_band"].error


def test_with_schema_enters_the_code_hash_and_checks_names():
    base = step(lambda raw: raw, name="ident")
    one = with_schema(inputs={"raw": {"columns": {"a": "int"}}})(base)
    two = with_schema(inputs={"raw": {"columns": {"a": "float"}}})(base)
    hashes = {step_spec(f).code_hash for f in (base, one, two)}
    assert len(hashes) == 3
    with pytest.raises(StepDefinitionError, match=r"\['rwa'\], which are not inputs"):
        with_schema(inputs={"rwa": CLEAN})(base)
    with pytest.raises(StepDefinitionError, match="not outputs"):
        with_schema(outputs={"nope": CLEAN})(base)
    with pytest.raises(SchemaSpecError, match="unknown key"):
        with_schema(output={"colums": {}})


def test_doctests():
    assert doctest.testmod(validation).failed == 0


def test_several_checks_on_one_column_are_told_apart():
    schema = {"columns": {"n": {"type": "int", "min": 5, "allowed": [1, 50, 60]}}}
    found = problems(pd.DataFrame({"n": [1, 50, 7, 60]}), schema)
    assert found == [
        "column 'n': 1 row below the minimum 5 (e.g. 1)",
        "column 'n': 1 row not in the allowed values [1, 50, 60] (e.g. 7)",
    ]
    with pytest.raises(DataValidationError, match=r"1 row above the maximum 10 \(e.g. 50\)"):
        validate_table(pd.DataFrame({"n": [1, 50]}), {"columns": {"n": {"max": 10}}})
    with pytest.raises(SchemaSpecError, match="'regex' must be a string"):
        validate_table(pd.DataFrame({"n": [1]}), {"columns": {"n": {"regex": 5}}})
