"""The model gateway: registered models served by alias, swapped live when an alias moves.

Each served model has a table alias -> :class:`ModelRunner` (one loaded version with its
micro-batcher). A background thread polls the registry every ``poll_interval_s`` seconds
(:meth:`ModelGateway.refresh` does it on demand, e.g. right after a promotion). When an alias
points at a new version, that version is loaded completely first, then the alias table is
replaced by a new one in a single assignment: requests that already hold the old runner finish
on it, new ones get the new runner, and none fails. The last few versions stay loaded (LRU,
``max_versions``), so a rollback swaps back at once.

Requests are admitted per model up to the policy's ``max_concurrency`` (429 beyond), bounded by
``timeout_s`` (504), and answered 503 while the model has no loadable version. Canary and
shadow traffic follow the model's :class:`ModelPolicy`. Sampled predictions go to the
prediction log's hook; labels that arrive later go to ``on_label``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
import uuid
import zlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from opsloop.learn.serving.errors import (
    GatewayError,
    ModelNotFound,
    ModelUnavailable,
    Overloaded,
    PredictTimeout,
)
from opsloop.learn.serving.loader import ModelLoader
from opsloop.learn.serving.metrics import ServingMetrics
from opsloop.learn.serving.payload import Payload
from opsloop.learn.serving.policy import (
    CANARY,
    CHAMPION,
    SHADOW,
    Admission,
    ModelPolicy,
    TrafficSplit,
)
from opsloop.learn.serving.predlog import (
    LabelHook,
    LoggedPrediction,
    PredictionHook,
    PredictionLog,
)
from opsloop.learn.serving.runner import ModelRunner, Outcome

log = logging.getLogger("opsloop.learn.serving")
PINNED = "pinned"
UNKNOWN = "(unknown)"  # the metric label of requests for models that are not served


@dataclass
class Prediction:
    """The answer to one request."""

    model: str
    version: str
    variant: str
    request_id: str
    predictions: Any
    latency_ms: float
    body: str | None = None  # MLflow's own JSON answer, when its scoring path made one

    def to_dict(self) -> dict[str, Any]:
        """The JSON answer of ``/predict``."""
        return {
            "predictions": self.predictions,
            "model": self.model,
            "version": self.version,
            "variant": self.variant,
            "request_id": self.request_id,
        }


@dataclass
class _Served:
    """A model the gateway serves, with its live aliases."""

    name: str
    policy: ModelPolicy
    split: TrafficSplit
    admission: Admission
    watched: set[str]
    slots: dict[str, ModelRunner] = field(default_factory=dict)  # replaced, never mutated
    runners: dict[str, ModelRunner] = field(default_factory=dict)  # replaced, never mutated
    problems: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    shadows: int = 0


def new_request_id() -> str:
    """A fresh request id."""
    return uuid.uuid4().hex


class ModelGateway:
    """Serves registered models by alias, with hot swap, batching and traffic policies.

    ``freeze_gc`` calls ``gc.freeze()`` after each model load, so full garbage collections do
    not walk the model's objects (the standalone server does this; it trades a little memory
    that cycles frozen at load time can never give back for a much shorter latency tail).
    """

    def __init__(
        self,
        loader: ModelLoader,
        *,
        policies: Mapping[str, ModelPolicy] | None = None,
        default_policy: ModelPolicy | None = None,
        poll_interval_s: float = 10.0,
        on_prediction: PredictionHook | None = None,
        on_label: LabelHook | None = None,
        metrics: ServingMetrics | None = None,
        threads: int = 4,
        max_versions: int = 3,
        seed: int | None = None,
        freeze_gc: bool = False,
    ):
        self.loader = loader
        self.default_policy = default_policy or ModelPolicy()
        self.poll_interval_s = poll_interval_s
        self.on_label = on_label
        self.metrics = metrics or ServingMetrics()
        self.max_versions = max(1, max_versions)
        self.seed = seed
        self.freeze_gc = freeze_gc
        self.executor = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="opsloop-predict"
        )
        self.prediction_log = PredictionLog(
            on_prediction, seed=seed, on_drop=lambda: self.metrics.log_dropped.inc()
        )
        self._models: dict[str, _Served] = {}
        self._declare_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._soon: set[str] = set()
        self._poller: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        for name, policy in (policies or {}).items():
            self.serve(name, policy)

    # -- models and policies -------------------------------------------------------------
    def serve(self, name: str, policy: ModelPolicy | None = None) -> None:
        """Serve ``name`` (loaded on :meth:`refresh` or its first request)."""
        with self._declare_lock:
            self._declare(name, policy or self.default_policy)

    def _declare(self, name: str, policy: ModelPolicy) -> _Served:
        served = self._models.get(name)
        if served is None or served.policy != policy:
            seed = None if self.seed is None else zlib.crc32(f"{self.seed}:{name}".encode())
            watched = {policy.alias} | (
                {policy.challenger_alias} if policy.uses_challenger else set()
            )
            fresh = _Served(
                name, policy, TrafficSplit(policy, seed), Admission(policy.max_concurrency), watched
            )
            if served is not None:  # a new policy: keep what is loaded, rebuild the runners
                fresh.watched |= served.watched
                for old in served.runners.values():
                    old.close()
            self._models[name] = fresh
            served = fresh
        return served

    def set_policy(self, name: str, policy: ModelPolicy) -> None:
        """Change the policy of ``name`` (takes effect at once; versions reload lazily)."""
        self.serve(name, policy)
        self.refresh(name)

    def policy(self, name: str) -> ModelPolicy:
        """The policy ``name`` is served with."""
        served = self._models.get(name)
        return served.policy if served is not None else self.default_policy

    @property
    def models(self) -> list[str]:
        """Names of the served models."""
        return sorted(self._models)

    # -- refresh and hot swap ------------------------------------------------------------
    def refresh(self, name: str | None = None) -> dict[str, dict[str, str | None]]:
        """Bring the live versions in line with the registry; ``{model: {alias: version}}``.

        Blocking (registry calls, model loading): call it from a thread in async code.
        """
        names = [name] if name is not None else self.models
        out = {}
        for model in names:
            served = self._models.get(model)
            if served is None:
                self.serve(model)
                served = self._models[model]
            self._refresh(served)
            out[model] = {a: r.version for a, r in sorted(served.slots.items())}
        return out

    def _refresh(self, served: _Served, aliases: set[str] | None = None) -> None:
        with served.lock:
            for alias in sorted(aliases or served.watched):
                try:
                    version = self.loader.resolve(served.name, alias)
                except ModelNotFound as exc:
                    served.problems[alias] = exc.message
                    continue
                except Exception as exc:
                    log.warning("registry lookup of %s@%s failed: %s", served.name, alias, exc)
                    served.problems[alias] = f"registry lookup failed: {exc}"
                    continue
                if version is None:
                    served.problems[alias] = f"alias {alias!r} is not set"
                    continue
                current = served.slots.get(alias)
                if current is not None and current.version == version:
                    served.problems.pop(alias, None)
                    continue
                try:
                    runner = self._runner(served, version)
                except GatewayError as exc:
                    served.problems[alias] = exc.message
                    continue
                served.slots = {**served.slots, alias: runner}  # the swap: one assignment
                served.problems.pop(alias, None)
                self._swapped(served, alias, current, runner)
            self._evict(served)

    def _runner(self, served: _Served, version: str) -> ModelRunner:
        """The runner of ``version``, loading it if needed (call with ``served.lock``)."""
        runner = served.runners.get(version)
        if runner is not None:
            return runner
        try:
            loaded = self.loader.load(served.name, version)
        except GatewayError:
            self.metrics.loads.inc((served.name, version, "failed"))
            raise
        self.metrics.loads.inc((served.name, version, "ok"))
        if self.freeze_gc:  # keep the model's objects out of full collections (see app.py)
            gc.freeze()
        runner = ModelRunner(loaded, served.policy, self.executor, self.metrics)
        served.runners = {**served.runners, version: runner}
        return runner

    def _swapped(
        self, served: _Served, alias: str, old: ModelRunner | None, new: ModelRunner
    ) -> None:
        self.metrics.live.set((served.name, alias, new.version), 1)
        if old is not None:
            self.metrics.swaps.inc((served.name, alias))
            self.metrics.live.remove((served.name, alias, old.version))
            log.info(
                "model %s: %s now serves version %s (was %s)",
                served.name,
                alias,
                new.version,
                old.version,
            )
        else:
            log.info("model %s: %s serves version %s", served.name, alias, new.version)

    def _evict(self, served: _Served) -> None:
        """Unload versions beyond ``max_versions`` that no alias serves (least recent first)."""
        live = {r.version for r in served.slots.values()}
        spare = sorted(
            (r for v, r in served.runners.items() if v not in live), key=lambda r: r.last_used
        )
        excess = len(served.runners) - self.max_versions
        if excess <= 0:
            return
        gone = spare[:excess]
        served.runners = {v: r for v, r in served.runners.items() if r not in gone}
        for runner in gone:
            runner.close()
            self.loader.evict(served.name, runner.version)

    def _pin(self, served: _Served, version: str) -> ModelRunner:
        with served.lock:
            return self._runner(served, version)

    def _watch(self, served: _Served, alias: str) -> str | None:
        """Serve ``alias`` from now on; the reason if it has no loadable version."""
        self._refresh(served, {alias})
        if alias in served.slots:
            served.watched.add(alias)
            return None
        return served.problems.pop(alias, f"alias {alias!r} has no loaded version")

    # -- background polling --------------------------------------------------------------
    def start(self, *, load: bool = True) -> None:
        """Load the served models now (``load``) and start polling the registry."""
        if load:
            for name in self.models:
                try:
                    self.refresh(name)
                except Exception:
                    log.exception("could not load model %s", name)
        if self.poll_interval_s > 0 and (self._poller is None or not self._poller.is_alive()):
            self._stop.clear()
            self._wake.clear()
            self._poller = threading.Thread(
                target=self._poll, name="opsloop-model-poller", daemon=True
            )
            self._poller.start()

    def _poll(self) -> None:
        next_poll = time.monotonic() + self.poll_interval_s
        while not self._stop.is_set():
            self._wake.wait(max(0.0, next_poll - time.monotonic()))
            self._wake.clear()
            if self._stop.is_set():
                return
            if time.monotonic() >= next_poll:
                names = set(self.models)
                next_poll = time.monotonic() + self.poll_interval_s
            else:
                names = set()
            names |= self._take_soon()
            for name in sorted(names):
                try:
                    self.refresh(name)
                except Exception:
                    log.exception("refreshing model %s failed", name)

    def _take_soon(self) -> set[str]:
        with self._declare_lock:
            names, self._soon = self._soon, set()
        return names

    def refresh_soon(self, name: str) -> None:
        """Refresh ``name`` in the background now (e.g. from the registry's ``on_change``).

        Returns at once: the new version loads on the polling thread (or a short-lived one
        when polling is off), and serves as soon as it is loaded.
        """
        with self._declare_lock:
            self._soon.add(name)
        if self._poller is not None and self._poller.is_alive():
            self._wake.set()
            return

        def once() -> None:
            for model in sorted(self._take_soon()):
                try:
                    self.refresh(model)
                except Exception:
                    log.exception("refreshing model %s failed", model)

        threading.Thread(target=once, name="opsloop-model-refresh", daemon=True).start()

    def close(self) -> None:
        """Stop polling, let queued work finish, stop the prediction log."""
        self._stop.set()
        self._wake.set()
        if self._poller is not None:
            self._poller.join(timeout=5)
        for served in self._models.values():
            for runner in served.runners.values():
                runner.close()
        self.prediction_log.close()
        self.executor.shutdown(wait=False, cancel_futures=False)

    # -- predictions ---------------------------------------------------------------------
    async def _served(self, name: str) -> _Served:
        served = self._models.get(name)
        if served is not None:
            return served
        if not await asyncio.to_thread(self.loader.exists, name):
            raise ModelNotFound(f"no registered model {name!r}", model=name)
        with self._declare_lock:
            served = self._models.get(name) or self._declare(name, self.default_policy)
        return served

    async def _pick(
        self, served: _Served, alias: str | None, version: str | None
    ) -> tuple[ModelRunner, str]:
        policy = served.policy
        if version is not None:
            runner = served.runners.get(version)
            if runner is None:
                runner = await asyncio.to_thread(self._pin, served, version)
            return runner, PINNED
        if alias is not None:
            runner = served.slots.get(alias)
            if runner is None:
                problem = await asyncio.to_thread(self._watch, served, alias)
                runner = served.slots.get(alias)
                if runner is None:
                    raise ModelUnavailable(f"model {served.name!r} is unavailable: {problem}")
            return runner, alias
        variant = served.split.variant()
        if variant == CANARY:
            runner = served.slots.get(policy.challenger_alias)
            if runner is None and policy.challenger_alias not in served.problems:
                # not tried yet (the first requests): load it, as the champion is below,
                # instead of handing the canary's share to the champion meanwhile
                await asyncio.to_thread(self._refresh, served)
                runner = served.slots.get(policy.challenger_alias)
            if runner is not None:
                return runner, CANARY
        runner = served.slots.get(policy.alias)
        if runner is None:
            await asyncio.to_thread(self._refresh, served)
            runner = served.slots.get(policy.alias)
        if runner is None:
            raise self._unavailable(served, policy.alias)
        return runner, CHAMPION

    @staticmethod
    def _unavailable(served: _Served, alias: str) -> ModelUnavailable:
        reason = served.problems.get(alias, f"alias {alias!r} has no loaded version")
        return ModelUnavailable(f"model {served.name!r} is unavailable: {reason}")

    async def predict(
        self,
        name: str,
        payload: Payload,
        *,
        alias: str | None = None,
        version: str | None = None,
        request_id: str | None = None,
    ) -> Prediction:
        """Predict with ``name`` (its policy picks the version unless ``alias``/``version``).

        Raises :class:`GatewayError` subclasses, annotated with model, version and request id.
        """
        started = time.perf_counter()
        request_id = request_id or new_request_id()
        runner: ModelRunner | None = None
        variant = PINNED if version is not None else alias or CHAMPION
        try:
            served = await self._served(name)
            runner, variant = await self._pick(served, alias, version)
            outcome = await self._run(served, runner, payload)
        except GatewayError as exc:
            exc.model = exc.model or name
            exc.version = exc.version or (runner.version if runner else None)
            exc.request_id = request_id
            # label values only from served models and loaded versions (bounded cardinality)
            served_name = name if name in self._models else UNKNOWN
            self._count_error(served_name, runner.version if runner else "", variant, exc)
            raise
        latency_ms = (time.perf_counter() - started) * 1000
        self._count(runner, variant, 200, latency_ms, outcome.rows)
        self._log(served, runner, variant, request_id, payload, outcome, latency_ms)
        if served.policy.shadow and variant == CHAMPION:
            self._start_shadow(served, runner, payload, request_id)
        return Prediction(
            name, runner.version, variant, request_id, outcome.predictions, latency_ms, outcome.body
        )

    async def _run(self, served: _Served, runner: ModelRunner, payload: Payload) -> Outcome:
        if not served.admission.try_enter():
            raise Overloaded(
                f"model {served.name!r} has {served.policy.max_concurrency} requests in flight; "
                "retry later",
                version=runner.version,
            )
        gauge = (served.name,)
        self.metrics.in_flight.inc(gauge)
        try:
            async with asyncio.timeout(served.policy.timeout_s):
                return await runner.predict(payload)
        except TimeoutError:
            raise PredictTimeout(
                f"model {served.name!r} took longer than {served.policy.timeout_s:g} s",
                version=runner.version,
            ) from None
        finally:
            served.admission.leave()
            self.metrics.in_flight.inc(gauge, -1)

    def _count(
        self, runner: ModelRunner, variant: str, code: int, latency_ms: float, rows: int
    ) -> None:
        labels = (runner.name, runner.version)
        self.metrics.requests.inc((*labels, variant, str(code)))
        self.metrics.latency.observe((*labels, variant), latency_ms / 1000)
        if rows:
            self.metrics.rows.inc(labels, rows)

    def _count_error(self, name: str, version: str, variant: str, exc: GatewayError) -> None:
        self.metrics.requests.inc((name, version, variant, str(exc.status)))
        self.metrics.errors.inc((name, version, exc.code))

    def _log(
        self,
        served: _Served,
        runner: ModelRunner,
        variant: str,
        request_id: str,
        payload: Payload,
        outcome: Outcome,
        latency_ms: float,
    ) -> None:
        if not self.prediction_log.sampled(served.policy.log_sample_rate):
            return
        entry = LoggedPrediction(
            runner.name,
            runner.version,
            request_id,
            payload.input_records(),
            outcome.predictions,
            latency_ms,
            variant,
        )
        self.prediction_log.put(entry)

    def _start_shadow(
        self, served: _Served, champion: ModelRunner, payload: Payload, request_id: str
    ) -> None:
        challenger = served.slots.get(served.policy.challenger_alias)
        if challenger is None or challenger is champion:
            return
        if served.shadows >= served.policy.max_concurrency:
            self.metrics.errors.inc((served.name, challenger.version, "SHADOW_SKIPPED"))
            return
        served.shadows += 1
        task = asyncio.get_running_loop().create_task(
            self._shadow(served, challenger, payload, request_id)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _shadow(
        self, served: _Served, runner: ModelRunner, payload: Payload, request_id: str
    ) -> None:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(served.policy.timeout_s):
                outcome = await runner.predict(payload)
        except TimeoutError:
            self._count_error(served.name, runner.version, SHADOW, PredictTimeout("shadow"))
            return
        except GatewayError as exc:
            self._count_error(served.name, runner.version, SHADOW, exc)
            return
        finally:
            served.shadows -= 1
        latency_ms = (time.perf_counter() - started) * 1000
        self._count(runner, SHADOW, 200, latency_ms, outcome.rows)
        self._log(served, runner, SHADOW, request_id, payload, outcome, latency_ms)

    async def drain_shadows(self, timeout: float = 5.0) -> None:
        """Wait for shadow predictions still running (tests, shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    # -- labels and status ---------------------------------------------------------------
    def label(self, name: str, labels: list[tuple[str, Any]]) -> int:
        """Hand delayed labels (request id, label) of ``name`` to ``on_label``; the count.

        Blocking (the hook may write to a store): call it from a thread in async code.
        """
        if self.on_label is None:
            raise GatewayError(
                "this gateway has no label sink (on_label)", status=501, code="NOT_IMPLEMENTED"
            )
        for request_id, value in labels:
            self.on_label(name, request_id, value)
        return len(labels)

    def status(self) -> list[dict[str, Any]]:
        """Each served model: policy, live versions per alias, loaded versions, problems."""
        out = []
        for name in self.models:
            served = self._models[name]
            out.append(
                {
                    "name": name,
                    "aliases": {a: r.version for a, r in sorted(served.slots.items())},
                    "loaded_versions": sorted(served.runners, key=_version_key),
                    "batching": {v: r.batching for v, r in served.runners.items()},
                    "flavors": {v: r.loaded.flavor for v, r in served.runners.items()},
                    "in_flight": served.admission.in_flight,
                    "problems": dict(served.problems),
                    "policy": served.policy.to_dict(),
                }
            )
        return out


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (0, version)
