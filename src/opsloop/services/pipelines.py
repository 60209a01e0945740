"""Pipelines of one opsloop: the catalogue, runs in the background, schedules, MLflow tracking.

The catalogue holds the built-in pipelines (opsloop's own detectors, trained like any model)
and every ``*.yaml``/``*.yml`` pipeline in ``<home>/pipelines`` and ``pipelines.paths``.
Runs share one artifact store and step cache under ``<home>/pipelines``, are recorded in the
state store (:class:`SqlPipelineRunStore`) and tracked in MLflow (parent run + child per step).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsloop.config import PipelineSchedule, Settings
from opsloop.learn.mlflow_env import MlflowEnv
from opsloop.learn.pipelines import (
    LocalArtifactStore,
    LocalStepCache,
    Pipeline,
    PoolExecutor,
    Runner,
    RunRecord,
    SpecError,
    load_pipeline,
    mark_interrupted,
)
from opsloop.services.pipeline_runs import SqlPipelineRunStore
from opsloop.services.pipeline_schedules import PipelineScheduler, SlotClaims, schedule_id
from opsloop.store.state import StateDB

log = logging.getLogger("opsloop.pipelines")


class PipelineNotFound(KeyError):
    """No pipeline of that name in the catalogue."""


@dataclass
class CatalogEntry:
    """One pipeline the platform knows: where it comes from and how to build it."""

    name: str
    source: str  # a YAML path, or "builtin"
    build: Callable[[], Pipeline]
    description: str = ""
    error: str | None = None  # why the file could not be loaded (listed, not runnable)


BuiltinFactory = Callable[[Settings], Pipeline]


@dataclass
class _Builtins:
    factories: dict[str, tuple[BuiltinFactory, str]] = field(default_factory=dict)


BUILTINS = _Builtins()


def register_builtin(name: str, factory: BuiltinFactory, description: str = "") -> None:
    """Make a built-in pipeline available to every platform (``factory(settings)``)."""
    BUILTINS.factories[name] = (factory, description)


def _load_builtins() -> None:
    try:
        from opsloop.learn.detectors import register_builtins
    except ImportError:
        return
    register_builtins(register_builtin)


def describe_pipeline(pipeline: Pipeline) -> list[dict[str, Any]]:
    """The DAG as data: each step with its function, inputs (upstream refs), outputs, params."""
    steps = []
    for name in pipeline.order():
        node = pipeline.nodes[name]
        spec = node.spec
        steps.append(
            {
                "name": name,
                "uses": f"{spec.func.__module__}:{spec.func.__qualname__}",
                "inputs": {arg: str(ref) for arg, ref in node.inputs.items()},
                "upstream": sorted(node.upstream),
                "outputs": list(spec.outputs),
                "params": _jsonable(node.resolved_params()),
                "retries": spec.retry.retries,
                "timeout": spec.timeout,
                "cache": spec.cache,
            }
        )
    return steps


def _jsonable(value: Any) -> Any:
    import json

    try:
        json.dumps(value)
        return value
    except TypeError:
        return json.loads(json.dumps(value, default=str))


class PipelineService:
    """Loads pipelines, runs them (in the background or in the caller), schedules them."""

    def __init__(
        self,
        settings: Settings,
        state: StateDB,
        env: MlflowEnv | None = None,
        max_concurrent_runs: int = 2,
    ) -> None:
        self.settings = settings
        self.cfg = settings.pipelines
        self.env = env or MlflowEnv(settings.home, settings.mlflow_uri)
        self.root = settings.home / "pipelines"
        self.runs = SqlPipelineRunStore(state)
        self.claims = SlotClaims(state)
        self._pool = ThreadPoolExecutor(max_concurrent_runs, thread_name_prefix="opsloop-pipeline")
        self._active: dict[str, Future[RunRecord]] = {}
        self._lock = threading.Lock()
        self._runner: Runner | None = None
        self._process_pool: Any = None
        self.scheduler = PipelineScheduler(list(self.cfg.schedules), self.claims, self._scheduled)
        self.interrupted = mark_interrupted(self.runs)
        if self.interrupted:
            log.warning("pipeline runs interrupted by the last stop: %s", self.interrupted)

    # -- catalogue ------------------------------------------------------------------------
    def folders(self) -> list[Path]:
        """Where pipeline YAML files are looked for."""
        return [self.root, *(Path(p).expanduser() for p in self.cfg.paths)]

    def catalog(self) -> dict[str, CatalogEntry]:
        """Every known pipeline by name (files are re-read, so edits show up)."""
        _load_builtins()
        entries: dict[str, CatalogEntry] = {}
        for name, (factory, description) in sorted(BUILTINS.factories.items()):
            entries[name] = CatalogEntry(
                name, "builtin", lambda f=factory: f(self.settings), description
            )
        for folder in self.folders():
            if not folder.is_dir():
                continue
            for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
                self._add_file(entries, path)
        return entries

    def _add_file(self, entries: dict[str, CatalogEntry], path: Path) -> None:
        import yaml

        try:
            data = yaml.safe_load(path.read_text())
            name = data.get("name") if isinstance(data, dict) else None
            description = str(data.get("description", "")) if isinstance(data, dict) else ""
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            name, description = path.stem, ""
            entries.setdefault(
                name, CatalogEntry(name, str(path), lambda: Pipeline(path.stem), "", str(exc))
            )
            return
        name = str(name or path.stem)
        if name in entries:
            log.warning("pipeline %s in %s hides another of the same name", name, path)
            return
        entries[name] = CatalogEntry(name, str(path), lambda p=path: load_pipeline(p), description)

    def get(self, name: str) -> CatalogEntry:
        """The catalogue entry, or :class:`PipelineNotFound`."""
        entry = self.catalog().get(name)
        if entry is None:
            raise PipelineNotFound(name)
        return entry

    def build(self, name: str) -> Pipeline:
        """Load and validate the pipeline (raises ``SpecError`` with file and line)."""
        entry = self.get(name)
        if entry.error:
            raise SpecError(f"{entry.source}: {entry.error}")
        return entry.build()

    def describe(self, name: str) -> dict[str, Any]:
        """The pipeline with its DAG, schedules and latest runs."""
        entry = self.get(name)
        out: dict[str, Any] = {
            "name": name,
            "source": entry.source,
            "description": entry.description,
            "error": entry.error,
            "steps": [],
            "schedules": self.schedules_of(name),
        }
        if entry.error is None:
            try:
                out["steps"] = describe_pipeline(entry.build())
            except Exception as exc:
                out["error"] = str(exc)
        return out

    def schedules_of(self, name: str) -> list[dict[str, Any]]:
        """The schedules of pipeline ``name`` with their next firing."""
        nxt = self.scheduler.next_runs()
        return [
            {
                "id": schedule_id(s),
                "cron": s.cron,
                "interval_s": s.interval_s,
                "missed": s.missed,
                "next_run": nxt.get(schedule_id(s)),
            }
            for s in self.cfg.schedules
            if s.pipeline == name
        ]

    # -- running --------------------------------------------------------------------------
    @property
    def runner(self) -> Runner:
        """The shared runner (artifact store, cache, run store, MLflow tracker, executor)."""
        with self._lock:
            if self._runner is None:
                from opsloop.learn.mlflow_tracker import MlflowTracker

                executor = None
                if self.cfg.executor == "process":
                    import multiprocessing
                    from concurrent.futures import ProcessPoolExecutor

                    ctx = multiprocessing.get_context("spawn")
                    self._process_pool = ProcessPoolExecutor(self.cfg.max_parallel, mp_context=ctx)
                    executor = PoolExecutor(self._process_pool)
                self._runner = Runner(
                    LocalArtifactStore(self.root / "artifacts"),
                    runs=self.runs,
                    cache=LocalStepCache(self.root / "cache"),
                    tracker=MlflowTracker(self.env),
                    executor=executor,
                    max_parallel=self.cfg.max_parallel,
                )
            return self._runner

    def _check_params(self, params: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for step, values in (params or {}).items():
            if not isinstance(values, Mapping):
                raise ValueError(f"params for step {step!r} must be a mapping of param: value")
            out[str(step)] = dict(values)
        return out

    def run(
        self,
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        trigger: str = "manual",
        resume_from: str | None = None,
    ) -> RunRecord:
        """Run ``name`` in the calling thread and return its final record."""
        pipeline = self.build(name)
        self.env.ensure()
        return self.runner.run(
            pipeline, params=self._check_params(params), resume_from=resume_from, trigger=trigger
        )

    def start(
        self,
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        trigger: str = "api",
        resume_from: str | None = None,
    ) -> str:
        """Start a run in the background; return its id (errors in the spec raise here)."""
        pipeline = self.build(name)
        overrides = self._check_params(params)
        from opsloop.learn.pipelines.runner import check_overrides

        check_overrides(pipeline, overrides)
        if resume_from is not None and self.runs.get(resume_from) is None:
            raise ValueError(f"cannot resume: no run {resume_from!r}")
        run_id = uuid.uuid4().hex

        def work() -> RunRecord:
            self.env.ensure()
            return self.runner.run(
                pipeline, params=overrides, resume_from=resume_from, run_id=run_id, trigger=trigger
            )

        future = self._pool.submit(work)
        with self._lock:
            self._active[run_id] = future
        future.add_done_callback(lambda f: self._done(run_id, f))
        return run_id

    def _done(self, run_id: str, future: Future[RunRecord]) -> None:
        with self._lock:
            self._active.pop(run_id, None)
        exc = future.exception()
        if exc is not None:
            log.error("pipeline run %s crashed: %s", run_id, exc)

    def wait(self, run_id: str, timeout: float | None = None) -> RunRecord | None:
        """Wait for a background run (tests, CLI); the record either way."""
        with self._lock:
            future = self._active.get(run_id)
        if future is not None:
            future.result(timeout=timeout)
        return self.runs.get(run_id)

    def _scheduled(self, s: PipelineSchedule, trigger: str) -> None:
        self.start(s.pipeline, s.params, trigger=trigger)

    # -- lifecycle ------------------------------------------------------------------------
    def start_schedules(self) -> None:
        """Start firing schedules (``opsloop up``); unknown pipelines are reported, not run."""
        names = set(self.catalog())
        for s in self.cfg.schedules:
            if s.pipeline not in names:
                log.error("schedule %s names an unknown pipeline", schedule_id(s))
        self.scheduler.start()

    def close(self) -> None:
        """Stop schedules; running pipelines are abandoned (marked interrupted next start)."""
        self.scheduler.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._process_pool is not None:
            self._process_pool.shutdown(wait=False, cancel_futures=True)
