"""Where step attempts execute: behind an :class:`Executor`, one picklable task at a time.

A task (:class:`StepTask`) carries only references: the step function (picklable by
reference), the artifact refs of its inputs, its params and the artifact store. The worker
reads inputs from the store, calls the function, writes outputs to the store and returns
their refs (:class:`TaskResult`), plus the ``logging`` records and metrics the step
emitted. Nothing is shared in memory with the runner, so a process pool (or Ray) can run
the same tasks.

The default :class:`ThreadExecutor` runs each task on its own daemon thread: a step that
hangs past its timeout is abandoned (Python threads cannot be killed) but never blocks
interpreter exit. Concurrency is limited by the runner, not the executor.

>>> from opsloop.learn.pipelines.step import step
>>> ex = ThreadExecutor()
>>> ex.submit(sum, [1, 2, 3]).result(timeout=5)
6
"""

from __future__ import annotations

import logging
import pickle
import threading
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import Executor as _StdExecutor
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from opsloop.learn.pipelines.artifacts import ArtifactRef, ArtifactStore

DEFAULT_LOG_LIMIT = 64 * 1024  # bytes of captured log text per step attempt


@runtime_checkable
class Executor(Protocol):
    """Runs callables somewhere and hands back futures."""

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        """Start ``fn(*args)``; the future resolves with its result or exception."""
        ...

    def shutdown(self, wait: bool = True) -> None:
        """Release resources (abandoned threads are left to die with the process)."""
        ...


class ThreadExecutor:
    """One daemon thread per task (default executor)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` on a fresh daemon thread."""
        future: Future[Any] = Future()

        def target() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args))
            except BaseException as exc:
                future.set_exception(exc)

        name = getattr(args[0], "step", "task") if args else "task"
        threading.Thread(target=target, name=f"opsloop-step-{name}", daemon=True).start()
        return future

    def shutdown(self, wait: bool = True) -> None:
        """Nothing to release."""


class PoolExecutor:
    """Adapts any ``concurrent.futures`` executor, e.g. a ``ProcessPoolExecutor``.

    With a process pool, a timed-out step keeps its worker busy until it returns; size the
    pool accordingly (killing workers on timeout is future work).
    """

    def __init__(self, pool: _StdExecutor):
        self.pool = pool

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        """Delegate to the pool."""
        return self.pool.submit(fn, *args)

    def shutdown(self, wait: bool = True) -> None:
        """Shut the pool down."""
        self.pool.shutdown(wait=wait, cancel_futures=True)


class _LogBuffer:
    def __init__(self, limit: int):
        self.limit = limit
        self.lines: list[str] = []
        self.size = 0
        self.dropped = 0

    def add(self, line: str) -> None:
        if self.size + len(line) > self.limit:
            self.dropped += 1
            return
        self.lines.append(line)
        self.size += len(line)

    def result(self) -> list[str]:
        if self.dropped:
            return [*self.lines, f"[{self.dropped} log records dropped: over {self.limit} bytes]"]
        return list(self.lines)


_local = threading.local()


class _CaptureHandler(logging.Handler):
    """Routes records to the buffer of the step running on the emitting thread."""

    def emit(self, record: logging.LogRecord) -> None:
        buffer: _LogBuffer | None = getattr(_local, "logs", None)
        if buffer is not None:
            try:
                buffer.add(self.format(record))
            except Exception:  # a log line must never fail the step
                self.handleError(record)


_handler = _CaptureHandler()
_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
_handler_lock = threading.Lock()


def _ensure_handler() -> None:
    root = logging.getLogger()
    with _handler_lock:
        if _handler not in root.handlers:
            root.addHandler(_handler)


@dataclass(frozen=True)
class StepContext:
    """Where the running step is: its pipeline run, attempt and tracker run.

    ``tracker_run_id`` is the step's child run in the tracker (an MLflow run id when MLflow
    tracks the pipeline), so a step can nest runs of its own under it (e.g. Optuna trials);
    ``tracking_uri`` is where that tracker lives (``None`` for trackers without one).
    """

    run_id: str = ""
    step: str = ""
    attempt: int = 1
    tracker_run_id: str | None = None
    tracking_uri: str | None = None


def current_step() -> StepContext:
    """The context of the step running on this thread (raises outside a step)."""
    context: StepContext | None = getattr(_local, "context", None)
    if context is None:
        raise RuntimeError("current_step() called outside a running pipeline step")
    return context


def log_metric(key: str, value: float) -> None:
    """Record a metric from inside a step; it reaches the tracker's child run.

    Only records that loggers let through are captured in step logs (a logger left at
    the root's default WARNING level drops INFO); metrics are always kept.
    """
    metrics: dict[str, float] | None = getattr(_local, "metrics", None)
    if metrics is None:
        raise RuntimeError("log_metric() called outside a running pipeline step")
    metrics[key] = float(value)


@dataclass(frozen=True)
class StepTask:
    """One attempt of one step, as shipped to a worker."""

    step: str
    func: Callable[..., Any]
    inputs: Mapping[str, ArtifactRef]
    params: Mapping[str, Any]
    outputs: tuple[str, ...]
    store: ArtifactStore
    log_limit: int = DEFAULT_LOG_LIMIT
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class TaskResult:
    """What a worker sends back: output refs or the error, plus logs and metrics."""

    outputs: dict[str, ArtifactRef] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None
    exception: BaseException | None = None

    @property
    def ok(self) -> bool:
        """No error."""
        return self.error is None


def split_outputs(step: str, names: tuple[str, ...], value: Any) -> dict[str, Any]:
    """Map a step's return value onto its declared outputs.

    >>> split_outputs("s", ("a", "b"), (1, 2))
    {'a': 1, 'b': 2}
    >>> split_outputs("s", ("a",), (1, 2))
    {'a': (1, 2)}
    """
    if not names:
        return {}
    if len(names) == 1:
        return {names[0]: value}
    if isinstance(value, Mapping):
        if set(value) != set(names):
            raise ValueError(
                f"step {step!r} returned keys {sorted(value)}, declared outputs {list(names)}"
            )
        return {n: value[n] for n in names}
    if isinstance(value, tuple | list) and len(value) == len(names):
        return dict(zip(names, value, strict=True))
    raise ValueError(
        f"step {step!r} declares outputs {list(names)}: return a mapping with those keys "
        f"or a tuple of {len(names)} values, not {type(value).__name__}"
    )


def _transportable(exc: BaseException) -> BaseException | None:
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - round-trip of our own object
    except Exception:
        return None
    return exc


def run_task(task: StepTask) -> TaskResult:
    """Execute one attempt: load inputs, call the step, store outputs. Never raises."""
    _ensure_handler()
    buffer = _LogBuffer(task.log_limit)
    metrics: dict[str, float] = {}
    _local.logs, _local.metrics = buffer, metrics
    _local.context = StepContext(**dict(task.context))
    try:
        kwargs = {name: task.store.get(ref) for name, ref in task.inputs.items()}
        kwargs.update(task.params)
        value = task.func(**kwargs)
        values = split_outputs(task.step, task.outputs, value)
        outputs = {name: task.store.put(v) for name, v in values.items()}
    except Exception as exc:
        return TaskResult(
            logs=buffer.result(),
            metrics=metrics,
            error=f"{type(exc).__name__}: {exc}",
            traceback="".join(traceback.format_exception(exc)).rstrip(),
            exception=_transportable(exc),
        )
    finally:
        _local.logs = _local.metrics = _local.context = None
    return TaskResult(outputs=outputs, logs=buffer.result(), metrics=metrics)
