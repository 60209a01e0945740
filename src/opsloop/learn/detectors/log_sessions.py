"""The built-in ``detector-log-sessions`` pipeline: train, evaluate, register, promote.

Steps (each a ``@step``; the data flows through the pipeline's artifact store)::

    load_sessions ──▶ split_sessions ──▶ train_model ──▶ evaluate ──▶ register ──▶ promote
                                  └────── eval_set ──────▶┘  ▲
    load_champion ───────────────────────────────────────────┘

* ``load_sessions``: labelled sessions from an HDFS-style sessions CSV (``source="csv"``,
  optional template table) or from stored telemetry grouped with the session-key regex and
  labelled by the operators' feedback (``source="telemetry"``); see
  :mod:`~opsloop.learn.detectors.session_data`. Never cached: the data may have changed.
* ``split_sessions``: train/eval by ``sha256(salt + key)``, deterministic. The defaults (salt
  ``opsloop-hdfs``, half held out) are those of ``benchmarks/hdfs.py``, so figures line up.
* ``train_model``: a :class:`CountRuleModel` on the training sessions, without those labelled
  anomalous (``exclude_anomalous``; unlabelled ones are kept: the model tolerates a share of
  anomalies by its ``support``).
* ``load_champion``: the version behind the ``champion`` alias, if any.
* ``evaluate``: precision, recall and F1 of the new model *and* of the champion on the same
  labelled evaluation sessions.
* ``register``: an MLflow model version (pyfunc, state as JSON) of ``opsloop-log-sessions``,
  tagged with its lineage: pipeline run ids, data hash, params, evaluation figures.
* ``promote``: alias ``champion`` if the F1 beats the champion's by more than ``margin``
  (:func:`~opsloop.learn.detectors.evaluation.decide_promotion`), else ``challenger``; through
  :meth:`ModelRegistry.promote`, so the move is in the alias history (and the audit log when
  the platform's registry is bound), with the reason.

On telemetry, only alarmed sessions ever get a verdict, so the evaluation set is the sessions
that some model flagged and an operator judged: the F1 measures how well a model keeps the true
problems while dropping what operators called noise, not its recall on unseen problems.

:func:`run_log_sessions` runs it end to end; :func:`build_pipeline` gives the pipeline for any
:class:`~opsloop.learn.pipelines.Runner`. Live objects (the platform's telemetry and audited
registry) reach the steps through :mod:`~opsloop.learn.detectors.bindings`.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsloop.detect.logs.count_rules import CountRuleModel
from opsloop.detect.logs.hdfs_format import is_test_block
from opsloop.detect.logs.sessions import HDFS_BLOCK
from opsloop.learn.detectors.bindings import (
    DetectorServices,
    TelemetrySource,
    bind_services,
    get_services,
    unbind_services,
)
from opsloop.learn.detectors.evaluation import decide_promotion, evaluate_sessions
from opsloop.learn.detectors.package import SessionModelPackage
from opsloop.learn.detectors.session_data import (
    data_hash,
    feedback_verdicts,
    group_log_lines,
    label_sessions,
    read_sessions_csv,
    read_templates_csv,
)
from opsloop.learn.mlflow_env import MlflowEnv
from opsloop.learn.pipelines import Pipeline, Runner, RunRecord, current_step, log_metric, step

__all__ = [
    "ACTOR",
    "MODEL_NAME",
    "PIPELINE",
    "DetectorRun",
    "build_pipeline",
    "default_runner",
    "pipeline_for_settings",
    "run_log_sessions",
]

log = logging.getLogger("opsloop.learn.detectors")

PIPELINE = "detector-log-sessions"
MODEL_NAME = "opsloop-log-sessions"
ACTOR = f"pipeline:{PIPELINE}"
DEFAULT_SERVICES = "platform"


# -- helpers (steps call them; a change here needs a step ``version`` bump to bust the cache) ---
def _registry(services: str, mlflow_home: str, mlflow_uri: str | None) -> Any:
    from opsloop.learn.detectors.mlflow_io import pipeline_registry

    return pipeline_registry(services, mlflow_home, mlflow_uri)


def _package(model: Mapping[str, Any], meta: Mapping[str, Any]) -> SessionModelPackage:
    return SessionModelPackage(
        CountRuleModel.from_dict(dict(model["state"])),
        meta["event_space"],
        meta.get("templates"),
        meta.get("session_key"),
        {"n_train": model["n_train"], "params": model["params"], "data_hash": meta["data_hash"]},
    )


# -- steps ------------------------------------------------------------------------------------
@step(inputs=(), outputs=("sessions", "meta"), cache=False)
def load_sessions(
    source: str = "csv",
    path: str = "",
    templates_path: str = "",
    services: str = DEFAULT_SERVICES,
    since: float | None = None,
    until: float | None = None,
    session_key: str | None = HDFS_BLOCK,
    session_idle_s: float = 300.0,
) -> dict[str, Any]:
    """Labelled sessions ``[key, events, label]`` and what they are (vocabulary, hash, counts)."""
    templates = None
    if source == "csv":
        if not path:
            raise ValueError("source 'csv' needs a path")
        sessions = read_sessions_csv(path)
        templates = read_templates_csv(templates_path) if templates_path else None
        event_space = "named"
        origin = str(path)
    elif source == "telemetry":
        telemetry = get_services(services).telemetry
        if telemetry is None:
            raise RuntimeError(f"no telemetry bound as {services!r} (see detectors.bindings)")
        if not session_key:
            raise ValueError(
                "source 'telemetry' needs a session_key regex (set logs.session_key), "
                "or run with source 'csv' and a path"
            )
        grouped = group_log_lines(
            telemetry.lines(since, until), session_key, session_idle_s, telemetry.resolve
        )
        sessions = label_sessions(grouped, feedback_verdicts(telemetry.feedback()), session_idle_s)
        event_space = "template_ids"
        origin = f"telemetry[{since}, {until}]"
    else:
        raise ValueError(f"source must be 'csv' or 'telemetry', not {source!r}")
    labelled = [s for s in sessions if s[2] is not None]
    meta = {
        "source": source,
        "origin": origin,
        "event_space": event_space,
        "templates": templates,
        "session_key": session_key,
        "sessions": len(sessions),
        "labelled": len(labelled),
        "anomalous": sum(s[2] for s in labelled),
        "data_hash": data_hash(sessions),
    }
    log_metric("sessions", len(sessions))
    log_metric("labelled", len(labelled))
    log.info("loaded %d sessions (%d labelled) from %s", len(sessions), len(labelled), origin)
    return {"sessions": sessions, "meta": meta}


@step(outputs=("train", "eval_set"))
def split_sessions(
    sessions: list[Any], eval_fraction: float = 0.5, salt: str = "opsloop-hdfs"
) -> dict[str, Any]:
    """Train and evaluation sessions, split by a salted SHA-256 of the session key."""
    train, held = [], []
    for s in sessions:
        (held if is_test_block(s[0], eval_fraction, salt) else train).append(s)
    log_metric("train_sessions", len(train))
    log_metric("eval_sessions", len(held))
    return {"train": train, "eval_set": held}


@step(outputs=("model",))
def train_model(
    train: list[Any],
    support: float = 0.98,
    max_coef: int = 3,
    max_patterns: int = 50_000,
    exclude_anomalous: bool = True,
    min_sessions: int = 100,
) -> dict[str, Any]:
    """A :class:`CountRuleModel` state, its params and how many sessions it learnt."""
    model = CountRuleModel(support=support, max_coef=max_coef, max_patterns=max_patterns)
    used = [s for s in train if not (exclude_anomalous and s[2] == 1)]
    if len(used) < min_sessions:
        raise ValueError(f"{len(used)} training sessions, fewer than min_sessions={min_sessions}")
    for _key, events, _label in used:
        model.learn_one(events)
    rules = len(model.rules())
    log_metric("train_used", len(used))
    log_metric("rules", rules)
    params = {
        "support": support,
        "max_coef": max_coef,
        "max_patterns": max_patterns,
        "exclude_anomalous": exclude_anomalous,
    }
    example = used[0][1] if used else []  # the registered model's input example
    return {"state": model.to_dict(), "params": params, "n_train": len(used), "rules": rules,
            "example": example}  # fmt: skip


@step(inputs=(), outputs=("champion",), cache=False)
def load_champion(
    model_name: str = MODEL_NAME,
    alias: str = "champion",
    services: str = DEFAULT_SERVICES,
    mlflow_home: str = "",
    mlflow_uri: str | None = None,
) -> dict[str, Any]:
    """``{"version", "package"}`` of the version behind ``alias`` (``version`` None if none)."""
    from opsloop.learn.detectors.mlflow_io import load_package

    registry = _registry(services, mlflow_home, mlflow_uri)
    version = registry.resolve(model_name, alias)
    if version is None:
        return {"version": None, "package": None}
    package = load_package(registry.env, model_name, version)
    return {"version": version, "package": package.to_dict()}


@step(outputs=("report",))
def evaluate(
    model: dict[str, Any], meta: dict[str, Any], eval_set: list[Any], champion: dict[str, Any]
) -> dict[str, Any]:
    """The new model's and the champion's figures on the same labelled evaluation sessions."""
    new = _package(model, meta)
    challenger = evaluate_sessions(new.model, eval_set)
    for k in ("precision", "recall", "f1", "n"):
        log_metric(f"eval_{k}", challenger[k])
    report: dict[str, Any] = {"challenger": challenger, "champion": None}
    if champion.get("version") is not None:
        old = SessionModelPackage.from_dict(champion["package"])
        entry: dict[str, Any] = {"version": champion["version"], "comparable": True}
        if old.vocabulary != new.vocabulary:
            entry.update(
                comparable=False,
                reason=f"it speaks vocabulary {old.vocabulary}, the data {new.vocabulary}",
            )
        else:
            entry.update(evaluate_sessions(old.model, eval_set))
            log_metric("champion_f1", entry["f1"])
        report["champion"] = entry
    return report


@step(outputs=("registered",), cache=False)
def register(
    model: dict[str, Any],
    meta: dict[str, Any],
    report: dict[str, Any],
    model_name: str = MODEL_NAME,
    services: str = DEFAULT_SERVICES,
    mlflow_home: str = "",
    mlflow_uri: str | None = None,
) -> dict[str, Any]:
    """Register the new model as a version of ``model_name``; tag it with its lineage."""
    from opsloop.learn.detectors.mlflow_io import register_package, register_run

    env = _registry(services, mlflow_home, mlflow_uri).env
    client = env.client()
    ctx = current_step()
    run_id, parent, own = register_run(env, PIPELINE, client)
    challenger, champion = report["challenger"], report.get("champion") or {}
    tags = {
        "opsloop.pipeline": PIPELINE,
        "opsloop.pipeline_run_id": ctx.run_id,
        "opsloop.mlflow_run_id": parent or run_id,
        "opsloop.data_hash": meta["data_hash"],
        "opsloop.source": meta["origin"],
        "opsloop.event_space": meta["event_space"],
        "opsloop.session_key": meta.get("session_key") or "",
        "opsloop.params": json.dumps(model["params"], sort_keys=True),
        "opsloop.train_sessions": str(model["n_train"]),
        "opsloop.rules": str(model["rules"]),
        **{f"opsloop.eval.{k}": f"{challenger[k]:.6g}" for k in ("precision", "recall", "f1")},
        "opsloop.eval.labelled": str(challenger["n"]),
        "opsloop.champion.version": str(champion.get("version") or ""),
        "opsloop.champion.f1": f"{champion['f1']:.6g}" if "f1" in champion else "",
    }
    version = register_package(
        env,
        _package(model, meta),
        model_name,
        run_id,
        tags,
        description=f"{meta['sessions']} sessions from {meta['origin']}; "
        f"eval f1 {challenger['f1']:.4f} on {challenger['n']} labelled",
        example=model.get("example") or None,
    )
    for k in ("precision", "recall", "f1"):
        log_metric(f"eval_{k}", challenger[k])
    if own:  # no tracker run to carry the step's metrics: put them on the model's run
        for k in ("precision", "recall", "f1"):
            client.log_metric(run_id, f"eval_{k}", float(challenger[k]))
        client.set_terminated(run_id, "FINISHED")
    log.info("registered %s version %s", model_name, version)
    return {"model": model_name, "version": version, "run_id": run_id}


@step(outputs=("decision",), cache=False)
def promote(
    registered: dict[str, Any],
    report: dict[str, Any],
    margin: float = 0.01,
    services: str = DEFAULT_SERVICES,
    mlflow_home: str = "",
    mlflow_uri: str | None = None,
) -> dict[str, Any]:
    """Alias ``champion`` if better than the champion by ``margin``, else ``challenger``."""
    from opsloop.learn.detectors.mlflow_io import promote_version

    champion = report.get("champion")
    ok, reason = decide_promotion(report["challenger"], champion, margin)
    evaluated = champion["version"] if champion else None
    registry = _registry(services, mlflow_home, mlflow_uri)
    return promote_version(registry, registered, ok, reason, evaluated, ACTOR)


# -- assembly ---------------------------------------------------------------------------------
def build_pipeline(
    *,
    source: str = "csv",
    path: str | Path = "",
    templates_path: str | Path = "",
    since: float | None = None,
    until: float | None = None,
    session_key: str | None = HDFS_BLOCK,
    session_idle_s: float = 300.0,
    eval_fraction: float = 0.5,
    salt: str = "opsloop-hdfs",
    model_params: Mapping[str, Any] | None = None,
    margin: float = 0.01,
    model_name: str = MODEL_NAME,
    env: MlflowEnv | None = None,
    services: str = DEFAULT_SERVICES,
) -> Pipeline:
    """The ``detector-log-sessions`` pipeline with its params set.

    ``model_params`` go to ``train_model`` (``support``, ``max_coef``, ``max_patterns``,
    ``exclude_anomalous``, ``min_sessions``). The registry is the one bound as ``services``,
    else the MLflow store of ``env``.
    """
    mlflow = {
        "services": services,
        "mlflow_home": str(env.home) if env is not None else "",
        "mlflow_uri": env.override if env is not None else None,
    }
    p = Pipeline(PIPELINE)
    load = p.add(
        load_sessions,
        params={
            "source": source, "path": str(path), "templates_path": str(templates_path or ""),
            "services": services, "since": since, "until": until, "session_key": session_key,
            "session_idle_s": session_idle_s,
        },
    )  # fmt: skip
    split = p.add(
        split_sessions,
        inputs={"sessions": load["sessions"]},
        params={"eval_fraction": eval_fraction, "salt": salt},
    )
    train = p.add(train_model, inputs={"train": split["train"]}, params=dict(model_params or {}))
    champ = p.add(load_champion, params={"model_name": model_name, **mlflow})
    report = p.add(
        evaluate,
        inputs={"model": train, "meta": load["meta"], "eval_set": split["eval_set"],
                "champion": champ},
    )  # fmt: skip
    reg = p.add(
        register,
        inputs={"model": train, "meta": load["meta"], "report": report},
        params={"model_name": model_name, **mlflow},
    )
    p.add(
        promote, inputs={"registered": reg, "report": report}, params={"margin": margin, **mlflow}
    )
    return p


def pipeline_for_settings(settings: Any) -> Pipeline:
    """The platform's pipeline: its telemetry, session settings, margin and MLflow store.

    Run-time params switch it to a CSV, e.g. ``{"load_sessions": {"source": "csv", "path":
    ..., "templates_path": ...}}``.
    """
    logs = settings.logs
    return build_pipeline(
        source="telemetry",
        session_key=logs.session_key,
        session_idle_s=logs.session_idle_s,
        margin=settings.models.promote_margin,
        env=MlflowEnv(settings.home, settings.mlflow_uri),
        services=DEFAULT_SERVICES,
    )


@dataclass
class DetectorRun:
    """The outcome of one pipeline run."""

    record: RunRecord
    seconds: float
    version: str | None = None
    alias: str | None = None
    promoted: bool = False
    reason: str = ""
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every step succeeded."""
        return self.record.status.value == "succeeded"

    @property
    def error(self) -> str | None:
        """The failed steps and their errors, if any."""
        if self.ok:
            return None
        failed = [f"{s.name}: {s.error}" for s in self.record.steps.values() if s.error]
        return "; ".join(failed) or self.record.error


def default_runner(env: MlflowEnv) -> Runner:
    """A runner with artifacts under ``<home>/pipeline-artifacts`` and MLflow tracking."""
    from opsloop.learn.mlflow_tracker import MlflowTracker
    from opsloop.learn.pipelines import LocalArtifactStore

    return Runner(
        LocalArtifactStore(env.home / "pipeline-artifacts"),
        tracker=MlflowTracker(env),
        max_parallel=2,
    )


def run_log_sessions(
    env: MlflowEnv,
    *,
    registry: Any = None,
    telemetry: TelemetrySource | None = None,
    runner: Runner | None = None,
    trigger: str = "manual",
    **options: Any,
) -> DetectorRun:
    """Run the pipeline end to end; ``options`` are :func:`build_pipeline`'s keywords.

    ``registry`` (a :class:`~opsloop.learn.registry.ModelRegistry`, e.g. the platform's
    audited one) and ``telemetry`` are bound for this run only; without them the steps use the
    services already bound as ``options["services"]`` (``"platform"``), else ``env``'s store.
    """
    services = options.pop("services", DEFAULT_SERVICES)
    token = None
    if registry is not None or telemetry is not None:
        base = get_services(services)
        token = f"run-{uuid.uuid4().hex}"
        bind_services(
            token, DetectorServices(registry or base.registry, telemetry or base.telemetry)
        )
        services = token
    runner = runner or default_runner(env)
    started = time.perf_counter()
    try:
        pipeline = build_pipeline(env=env, services=services, **options)
        record = runner.run(pipeline, trigger=trigger)
    finally:
        if token is not None:
            unbind_services(token)
    out = DetectorRun(record, time.perf_counter() - started)
    if not out.ok:
        return out
    decision = runner.output(record, "promote.decision")
    out.report = runner.output(record, "evaluate.report")
    out.version, out.alias = decision["version"], decision["alias"]
    out.promoted, out.reason = bool(decision["promoted"]), decision["reason"]
    return out
