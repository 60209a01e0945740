"""Running a pipeline: scheduling, caching, retries, timeouts, resume and lineage.

The runner owns no data: steps exchange artifacts through the :class:`ArtifactStore`,
attempts execute on an :class:`Executor`, the run's record goes to a :class:`RunStore`
after every state change, and params/metrics/artifacts go to a :class:`RunTracker`.

For each step, once all its upstream steps have finished:

1. its cache key is computed from its code hash, params and input content hashes;
2. if the run named in ``resume_from`` finished that step with the same key, its outputs
   are reused (``resumed``); else if the cache has the key, they are reused (``cached``);
3. otherwise it is submitted; a failed or timed-out attempt is retried after a backoff
   delay while its :class:`RetryPolicy` allows; the final failure marks every dependent
   ``upstream_failed`` while independent branches keep running.

Scheduling happens on the calling thread; only step attempts run elsewhere.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import Any

from opsloop.learn.pipelines.artifacts import ArtifactRef, ArtifactStore
from opsloop.learn.pipelines.cache import CacheEntry, CacheKeyError, StepCache, cache_key
from opsloop.learn.pipelines.executor import (
    DEFAULT_LOG_LIMIT,
    Executor,
    StepTask,
    TaskResult,
    ThreadExecutor,
    run_task,
)
from opsloop.learn.pipelines.pipeline import Pipeline, PipelineError
from opsloop.learn.pipelines.records import (
    AttemptRecord,
    InMemoryRunStore,
    LineageRecord,
    RunRecord,
    RunStatus,
    RunStore,
    StepRecord,
    StepStatus,
    utcnow,
)
from opsloop.learn.pipelines.tracking import NullTracker, RunTracker

log = logging.getLogger(__name__)


class ResumeError(ValueError):
    """``resume_from`` names a run that does not exist or ran another pipeline."""


@dataclass
class _Attempt:
    step: str
    number: int
    deadline: float | None


class Runner:
    """Runs pipelines; reusable and safe to share between threads (state is per run)."""

    def __init__(
        self,
        artifacts: ArtifactStore,
        *,
        runs: RunStore | None = None,
        cache: StepCache | None = None,
        tracker: RunTracker | None = None,
        executor: Executor | None = None,
        max_parallel: int = 4,
        log_limit: int = DEFAULT_LOG_LIMIT,
        clock: Callable[[], float] = time.monotonic,
    ):
        if max_parallel < 1:
            raise ValueError("max_parallel must be >= 1")
        self.artifacts = artifacts
        self.runs: RunStore = runs if runs is not None else InMemoryRunStore()
        self.cache = cache
        self.tracker: RunTracker = tracker if tracker is not None else NullTracker()
        self.executor: Executor = executor if executor is not None else ThreadExecutor()
        self.max_parallel = max_parallel
        self.log_limit = log_limit
        self.clock = clock

    def run(
        self,
        pipeline: Pipeline,
        *,
        params: Mapping[str, Mapping[str, Any]] | None = None,
        resume_from: str | None = None,
        run_id: str | None = None,
        trigger: str = "manual",
    ) -> RunRecord:
        """Run ``pipeline`` to completion and return its final record.

        ``params`` overrides step params per step: ``{"train": {"lr": 0.1}}``. A run
        whose steps failed is returned with status ``failed`` (it does not raise); invalid
        pipelines, params or ``resume_from`` raise before anything runs. If the calling
        thread is interrupted (e.g. ``KeyboardInterrupt``), the record is saved as
        ``interrupted`` and the exception propagates.
        """
        order = pipeline.order()
        overrides = {k: dict(v) for k, v in (params or {}).items()}
        check_overrides(pipeline, overrides)
        previous = None
        if resume_from is not None:
            previous = self.runs.get(resume_from)
            if previous is None:
                raise ResumeError(f"cannot resume: no run {resume_from!r}")
            if previous.pipeline != pipeline.name:
                raise ResumeError(
                    f"cannot resume: run {resume_from!r} ran pipeline {previous.pipeline!r}, "
                    f"not {pipeline.name!r}"
                )
        run = _Run(self, pipeline, order, overrides, previous, run_id)
        run.record.trigger = trigger
        return run.execute()

    def output(self, record: RunRecord, ref: str) -> Any:
        """Load an output of a finished run: ``runner.output(record, "train.model")``."""
        step, _, name = ref.partition(".")
        outputs = record.steps[step].outputs
        if not name:
            if len(outputs) != 1:
                raise KeyError(f"step {step!r} has outputs {sorted(outputs)}; name one")
            name = next(iter(outputs))
        return self.artifacts.get(outputs[name])


def check_overrides(pipeline: Pipeline, overrides: Mapping[str, Mapping[str, Any]]) -> None:
    problems = []
    for step, values in overrides.items():
        node = pipeline.nodes.get(step)
        if node is None:
            problems.append(f"params given for unknown step {step!r}")
            continue
        for key in values:
            if key not in node.spec.params and not node.spec.accepts_kwargs:
                problems.append(f"step {step!r} has no param {key!r}")
    if problems:
        raise PipelineError(pipeline.name, problems)


class _Run:
    """State of one run; every method runs on the scheduling thread."""

    def __init__(
        self,
        runner: Runner,
        pipeline: Pipeline,
        order: list[str],
        overrides: dict[str, dict[str, Any]],
        previous: RunRecord | None,
        run_id: str | None,
    ):
        self.r = runner
        self.pipeline = pipeline
        self.order = order
        self.previous = previous
        self.record = RunRecord(
            id=run_id or uuid.uuid4().hex,
            pipeline=pipeline.name,
            params=overrides,
            resume_from=previous.id if previous else None,
        )
        for name in order:
            node = pipeline.nodes[name]
            self.record.steps[name] = StepRecord(
                name=name,
                code_hash=node.spec.code_hash,
                params=node.resolved_params(overrides.get(name)),
            )
        self.waiting = set(order)
        self.ready: deque[tuple[str, int]] = deque()
        self.delayed: list[tuple[float, int, str, int]] = []
        self.running: dict[Future[Any], _Attempt] = {}
        self.tracker_ids: dict[str, str | None] = {}
        self.tracker_run: str | None = None
        self._seq = itertools.count()

    # -- tracker calls never fail a run ---------------------------------------------------
    def _track(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self.r.tracker, method)(*args)
        except Exception:
            log.warning("run tracker %s failed", method, exc_info=True)
            return None

    def save(self) -> None:
        self.r.runs.save(self.record)

    # -- main loop --------------------------------------------------------------------------
    def execute(self) -> RunRecord:
        rec = self.record
        rec.status, rec.started_at = RunStatus.RUNNING, utcnow()
        self.save()
        flat = {f"{s.name}.{k}": v for s in rec.steps.values() for k, v in s.params.items()}
        self.tracker_run = self._track("start_run", self.pipeline.name, flat)
        if self.tracker_run is not None and self.tracker_run != "null":
            rec.tracker_run_id = self.tracker_run
            self.save()
        try:
            for name in self.order:
                if not self.pipeline.nodes[name].upstream:
                    self._schedule(name)
            self._loop()
        except BaseException as exc:
            self._interrupt(exc)
            raise
        failed = [s.name for s in rec.steps.values() if not s.status.finished_ok]
        rec.status = RunStatus.FAILED if failed else RunStatus.SUCCEEDED
        if failed:
            rec.error = "steps not finished: " + ", ".join(failed)
        rec.finished_at = utcnow()
        self.save()
        if self.tracker_run is not None:
            self._track("end_run", self.tracker_run, rec.status.value)
        return rec

    def _interrupt(self, exc: BaseException) -> None:
        rec = self.record
        rec.status, rec.finished_at = RunStatus.INTERRUPTED, utcnow()
        rec.error = f"interrupted: {type(exc).__name__}: {exc}"
        for step in rec.steps.values():
            if step.status in (StepStatus.PENDING, StepStatus.RUNNING):
                step.status = StepStatus.INTERRUPTED
                step.finished_at = step.finished_at or rec.finished_at
        self.save()
        for future in self.running:
            future.cancel()
        if self.tracker_run is not None:
            self._track("end_run", self.tracker_run, rec.status.value)

    def _loop(self) -> None:
        clock = self.r.clock
        while self.ready or self.running or self.delayed:
            now = clock()
            while self.delayed and self.delayed[0][0] <= now:
                _, _, name, number = heapq.heappop(self.delayed)
                self.ready.append((name, number))
            while self.ready and len(self.running) < self.r.max_parallel:
                self._start(*self.ready.popleft())
            wakeups = [a.deadline for a in self.running.values() if a.deadline is not None]
            if self.delayed:
                wakeups.append(self.delayed[0][0])
            timeout = max(0.0, min(wakeups) - clock()) if wakeups else None
            if not self.running:
                if timeout is not None:
                    time.sleep(timeout)
                continue
            done, _ = wait(list(self.running), timeout=timeout, return_when=FIRST_COMPLETED)
            for future in done:
                attempt = self.running.pop(future)
                try:
                    result = future.result()
                except BaseException as exc:  # the executor itself failed
                    result = TaskResult(error=f"{type(exc).__name__}: {exc}", exception=exc)
                self._finish(attempt, result)
            now = clock()
            for future, attempt in list(self.running.items()):
                if attempt.deadline is not None and now >= attempt.deadline:
                    del self.running[future]
                    future.cancel()  # a thread cannot be stopped: its result is ignored
                    timeout_s = self.pipeline.nodes[attempt.step].spec.timeout
                    error = TimeoutError(f"step {attempt.step!r} exceeded its {timeout_s}s timeout")
                    self._finish(
                        attempt, TaskResult(error=f"TimeoutError: {error}", exception=error), True
                    )

    # -- step transitions -------------------------------------------------------------------
    def _inputs(self, name: str) -> dict[str, ArtifactRef]:
        node = self.pipeline.nodes[name]
        return {
            arg: self.record.steps[ref.step].outputs[self.pipeline.output_name(ref)]
            for arg, ref in node.inputs.items()
        }

    def _schedule(self, name: str) -> None:
        """All upstream steps of ``name`` finished well: reuse its outputs or queue it."""
        self.waiting.discard(name)
        step = self.record.steps[name]
        spec = self.pipeline.nodes[name].spec
        step.inputs = self._inputs(name)
        try:
            step.cache_key = cache_key(
                spec.code_hash, step.params, {k: v.content_hash for k, v in step.inputs.items()}
            )
        except CacheKeyError as exc:
            step.started_at = utcnow()
            self._fail(name, str(exc))
            return
        reused = self._reusable(name, step.cache_key)
        if reused is None:
            self.ready.append((name, 1))
            return
        status, outputs, origin = reused
        now = utcnow()
        step.status, step.outputs, step.reused_from = status, outputs, origin
        step.started_at = step.finished_at = now
        self._succeeded(name)

    def _reusable(
        self, name: str, key: str
    ) -> tuple[StepStatus, dict[str, ArtifactRef], str] | None:
        exists = self.r.artifacts.exists
        prev = self.previous.steps.get(name) if self.previous else None
        if (
            self.previous is not None
            and prev is not None
            and prev.status.finished_ok
            and prev.cache_key == key
            and all(exists(ref) for ref in prev.outputs.values())
        ):
            origin = prev.reused_from or self.previous.id
            return StepStatus.RESUMED, dict(prev.outputs), origin
        if self.r.cache is not None and self.pipeline.nodes[name].spec.cache:
            entry = self.r.cache.get(key)
            if entry and all(exists(ref) for ref in entry.outputs.values()):
                return StepStatus.CACHED, dict(entry.outputs), entry.run_id
        return None

    def _start(self, name: str, number: int) -> None:
        node = self.pipeline.nodes[name]
        step = self.record.steps[name]
        step.status = StepStatus.RUNNING
        if number == 1:
            step.started_at = utcnow()
            child = None
            if self.tracker_run is not None:
                child = self._track("start_step", self.tracker_run, name, step.params)
            self.tracker_ids[name] = child
            step.tracker_run_id = child if child != "null" else None
        step.attempts.append(AttemptRecord(number=number, started_at=utcnow()))
        task = StepTask(
            step=name,
            func=node.spec.func,
            inputs=step.inputs,
            params=step.params,
            outputs=node.spec.outputs,
            store=self.r.artifacts,
            log_limit=self.r.log_limit,
            context={
                "run_id": self.record.id,
                "step": name,
                "attempt": number,
                "tracker_run_id": self.tracker_ids.get(name),
                "tracking_uri": getattr(self.r.tracker, "tracking_uri", None),
            },
        )
        deadline = self.r.clock() + node.spec.timeout if node.spec.timeout else None
        attempt = _Attempt(name, number, deadline)
        try:
            future = self.r.executor.submit(run_task, task)
        except Exception as exc:
            self._finish(attempt, TaskResult(error=f"could not submit: {exc}", exception=exc))
            return
        self.running[future] = attempt
        self.save()

    def _finish(self, attempt: _Attempt, result: TaskResult, timed_out: bool = False) -> None:
        name = attempt.step
        step = self.record.steps[name]
        spec = self.pipeline.nodes[name].spec
        record = step.attempts[-1]
        record.finished_at, record.timed_out, record.error = utcnow(), timed_out, result.error
        step.logs.append(f"--- attempt {attempt.number} ---")
        step.logs.extend(result.logs)
        step.metrics.update(result.metrics)
        if result.ok:
            step.status, step.outputs = StepStatus.SUCCEEDED, result.outputs
            step.finished_at = utcnow()
            if self.r.cache is not None and spec.cache and step.cache_key:
                entry = CacheEntry(outputs=result.outputs, run_id=self.record.id)
                self.r.cache.put(step.cache_key, entry)
            self._succeeded(name)
            return
        if result.traceback:
            step.logs.append(result.traceback)
        if spec.retry.should_retry(result.exception, attempt.number):
            delay = spec.retry.delay(attempt.number)
            record.retry_in = delay
            step.logs.append(f"retrying in {delay:g}s after: {result.error}")
            heapq.heappush(
                self.delayed, (self.r.clock() + delay, next(self._seq), name, attempt.number + 1)
            )
            self.save()
            return
        self._fail(name, result.error or "failed")

    def _fail(self, name: str, error: str) -> None:
        step = self.record.steps[name]
        step.status, step.error, step.finished_at = StepStatus.FAILED, error, utcnow()
        for child in self.pipeline.downstream(name):
            if child in self.waiting:
                self.waiting.discard(child)
                down = self.record.steps[child]
                down.status = StepStatus.UPSTREAM_FAILED
                down.error = f"upstream step {name!r} failed"
        self._close_tracked(name)
        self.save()

    def _succeeded(self, name: str) -> None:
        step = self.record.steps[name]
        for output, ref in step.outputs.items():
            self.record.lineage.append(
                LineageRecord(
                    run_id=self.record.id,
                    step=name,
                    output=output,
                    artifact=ref,
                    code_hash=step.code_hash or "",
                    cache_key=step.cache_key or "",
                    params=step.params,
                    inputs=step.inputs,
                    produced_in_run=step.reused_from or self.record.id,
                )
            )
        if name not in self.tracker_ids and self.tracker_run is not None:
            child = self._track("start_step", self.tracker_run, name, step.params)
            self.tracker_ids[name] = child
            step.tracker_run_id = child if child != "null" else None
        self._close_tracked(name)
        self.save()
        for child in self.pipeline.downstream(name):
            node = self.pipeline.nodes[child]
            if child in self.waiting and all(
                self.record.steps[u].status.finished_ok for u in node.upstream
            ):
                self._schedule(child)

    def _close_tracked(self, name: str) -> None:
        child = self.tracker_ids.get(name)
        if child is None:
            return
        step = self.record.steps[name]
        if step.metrics:
            self._track("log_metrics", child, dict(step.metrics))
        for output, ref in step.outputs.items():
            self._track("log_artifact", child, output, ref.uri)
        self._track("end_step", child, step.status.value)
