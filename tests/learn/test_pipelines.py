"""Pipelines: DAG validation, caching, retries, timeouts, failures, resume, lineage, tracking."""

from __future__ import annotations

import doctest
import importlib
import logging
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from opsloop.learn import pipelines as pl
from opsloop.learn.pipelines import (
    InMemoryRunStore,
    InMemoryStepCache,
    InMemoryTracker,
    LocalArtifactStore,
    LocalStepCache,
    Pipeline,
    PipelineError,
    Runner,
    RunRecord,
    RunStatus,
    StepDefinitionError,
    StepRecord,
    StepStatus,
    lineage_of,
    log_metric,
    mark_interrupted,
    step,
)

CALLS: list[str] = []


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.clear()


@step(inputs=(), outputs=("rows",))
def load(n: int = 4) -> list[int]:
    CALLS.append("load")
    return list(range(n))


@step
def double(rows: list[int]) -> list[int]:
    CALLS.append("double")
    return [2 * r for r in rows]


@step
def total(rows: list[int], offset: int = 0) -> int:
    CALLS.append("total")
    return sum(rows) + offset


@step
def parity(rows: list[int]) -> list[int]:
    CALLS.append("parity")
    return [r % 2 for r in rows]


@step
def boom(rows: list[int]) -> int:
    CALLS.append("boom")
    raise RuntimeError("boom")


@step(outputs=("train", "test"))
def split(rows: list[int], ratio: float = 0.5) -> dict[str, list[int]]:
    cut = int(len(rows) * ratio)
    return {"train": rows[:cut], "test": rows[cut:]}


def chain() -> Pipeline:
    p = Pipeline("chain")
    p.add(load)
    p.add(double, inputs={"rows": "load.rows"})
    p.add(total, inputs={"rows": "double"})
    return p


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "artifacts")


def statuses(record: RunRecord) -> dict[str, str]:
    return {name: s.status.value for name, s in record.steps.items()}


# -- DAG validation -------------------------------------------------------------------------


def test_cycle_is_reported_with_its_path():
    p = Pipeline("loop")
    p.add(double, name="a", inputs={"rows": "b"})
    p.add(double, name="b", inputs={"rows": "a"})
    with pytest.raises(PipelineError, match=r"cycle between steps: a -> b -> a"):
        p.validate()


def test_missing_and_unknown_inputs_are_all_listed():
    p = Pipeline("broken")
    p.add(load)
    p.add(double)  # input not connected
    p.add(total, inputs={"rows": "lod"})
    p.add(parity, inputs={"rows": "load.nope"})
    with pytest.raises(PipelineError) as info:
        p.validate()
    problems = "\n".join(info.value.problems)
    assert "step 'double': input 'rows' is not connected" in problems
    assert "unknown step 'lod' (did you mean 'load'?)" in problems
    assert "has no output 'nope' (outputs: ['rows'])" in problems
    assert len(info.value.problems) == 3


def test_binding_errors_fail_at_add():
    p = Pipeline("p")
    p.add(load)
    with pytest.raises(PipelineError, match="duplicate step name 'load'"):
        p.add(load)
    with pytest.raises(PipelineError, match="unknown param 'scale'"):
        p.add(total, inputs={"rows": "load"}, params={"scale": 2})
    with pytest.raises(PipelineError, match="'x' is not a declared input"):
        p.add(total, inputs={"x": "load"})
    with pytest.raises(PipelineError, match="it is an input"):
        p.add(total, params={"rows": [1]})


def test_ambiguous_reference_to_multi_output_step():
    p = Pipeline("p")
    p.add(load)
    p.add(split, inputs={"rows": "load"})
    p.add(total, inputs={"rows": "split"})
    with pytest.raises(PipelineError, match=r"has outputs \['train', 'test'\]; name one"):
        p.validate()


def test_step_declaration_errors():
    with pytest.raises(StepDefinitionError, match="not parameters"):

        @step(inputs=("missing",))
        def f(a: int) -> int:
            return a

    with pytest.raises(StepDefinitionError, match="duplicate output"):

        @step(outputs=("a", "a"))
        def g() -> None:
            return None

    with pytest.raises(PipelineError, match="no steps"):
        Pipeline("empty").validate()


def test_run_param_overrides_are_checked(store):
    with pytest.raises(PipelineError, match="step 'total' has no param 'nope'"):
        Runner(store).run(chain(), params={"total": {"nope": 1}})


# -- running, caching ------------------------------------------------------------------------


def test_chain_runs_and_multi_outputs(store):
    p = Pipeline("p")
    p.add(load, params={"n": 6})
    p.add(split, inputs={"rows": "load"}, params={"ratio": 0.5})
    p.add(total, name="train_sum", inputs={"rows": "split.train"})
    p.add(total, name="test_sum", inputs={"rows": "split.test"})
    runner = Runner(store)
    record = runner.run(p)
    assert record.status is RunStatus.SUCCEEDED
    assert runner.output(record, "train_sum") == 0 + 1 + 2
    assert runner.output(record, "test_sum") == 3 + 4 + 5
    assert runner.output(record, "split.test") == [3, 4, 5]


def test_cache_skips_unchanged_steps(store, tmp_path):
    runner = Runner(store, cache=LocalStepCache(tmp_path / "cache"))
    first = runner.run(chain())
    assert set(statuses(first).values()) == {"succeeded"}
    CALLS.clear()
    second = runner.run(chain())
    assert set(statuses(second).values()) == {"cached"}
    assert CALLS == []
    assert second.steps["total"].reused_from == first.id
    assert runner.output(second, "total") == 12


def test_cache_reruns_on_param_and_input_change(store):
    runner = Runner(store, cache=InMemoryStepCache())
    runner.run(chain())
    CALLS.clear()
    record = runner.run(chain(), params={"total": {"offset": 1}})
    assert statuses(record) == {"load": "cached", "double": "cached", "total": "succeeded"}
    assert runner.output(record, "total") == 13
    CALLS.clear()
    record = runner.run(chain(), params={"load": {"n": 5}})
    assert CALLS == ["load", "double", "total"]  # new input contents flow downstream


def test_cache_keys_on_input_content_not_on_upstream_params(store):
    runner = Runner(store, cache=InMemoryStepCache())
    p = Pipeline("p")
    p.add(load)
    p.add(split, inputs={"rows": "load"}, params={"ratio": 0.5})
    p.add(total, inputs={"rows": "split.train"})
    runner.run(p)
    CALLS.clear()
    # ratio 0.6 of 4 rows still cuts at 2: same train rows, so `total` stays cached
    record = runner.run(p, params={"split": {"ratio": 0.6}})
    assert statuses(record) == {"load": "cached", "split": "succeeded", "total": "cached"}


def test_cache_reruns_when_code_changes(store, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    module = tmp_path / "pl_code_change.py"
    source = """
        from opsloop.learn.pipelines import step

        @step(inputs=())
        def make() -> int:
            return {value}
    """
    module.write_text(textwrap.dedent(source.format(value=1)))
    mod = importlib.import_module("pl_code_change")
    runner = Runner(store, cache=InMemoryStepCache())

    def run_once() -> RunRecord:
        p = Pipeline("code")
        p.add(mod.make)
        return runner.run(p)

    assert run_once().steps["make"].status is StepStatus.SUCCEEDED
    assert run_once().steps["make"].status is StepStatus.CACHED
    module.write_text(textwrap.dedent(source.format(value="1 + 100")))
    mod = importlib.reload(mod)
    record = run_once()
    assert record.steps["make"].status is StepStatus.SUCCEEDED
    assert runner.output(record, "make") == 101
    sys.modules.pop("pl_code_change", None)


def test_uncached_step_always_reruns(store):
    runner = Runner(store, cache=InMemoryStepCache())
    p = Pipeline("p")
    p.add(load, cache=False)
    runner.run(p)
    assert runner.run(p).steps["load"].status is StepStatus.SUCCEEDED


# -- retries, timeouts, failures ---------------------------------------------------------------


class Flaky:
    def __init__(self, failures: int):
        self.failures = failures
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(f"attempt {self.calls} failed")
        return self.calls


def test_retries_with_exponential_backoff(store):
    flaky = Flaky(failures=2)

    def fetch() -> int:
        return flaky()

    p = Pipeline("p")
    p.add(step(retries=3, backoff=0.01, backoff_factor=2)(fetch))
    record = Runner(store).run(p)
    rec = record.steps["fetch"]
    assert rec.status is StepStatus.SUCCEEDED
    assert [a.retry_in for a in rec.attempts] == [0.01, 0.02, None]
    assert "ConnectionError: attempt 1 failed" in (rec.attempts[0].error or "")
    assert Runner(store).output(record, "fetch") == 3


def test_retries_exhausted_and_non_retryable_errors(store):
    always = Flaky(failures=99)
    wrong = Flaky(failures=99)

    def unreachable() -> int:
        return always()

    def picky() -> int:
        return wrong()

    p = Pipeline("p")
    p.add(step(retries=2, backoff=0.001)(unreachable))
    p.add(step(retries=5, backoff=0.001, retry_on=(ValueError,))(picky))
    record = Runner(store).run(p)
    assert record.status is RunStatus.FAILED
    assert len(record.steps["unreachable"].attempts) == 3
    assert len(record.steps["picky"].attempts) == 1
    assert record.steps["picky"].error == "ConnectionError: attempt 1 failed"


def test_hanging_step_times_out(store):
    release = threading.Event()

    def hang() -> int:
        release.wait(10)
        return 1

    p = Pipeline("p")
    p.add(step(timeout=0.2, retries=1, backoff=0.01)(hang))
    p.add(load)
    started = time.monotonic()
    try:
        record = Runner(store).run(p)
    finally:
        release.set()
    assert time.monotonic() - started < 2
    rec = record.steps["hang"]
    assert rec.status is StepStatus.FAILED
    assert [a.timed_out for a in rec.attempts] == [True, True]
    assert "exceeded its 0.2s timeout" in (rec.error or "")
    assert record.steps["load"].status is StepStatus.SUCCEEDED


def test_failed_branch_keeps_other_branch_outputs(store):
    p = Pipeline("branches")
    p.add(load)
    p.add(double, inputs={"rows": "load"})
    p.add(total, inputs={"rows": "double"})
    p.add(boom, inputs={"rows": "load"})
    p.add(parity, inputs={"rows": "boom"})  # type mismatch irrelevant: never runs
    runner = Runner(store)
    record = runner.run(p)
    assert record.status is RunStatus.FAILED
    assert statuses(record) == {
        "load": "succeeded",
        "double": "succeeded",
        "total": "succeeded",
        "boom": "failed",
        "parity": "upstream_failed",
    }
    assert runner.output(record, "total") == 12
    assert record.steps["parity"].error == "upstream step 'boom' failed"
    assert "RuntimeError: boom" in "\n".join(record.steps["boom"].logs)
    assert "parity" not in CALLS
    stored = runner.runs.get(record.id)
    assert stored is not None and stored.steps["total"].outputs


# -- resume, interruption -------------------------------------------------------------------------

FIXED = {"ok": False}


@step
def fragile(rows: list[int]) -> int:
    CALLS.append("fragile")
    if not FIXED["ok"]:
        raise RuntimeError("not yet")
    return len(rows)


def test_resume_reuses_finished_steps(store):
    FIXED["ok"] = False
    p = Pipeline("resumable")
    p.add(load)
    p.add(double, inputs={"rows": "load"})
    p.add(fragile, inputs={"rows": "double"})
    runner = Runner(store)  # no cache: reuse comes from the resumed run only
    first = runner.run(p)
    assert first.status is RunStatus.FAILED
    FIXED["ok"] = True
    CALLS.clear()
    second = runner.run(p, resume_from=first.id)
    assert second.status is RunStatus.SUCCEEDED
    assert CALLS == ["fragile"]
    assert statuses(second) == {"load": "resumed", "double": "resumed", "fragile": "succeeded"}
    assert second.steps["double"].reused_from == first.id
    assert second.resume_from == first.id
    # a changed param is not silently reused on resume
    third = runner.run(p, resume_from=second.id, params={"load": {"n": 2}})
    assert statuses(third)["load"] == "succeeded"
    with pytest.raises(pl.ResumeError, match="no run 'nope'"):
        runner.run(p, resume_from="nope")


def test_mark_interrupted_and_resume_after_crash(store):
    runs = InMemoryRunStore()
    runner = Runner(store, runs=runs)
    done = runner.run(chain())
    # simulate a process that died while `total` was running
    crashed = done.model_copy(deep=True)
    crashed.id, crashed.status = "crashed", RunStatus.RUNNING
    crashed.steps["total"] = StepRecord(name="total", status=StepStatus.RUNNING)
    runs.save(crashed)
    assert mark_interrupted(runs) == ["crashed"]
    after = runs.get("crashed")
    assert after is not None and after.status is RunStatus.INTERRUPTED
    assert after.steps["total"].status is StepStatus.INTERRUPTED
    assert mark_interrupted(runs) == []
    CALLS.clear()
    resumed = runner.run(chain(), resume_from="crashed")
    assert CALLS == ["total"]
    assert resumed.status is RunStatus.SUCCEEDED


def test_interrupting_the_runner_records_interrupted(store):
    class Interrupting(InMemoryTracker):
        def start_step(self, run_id, name, params):
            raise KeyboardInterrupt

    runs = InMemoryRunStore()
    with pytest.raises(KeyboardInterrupt):
        Runner(store, runs=runs, tracker=Interrupting()).run(chain(), run_id="r1")
    record = runs.get("r1")
    assert record is not None and record.status is RunStatus.INTERRUPTED
    assert record.steps["load"].status is StepStatus.INTERRUPTED


# -- lineage, logs, tracking ---------------------------------------------------------------------


def test_lineage_links_outputs_to_inputs_params_and_code(store):
    runs = InMemoryRunStore()
    runner = Runner(store, runs=runs, cache=InMemoryStepCache())
    record = runner.run(chain(), params={"total": {"offset": 3}})
    by_step = {entry.step: entry for entry in record.lineage}
    assert set(by_step) == {"load", "double", "total"}
    total_entry = by_step["total"]
    assert total_entry.params == {"offset": 3}
    assert total_entry.code_hash == pl.step_spec(total).code_hash
    assert total_entry.inputs["rows"] == by_step["double"].artifact
    assert by_step["double"].inputs["rows"] == record.steps["load"].outputs["rows"]
    again = runner.run(chain(), params={"total": {"offset": 3}})
    found = lineage_of(runs, total_entry.artifact.content_hash)
    assert [(e.run_id, e.produced_in_run) for e in found] == [
        (record.id, record.id),
        (again.id, record.id),
    ]


@step
def chatty(rows: list[int]) -> int:
    logger = logging.getLogger("tests.pipelines.chatty")
    for i in range(50):
        logger.warning("line %d of step output", i)
    log_metric("rows", len(rows))
    return 0


def test_step_logs_are_captured_and_capped(store):
    p = Pipeline("p")
    p.add(load)
    p.add(chatty, inputs={"rows": "load"})
    record = Runner(store, log_limit=1000).run(p)
    logs = record.steps["chatty"].logs
    assert logs[0] == "--- attempt 1 ---"
    assert "line 0 of step output" in logs[1]
    assert logs[-1].endswith("log records dropped: over 1000 bytes]")
    assert sum(len(line) for line in logs[1:-1]) <= 1000
    assert record.steps["chatty"].metrics == {"rows": 4.0}
    assert record.steps["load"].logs == ["--- attempt 1 ---"]


def test_tracker_gets_parent_run_and_child_per_step(store):
    tracker = InMemoryTracker()
    p = Pipeline("tracked")
    p.add(load)
    p.add(chatty, inputs={"rows": "load"})
    p.add(boom, inputs={"rows": "load"})
    Runner(store, tracker=tracker, cache=InMemoryStepCache()).run(p)
    (parent,) = tracker.roots()
    assert parent.name == "tracked" and parent.status == "failed"
    assert parent.params == {"load.n": 4}
    children = {tracker.runs[c].name: tracker.runs[c] for c in parent.children}
    assert {n: c.status for n, c in children.items()} == {
        "load": "succeeded",
        "chatty": "succeeded",
        "boom": "failed",
    }
    assert children["chatty"].metrics == {"rows": 4.0}
    assert children["load"].artifacts["rows"].startswith("file://")
    assert children["load"].params == {"n": 4}


def test_tracker_errors_do_not_fail_the_run(store):
    class Broken(InMemoryTracker):
        def log_artifact(self, run_id, name, uri):
            raise ConnectionError("tracking server down")

    assert Runner(store, tracker=Broken()).run(chain()).status is RunStatus.SUCCEEDED


# -- artifacts --------------------------------------------------------------------------------


def test_artifact_store_codecs(store):
    import numpy as np

    blob = store.put(b"\x00model")
    arr = store.put(np.arange(3, dtype=np.int64))
    assert (blob.codec, store.get(blob)) == ("bytes", b"\x00model")
    assert arr.codec == "npy" and store.get(arr).tolist() == [0, 1, 2]
    with pytest.raises(pl.ArtifactError, match="no codec can store a object"):
        store.put(object())


# -- YAML ----------------------------------------------------------------------------------


STEPS_MODULE = """
from opsloop.learn.pipelines import step

@step(inputs=(), outputs=("rows",))
def numbers(n: int = 3) -> list[int]:
    return list(range(1, n + 1))

@step
def product(rows: list[int]) -> int:
    out = 1
    for r in rows:
        out *= r
    return out
"""


@pytest.fixture
def steps_module(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "pl_yaml_steps.py").write_text(STEPS_MODULE)
    yield "pl_yaml_steps"
    sys.modules.pop("pl_yaml_steps", None)


def test_yaml_spec_loads_and_runs(store, tmp_path, steps_module):
    spec = tmp_path / "pipeline.yaml"
    spec.write_text(
        textwrap.dedent(f"""
        name: from-yaml
        steps:
          - uses: {steps_module}:numbers
            params: {{n: 5}}
          - name: prod
            uses: {steps_module}:product
            inputs: {{rows: numbers.rows}}
            retries: 2
            backoff: 0.5
            timeout: 30
            cache: false
        """)
    )
    pipeline = pl.load_pipeline(spec)
    node = pipeline.nodes["prod"]
    assert (node.spec.retry.retries, node.spec.retry.backoff) == (2, 0.5)
    assert (node.spec.timeout, node.spec.cache, node.line) == (30, False, 6)
    runner = Runner(store)
    record = runner.run(pipeline)
    assert runner.output(record, "prod") == 120


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("  - uses: nosuchmodule_xyz:f\n", "line 3: cannot import module 'nosuchmodule_xyz'"),
        ("  - uses: {mod}:missing\n", "line 3: module 'pl_yaml_steps' has no attribute 'missing'"),
        ("  - uses: {mod}\n", "is not of the form 'module:function'"),
        ("  - uses: {mod}:numbers\n    colour: red\n", r"line 3: unknown keys \['colour'\]"),
        (
            "  - uses: {mod}:numbers\n  - uses: {mod}:product\n    inputs: {{rows: nums}}\n",
            r"unknown step 'nums' \(did you mean 'numbers'\?\)",
        ),
        ("  - {{uses: {mod}:numbers, params: {{n: 1, m: 2}}}}\n", "unknown param 'm'"),
    ],
)
def test_yaml_spec_errors(steps_module, body, message):
    text = "name: bad\nsteps:\n" + body.format(mod=steps_module)
    with pytest.raises(pl.SpecError, match=message):
        pl.load_pipeline(text)


def test_yaml_spec_cycle_reports_lines(steps_module):
    text = (
        "name: loop\nsteps:\n"
        f"  - {{name: a, uses: '{steps_module}:product', inputs: {{rows: b}}}}\n"
        f"  - {{name: b, uses: '{steps_module}:product', inputs: {{rows: a}}}}\n"
    )
    with pytest.raises(pl.SpecError, match="cycle between steps: a -> b -> a"):
        pl.load_pipeline(text)


# -- executors ------------------------------------------------------------------------------


def test_process_pool_executor_shares_nothing_in_memory(store, steps_module):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    mod = importlib.import_module(steps_module)
    p = Pipeline("procs")
    p.add(mod.numbers, params={"n": 4})
    p.add(mod.product, inputs={"rows": "numbers"})
    pool = ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("fork"))
    executor = pl.PoolExecutor(pool)
    try:
        runner = Runner(store, executor=executor)
        record = runner.run(p)
    finally:
        executor.shutdown()
    assert record.status is RunStatus.SUCCEEDED, record.steps
    assert runner.output(record, "product") == 24


def test_doctests():
    modules = [
        "artifacts",
        "cache",
        "executor",
        "pipeline",
        "records",
        "step",
        "tracking",
        "yaml_spec",
    ]
    for name in [pl, *(importlib.import_module(f"opsloop.learn.pipelines.{m}") for m in modules)]:
        result = doctest.testmod(name)
        assert result.failed == 0, name
