"""The built-in ``detector-metric-settings`` pipeline: alarm settings per series family.

Steps (each a ``@step``; the data flows through the pipeline's artifact store)::

    load_labelled ──▶ replay ──▶ tune ──▶ evaluate ──▶ register ──▶ promote
          └──────────────┴────────┴──────────▲
    load_champion ───────────────────────────┘

* ``load_labelled``: for each series family (metric name) that operators judged, the verdicts
  on its metric anomalies mapped to anomaly times (``true_problem`` a true event, ``noise`` a
  noise event; :func:`~opsloop.learn.detectors.metric_data.label_events`) and the stored
  samples of its judged series, in ``[until - days, until]`` (default: the last 7 days), at
  most ``max_series`` series per family (those with the most verdicts). Never cached.
* ``replay``: every series through a fresh default detector, once: the calibrated score of
  each point (the alarm settings act on it and change nothing before it).
* ``tune``: per family, every setting of a small fixed grid (``alarm_p`` x ``refractory``,
  default {1e-2, 1e-3, 1e-4} x {50, 100, 300}) scored on the family's labelled events:
  ``hits - cost * false_alarms`` within ``tolerance_s`` (the objective of
  :mod:`~opsloop.learn.detectors.metric_data`); the best wins, ties to fewer alarms, then to
  the earlier grid entry. Deterministic.
* ``load_champion``: the settings behind the ``champion`` alias, if any.
* ``evaluate``: the champion's settings (the built-in defaults for a family it does not tune,
  or for all when there is no champion) scored the same way on the same data.
* ``register``: an MLflow model version (pyfunc, settings JSON) of ``opsloop-metric-settings``
  holding ``{family: settings}``: the tuned families, plus the champion's settings of families
  this data has no verdicts on (carried, so a version never silently drops a family). Tags:
  pipeline run ids, data hash, params, total and per-family scores vs the champion.
* ``promote``: alias ``champion`` if the challenger's normalised score beats the baseline's
  (champion, else built-in defaults) by more than ``margin`` (``models.promote_margin``), else
  ``challenger``; through :meth:`ModelRegistry.promote` with the reason.

**Normalised score.** ``sum(hits - cost * false_alarms) / sum(labelled events)`` over the
tuned families: at best the share of true events (every one hit, no noise event alarmed),
``1/n`` lower for each miss and ``cost/n`` lower for each false alarm. The margin is
absolute on that scale: ``0.01`` asks for one labelled event in a hundred better.

Live objects (the platform's telemetry store, state and audited registry) reach the steps
through :mod:`~opsloop.learn.detectors.bindings`: the telemetry source's ``logs.store`` and
``state``. :class:`~opsloop.services.detector_models.MetricSettingsWatcher` puts a new champion
into the running engine.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from opsloop.learn.detectors.bindings import (
    DetectorServices,
    TelemetrySource,
    bind_services,
    get_services,
    unbind_services,
)
from opsloop.learn.detectors.log_sessions import DetectorRun, default_runner
from opsloop.learn.detectors.metric_data import (
    MetricTelemetry,
    alarm_times,
    calibrated_scores,
    check_settings,
    data_hash,
    default_settings,
    label_events,
    score_alarms,
)
from opsloop.learn.mlflow_env import MlflowEnv
from opsloop.learn.pipelines import Pipeline, Runner, current_step, log_metric, step
from opsloop.store.telemetry.metrics import canonical_labels

__all__ = [
    "ACTOR",
    "GRID_ALARM_P",
    "GRID_REFRACTORY",
    "MODEL_NAME",
    "PIPELINE",
    "build_pipeline",
    "load_settings",
    "pipeline_for_settings",
    "register_settings",
    "run_metric_settings",
]

log = logging.getLogger("opsloop.learn.detectors")

PIPELINE = "detector-metric-settings"
MODEL_NAME = "opsloop-metric-settings"
ACTOR = f"pipeline:{PIPELINE}"
DEFAULT_SERVICES = "platform"
GRID_ALARM_P = (1e-2, 1e-3, 1e-4)
GRID_REFRACTORY = (50, 100, 300)


# -- registry I/O (MLflow imported inside) ----------------------------------------------------
def register_settings(
    env: MlflowEnv,
    document: Mapping[str, Any],
    model_name: str,
    run_id: str,
    tags: Mapping[str, str] | None = None,
    description: str = "",
) -> str:
    """Log the settings ``document`` as a pyfunc model in run ``run_id``, register it."""
    from opsloop.learn.detectors import metric_settings_pyfunc
    from opsloop.learn.detectors.mlflow_io import register_json_model

    families = sorted(document["settings"])
    return register_json_model(
        env, document, model_name=model_name, run_id=run_id,
        pyfunc_file=metric_settings_pyfunc.__file__,
        state_artifact=metric_settings_pyfunc.STATE_ARTIFACT,
        model_description="opsloop's metric alarm settings per series family",
        input_example=families[:1] or None, tags=tags, description=description,
    )  # fmt: skip


def load_settings(env: MlflowEnv, model_name: str, version: str) -> dict[str, Any]:
    """The settings document of a version (reads only its JSON artifact, in place if local)."""
    from opsloop.learn.detectors.mlflow_io import load_json_state

    document = load_json_state(env, model_name, version)
    document["settings"] = {f: check_settings(s) for f, s in document["settings"].items()}
    return document


def _registry(services: str, mlflow_home: str, mlflow_uri: str | None) -> Any:
    from opsloop.learn.detectors.mlflow_io import pipeline_registry

    return pipeline_registry(services, mlflow_home, mlflow_uri)


def _family_score(
    family: Mapping[str, Any], replayed: Sequence[Mapping[str, Any]], settings: Mapping[str, Any],
    tolerance_s: float, cost: float,
) -> dict[str, Any]:  # fmt: skip
    """The objective of ``settings`` on one family's replayed series and labelled events."""
    events: dict[str, list[tuple[float, int]]] = {}
    for key, t, label in family["events"]:
        events.setdefault(key, []).append((float(t), int(label)))
    total = {"true": 0, "noise": 0, "hits": 0, "misses": 0, "false_alarms": 0, "alarms": 0}
    for s in replayed:
        alarms = alarm_times(s["ts"], s["cal"], settings)
        for k, v in score_alarms(alarms, events.get(s["key"], []), tolerance_s).items():
            total[k] += v
    n = total["true"] + total["noise"]
    score = total["hits"] - cost * total["false_alarms"]
    return {**total, "n": n, "score": score, "settings": check_settings(settings)}


def _normalised(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    n = sum(e["n"] for e in entries)
    score = sum(e["score"] for e in entries)
    return {
        "score": score, "n": n, "normalised": score / n if n else 0.0,
        **{k: sum(e[k] for e in entries) for k in ("hits", "misses", "false_alarms", "alarms")},
    }  # fmt: skip


# -- steps ------------------------------------------------------------------------------------
@step(inputs=(), outputs=("data", "meta"), cache=False)
def load_labelled(
    services: str = DEFAULT_SERVICES,
    since: float | None = None,
    until: float | None = None,
    days: float = 7.0,
    max_series: int = 20,
    slack_s: float = 1.0,
) -> dict[str, Any]:
    """Per judged family: its labelled events and the samples of its judged series."""
    source = get_services(services).telemetry
    if source is None:
        raise RuntimeError(f"no telemetry bound as {services!r} (see detectors.bindings)")
    reader = MetricTelemetry(source.logs.store, source.state)
    end = float(until) if until is not None else time.time()
    start = float(since) if since is not None else end - days * 86400.0
    verdicts = reader.verdicts()
    windows = reader.windows(str(v["incident_id"]) for v in verdicts)
    events = label_events(verdicts, reader.anomalies(start - slack_s, end), windows, slack_s)
    by_family: dict[str, dict[str, list[Any]]] = {}
    for family, labels, t, label in events:
        if start <= t <= end:
            key = canonical_labels(labels)
            by_family.setdefault(family, {}).setdefault(key, []).append([t, label])
    families: dict[str, Any] = {}
    for family in sorted(by_family):
        judged = sorted(by_family[family].items(), key=lambda kv: (-len(kv[1]), kv[0]))
        series, kept = [], []
        for key, evs in judged[:max_series]:
            points = reader.points(family, json.loads(key), start, end)
            if not points:
                continue
            series.append({"key": key, "ts": [p[0] for p in points], "xs": [p[1] for p in points]})
            kept += [[key, t, label] for t, label in evs]
        if series:
            families[family] = {"series": series, "events": sorted(kept, key=lambda e: e[1])}
    meta = {
        "origin": f"telemetry[{start}, {end}]",
        "since": start,
        "until": end,
        "verdicts": len(verdicts),
        "families": len(families),
        "series": sum(len(f["series"]) for f in families.values()),
        "points": sum(len(s["ts"]) for f in families.values() for s in f["series"]),
        "events": sum(len(f["events"]) for f in families.values()),
        "data_hash": data_hash(families),
    }
    for k in ("verdicts", "families", "series", "points", "events"):
        log_metric(k, meta[k])
    log.info("loaded %d labelled events on %d families from %s", meta["events"],
             meta["families"], meta["origin"])  # fmt: skip
    return {"data": families, "meta": meta}


@step(outputs=("scores",))
def replay(data: dict[str, Any]) -> dict[str, Any]:
    """``{family: [{"key", "ts", "cal"}]}``: each series' calibrated scores, replayed once."""
    return {
        family: [{"key": s["key"], "ts": s["ts"], "cal": calibrated_scores(s["ts"], s["xs"])}
                 for s in body["series"]]
        for family, body in data.items()
    }  # fmt: skip


@step(outputs=("tuned",))
def tune(
    data: dict[str, Any],
    scores: dict[str, Any],
    grid_alarm_p: Sequence[float] = GRID_ALARM_P,
    grid_refractory: Sequence[int] = GRID_REFRACTORY,
    tolerance_s: float = 600.0,
    cost: float = 0.5,
) -> dict[str, Any]:
    """The best grid setting per family on its labelled events, and the whole grid's scores."""
    grid = [check_settings({"alarm_p": p, "refractory": r})
            for p in grid_alarm_p for r in grid_refractory]  # fmt: skip
    if not grid:
        raise ValueError("an empty grid")
    if not data:
        raise ValueError(
            "nothing to tune: no operator verdicts on metric anomalies with stored samples"
        )
    families: dict[str, Any] = {}
    for family in sorted(data):
        table = [_family_score(data[family], scores[family], g, tolerance_s, cost) for g in grid]
        best = max(range(len(table)), key=lambda i: (table[i]["score"], -table[i]["alarms"], -i))
        families[family] = {"best": table[best], "grid": table}
    settings = {f: v["best"]["settings"] for f, v in families.items()}
    totals = _normalised([v["best"] for v in families.values()])
    log_metric("tuned_normalised", totals["normalised"])
    params = {"grid_alarm_p": list(grid_alarm_p), "grid_refractory": list(grid_refractory),
              "tolerance_s": tolerance_s, "cost": cost}  # fmt: skip
    return {"settings": settings, "families": families, "totals": totals, "params": params}


@step(inputs=(), outputs=("champion",), cache=False)
def load_champion(
    model_name: str = MODEL_NAME,
    alias: str = "champion",
    services: str = DEFAULT_SERVICES,
    mlflow_home: str = "",
    mlflow_uri: str | None = None,
) -> dict[str, Any]:
    """``{"version", "settings"}`` behind ``alias`` (``version`` None, no settings if none)."""
    registry = _registry(services, mlflow_home, mlflow_uri)
    version = registry.resolve(model_name, alias)
    if version is None:
        return {"version": None, "settings": {}}
    document = load_settings(registry.env, model_name, version)
    return {"version": version, "settings": document["settings"]}


@step(outputs=("report",))
def evaluate(
    data: dict[str, Any],
    scores: dict[str, Any],
    tuned: dict[str, Any],
    champion: dict[str, Any],
    tolerance_s: float = 600.0,
    cost: float = 0.5,
) -> dict[str, Any]:
    """The tuned settings' and the champion's (or the defaults') scores on the same data."""
    old = champion.get("settings") or {}
    families: dict[str, Any] = {}
    for family in sorted(tuned["settings"]):
        base = old.get(family) or default_settings()
        families[family] = {
            "challenger": tuned["families"][family]["best"],
            "champion": _family_score(data[family], scores[family], base, tolerance_s, cost),
            "champion_tuned": family in old,
        }
    challenger = _normalised([f["challenger"] for f in families.values()])
    baseline = _normalised([f["champion"] for f in families.values()])
    baseline["version"] = champion.get("version")
    log_metric("challenger_normalised", challenger["normalised"])
    log_metric("champion_normalised", baseline["normalised"])
    carried = {f: s for f, s in old.items() if f not in tuned["settings"]}
    return {"challenger": challenger, "champion": baseline, "families": families,
            "carried": carried}  # fmt: skip


@step(outputs=("registered",), cache=False)
def register(
    tuned: dict[str, Any],
    meta: dict[str, Any],
    report: dict[str, Any],
    model_name: str = MODEL_NAME,
    services: str = DEFAULT_SERVICES,
    mlflow_home: str = "",
    mlflow_uri: str | None = None,
) -> dict[str, Any]:
    """Register ``{family: settings}`` as a version of ``model_name``, tagged with its lineage."""
    from opsloop.learn.detectors.mlflow_io import register_run

    env = _registry(services, mlflow_home, mlflow_uri).env
    client = env.client()
    ctx = current_step()
    run_id, parent, own = register_run(env, PIPELINE, client)
    new, base = report["challenger"], report["champion"]
    per_family = {
        f: {"settings": v["challenger"]["settings"], "score": v["challenger"]["score"],
            "champion_score": v["champion"]["score"], "n": v["challenger"]["n"]}
        for f, v in report["families"].items()
    }  # fmt: skip
    document = {
        "settings": {**report["carried"], **tuned["settings"]},
        "tuned": sorted(tuned["settings"]),
        "carried": sorted(report["carried"]),
        "data_hash": meta["data_hash"],
        "params": tuned["params"],
    }
    tags = {
        "opsloop.pipeline": PIPELINE,
        "opsloop.pipeline_run_id": ctx.run_id,
        "opsloop.mlflow_run_id": parent or run_id,
        "opsloop.data_hash": meta["data_hash"],
        "opsloop.source": meta["origin"],
        "opsloop.params": json.dumps(tuned["params"], sort_keys=True),
        "opsloop.eval.score": f"{new['normalised']:.6g}",
        "opsloop.eval.labelled": str(new["n"]),
        "opsloop.champion.version": str(base.get("version") or ""),
        "opsloop.champion.score": f"{base['normalised']:.6g}",
        "opsloop.families": json.dumps(per_family, sort_keys=True),
        "opsloop.carried": ",".join(sorted(report["carried"])),
    }
    version = register_settings(
        env, document, model_name, run_id, tags,
        description=f"{len(tuned['settings'])} families tuned on {new['n']} labelled events "
        f"from {meta['origin']}; score {new['normalised']:.4f} "
        f"(baseline {base['normalised']:.4f})",
    )  # fmt: skip
    if own:
        client.log_metric(run_id, "eval_score", float(new["normalised"]))
        client.set_terminated(run_id, "FINISHED")
    log.info("registered %s version %s", model_name, version)
    return {"model": model_name, "version": version, "run_id": run_id}


def decide(new: Mapping[str, Any], base: Mapping[str, Any], margin: float) -> tuple[bool, str]:
    """``(promote, reason)``: the normalised score must beat the baseline's by ``margin``.

    >>> decide({"normalised": 0.9, "n": 8}, {"normalised": 0.2, "version": None}, 0.01)
    (True, 'score 0.9000 > 0.2000 (built-in defaults) + margin 0.01 on 8 labelled events')
    >>> decide({"normalised": 0.5, "n": 8}, {"normalised": 0.5, "version": "1"}, 0.01)
    (False, 'score 0.5000 <= 0.5000 (champion v1) + margin 0.01 on 8 labelled events')
    """
    a, b = float(new["normalised"]), float(base["normalised"])
    who = f"champion v{base['version']}" if base.get("version") else "built-in defaults"
    tail = f"({who}) + margin {margin:g} on {new['n']} labelled events"
    if new["n"] and a > b + margin:
        return True, f"score {a:.4f} > {b:.4f} {tail}"
    return False, f"score {a:.4f} <= {b:.4f} {tail}"


@step(outputs=("decision",), cache=False)
def promote(
    registered: dict[str, Any],
    report: dict[str, Any],
    margin: float = 0.01,
    services: str = DEFAULT_SERVICES,
    mlflow_home: str = "",
    mlflow_uri: str | None = None,
) -> dict[str, Any]:
    """Alias ``champion`` if better than the baseline by ``margin``, else ``challenger``."""
    from opsloop.learn.detectors.mlflow_io import promote_version

    ok, reason = decide(report["challenger"], report["champion"], margin)
    evaluated = report["champion"].get("version")
    registry = _registry(services, mlflow_home, mlflow_uri)
    return promote_version(registry, registered, ok, reason, evaluated, ACTOR)


# -- assembly ---------------------------------------------------------------------------------
def build_pipeline(
    *,
    since: float | None = None,
    until: float | None = None,
    days: float = 7.0,
    max_series: int = 20,
    grid_alarm_p: Sequence[float] = GRID_ALARM_P,
    grid_refractory: Sequence[int] = GRID_REFRACTORY,
    tolerance_s: float = 600.0,
    cost: float = 0.5,
    margin: float = 0.01,
    model_name: str = MODEL_NAME,
    env: MlflowEnv | None = None,
    services: str = DEFAULT_SERVICES,
) -> Pipeline:
    """The ``detector-metric-settings`` pipeline with its params set.

    The telemetry is the one bound as ``services``; the registry too, else ``env``'s store.
    """
    mlflow = {
        "services": services,
        "mlflow_home": str(env.home) if env is not None else "",
        "mlflow_uri": env.override if env is not None else None,
    }
    objective = {"tolerance_s": float(tolerance_s), "cost": float(cost)}
    p = Pipeline(PIPELINE)
    load = p.add(
        load_labelled,
        params={"services": services, "since": since, "until": until, "days": days,
                "max_series": max_series},
    )  # fmt: skip
    rep = p.add(replay, inputs={"data": load["data"]})
    tuned = p.add(
        tune,
        inputs={"data": load["data"], "scores": rep},
        params={"grid_alarm_p": [float(x) for x in grid_alarm_p],
                "grid_refractory": [int(x) for x in grid_refractory], **objective},
    )  # fmt: skip
    champ = p.add(load_champion, params={"model_name": model_name, **mlflow})
    report = p.add(
        evaluate,
        inputs={"data": load["data"], "scores": rep, "tuned": tuned, "champion": champ},
        params=objective,
    )
    reg = p.add(
        register,
        inputs={"tuned": tuned, "meta": load["meta"], "report": report},
        params={"model_name": model_name, **mlflow},
    )
    p.add(
        promote, inputs={"registered": reg, "report": report}, params={"margin": margin, **mlflow}
    )
    return p


def pipeline_for_settings(settings: Any) -> Pipeline:
    """The platform's pipeline: its telemetry, promotion margin and MLflow store."""
    return build_pipeline(
        margin=settings.models.promote_margin,
        env=MlflowEnv(settings.home, settings.mlflow_uri),
        services=DEFAULT_SERVICES,
    )


def run_metric_settings(
    env: MlflowEnv,
    *,
    registry: Any = None,
    telemetry: TelemetrySource | None = None,
    runner: Runner | None = None,
    trigger: str = "manual",
    **options: Any,
) -> DetectorRun:
    """Run the pipeline end to end; ``options`` are :func:`build_pipeline`'s keywords.

    ``registry`` and ``telemetry`` are bound for this run only (as in
    :func:`~opsloop.learn.detectors.log_sessions.run_log_sessions`). ``DetectorRun.report``
    is the evaluate step's report.
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
        record = runner.run(build_pipeline(env=env, services=services, **options), trigger=trigger)
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
