"""Dashboard Pipelines pages: the catalogue, one pipeline's DAG and runs, one run step by step.

Lists of runs refresh themselves (htmx polling a partial) only while a run is pending or
running; operators start runs with a plain POST form (the session cookie is SameSite=Strict
and :func:`opsloop.api.auth.authenticate` refuses cross-origin POSTs).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from opsloop.api.auth import authenticate
from opsloop.roles import Role
from opsloop.web.pages import page

router = APIRouter(include_in_schema=False)

ACTIVE = ("pending", "running")
EXPECT_S = 120  # how long a list keeps polling for a run just started that is not saved yet
POLL_S = 2


def _stamp(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def dag_layers(steps: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Steps grouped into topological layers: each one layer right of its deepest upstream.

    >>> s = [{"name": "a", "upstream": []}, {"name": "b", "upstream": ["a"]},
    ...      {"name": "c", "upstream": []}, {"name": "d", "upstream": ["b", "c"]}]
    >>> [[x["name"] for x in layer] for layer in dag_layers(s)]
    [['a', 'c'], ['b'], ['d']]
    """
    names = {s["name"] for s in steps}
    depth = {s["name"]: 0 for s in steps}
    for _ in range(len(steps)):  # longest path; at most len(steps) passes in a DAG
        changed = False
        for s in steps:
            want = max((depth[u] + 1 for u in s["upstream"] if u in names), default=0)
            if want != depth[s["name"]]:
                depth[s["name"]], changed = want, True
        if not changed:
            break
    layers: list[list[dict[str, Any]]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for s in steps:
        layers[depth[s["name"]]].append(s)
    return layers


def run_row(record: Any) -> dict[str, Any]:
    """One run as a row of a runs table (summary plus epoch times and cache counts)."""
    from opsloop.services.pipeline_runs import run_summary

    summary = run_summary(record)
    return {
        **summary,
        "created": _stamp(record.created_at),
        "started": _stamp(record.started_at),
        "cached": len(summary["cached_steps"]),
        "total_steps": len(record.steps),
        "active": summary["status"] in ACTIVE,
    }


def step_view(step: Any) -> dict[str, Any]:
    """One step of a run, ready for the template."""
    attempts = [
        {
            "number": a.number,
            "error": a.error,
            "timed_out": a.timed_out,
            "retry_in": a.retry_in,
            "duration_s": _seconds(a.started_at, a.finished_at),
        }
        for a in step.attempts
    ]
    return {
        "name": step.name,
        "status": step.status.value,
        "reused": step.status.value in ("cached", "resumed"),
        "reused_from": step.reused_from,
        "started": _stamp(step.started_at),
        "duration_s": _seconds(step.started_at, step.finished_at),
        "attempts": attempts,
        "retries": max(len(attempts) - 1, 0),
        "params": step.params,
        "inputs": step.inputs,
        "outputs": step.outputs,
        "metrics": step.metrics,
        "logs": "\n".join(step.logs),
        "error": step.error,
        "cache_key": step.cache_key,
        "code_hash": step.code_hash,
        "tracker_run_id": step.tracker_run_id,
    }


def mlflow_run_url(request: Request, run_id: str | None) -> str | None:
    """A link to the MLflow UI for ``run_id`` when MLflow runs as a server, else ``None``."""
    uri = request.app.state.platform.settings.mlflow_uri or ""
    if not run_id or not uri.startswith(("http://", "https://")):
        return None
    return f"{uri.rstrip('/')}/#/runs/{run_id}"


def schedules(svc: Any, name: str) -> list[dict[str, Any]]:
    """The pipeline's schedules, with ``next_at`` (epoch seconds) for the ``ts`` filter."""
    out = []
    for s in svc.schedules_of(name):
        nxt = s.get("next_run")
        out.append({**s, "next_at": datetime.fromisoformat(nxt).timestamp() if nxt else None})
    return out


def _dag(svc: Any, name: str) -> tuple[list[dict[str, Any]], str | None]:
    """The pipeline's steps (DAG) and the reason it cannot be built, if any."""
    from opsloop.services.pipelines import PipelineNotFound

    try:
        described = svc.describe(name)
    except PipelineNotFound:
        return [], "this pipeline is no longer in the catalogue"
    return described["steps"], described["error"]


def _runs_context(
    svc: Any, pipeline: str | None, expect: str | None, until: float | None
) -> dict[str, Any]:
    """The rows of a runs list and whether the list must keep polling."""
    rows = [run_row(r) for r in svc.runs.recent(pipeline or None, limit=50)]
    waiting = (
        bool(expect)
        and until is not None
        and time.time() < until
        and all(r["id"] != expect for r in rows)
    )
    return {
        "rows": rows,
        "poll": waiting or any(r["active"] for r in rows),
        "filter_pipeline": pipeline or "",
        "expect": expect if waiting else "",
        "until": until if waiting else "",
        "poll_s": POLL_S,
    }


def _missing(request: Request, principal: Any, what: str) -> Response:
    resp = page(request, "not_found.html", "pipelines", principal=principal, what=what)
    resp.status_code = 404
    return resp


@router.get("/pipelines", response_class=HTMLResponse)
def pipelines_page(request: Request, started: str | None = Query(None, max_length=64)) -> Response:
    """The catalogue (schedules, last run, Run button) and the latest runs of every pipeline."""
    principal = authenticate(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    svc = request.app.state.platform.pipelines
    catalogue = []
    for name, entry in svc.catalog().items():
        latest = svc.runs.recent(name, limit=1)
        catalogue.append(
            {
                "name": name,
                "source": entry.source,
                "description": entry.description,
                "error": entry.error,
                "schedules": schedules(svc, name),
                "last_run": run_row(latest[0]) if latest else None,
            }
        )
    until = time.time() + EXPECT_S if started else None
    return page(
        request, "pipelines.html", "pipelines", principal=principal, catalogue=catalogue,
        folders=[str(f) for f in svc.folders()], can_run=principal.role.allows(Role.operator),
        **_runs_context(svc, None, started, until),
    )  # fmt: skip


@router.get("/pipelines/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str) -> Response:
    """One run: DAG coloured by step status, then each step's attempts, logs and outputs."""
    principal = authenticate(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    ctx = _run_context(request, run_id)
    if ctx is None:
        return _missing(request, principal, "pipeline run")
    return page(request, "pipeline_run.html", "pipelines", principal=principal, **ctx)


@router.get("/ui/partials/pipeline-runs/{run_id}", response_class=HTMLResponse)
def run_partial(request: Request, run_id: str) -> Response:
    """The live body of a run page (htmx, polled while the run is pending or running)."""
    if authenticate(request) is None:
        return Response(status_code=401)
    ctx = _run_context(request, run_id)
    if ctx is None:
        return Response("no such pipeline run", status_code=404)
    return page(request, "partials/pipeline_run_body.html", "pipelines", **ctx)


def _run_context(request: Request, run_id: str) -> dict[str, Any] | None:
    svc = request.app.state.platform.pipelines
    record = svc.runs.get(run_id)
    if record is None:
        return None
    steps, _ = _dag(svc, record.pipeline)
    if {s["name"] for s in steps} != set(record.steps):
        steps = []  # the pipeline changed since this run: its DAG would mislead
    return {
        "run": run_row(record),
        "record": record,
        "steps": [step_view(s) for s in record.steps.values()],
        "layers": dag_layers(steps),
        "statuses": {n: s.status.value for n, s in record.steps.items()},
        "link_steps": True,
        "mlflow_url": mlflow_run_url(request, record.tracker_run_id),
        "mlflow_embedded": not (request.app.state.platform.settings.mlflow_uri or ""),
        "poll_s": POLL_S,
    }


@router.get("/pipelines/{name}", response_class=HTMLResponse)
def pipeline_page(
    request: Request, name: str, started: str | None = Query(None, max_length=64)
) -> Response:
    """One pipeline: its DAG (coloured by the latest run), steps, schedules and runs."""
    principal = authenticate(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    return _render_pipeline(request, principal, name, started=started)


def _render_pipeline(
    request: Request,
    principal: Any,
    name: str,
    *,
    started: str | None = None,
    run_error: str | None = None,
    status: int = 200,
) -> Response:
    from opsloop.services.pipelines import PipelineNotFound

    svc = request.app.state.platform.pipelines
    try:
        described = svc.describe(name)
    except PipelineNotFound:
        return _missing(request, principal, "pipeline")
    described["schedules"] = schedules(svc, name)
    latest = svc.runs.recent(name, limit=1)
    statuses = {n: s.status.value for n, s in latest[0].steps.items()} if latest else {}
    until = time.time() + EXPECT_S if started else None
    resp = page(
        request, "pipeline.html", "pipelines", principal=principal, pipeline=described,
        layers=dag_layers(described["steps"]), statuses=statuses, link_steps=False,
        latest=run_row(latest[0]) if latest else None, run_error=run_error,
        can_run=principal.role.allows(Role.operator),
        **_runs_context(svc, name, started, until),
    )  # fmt: skip
    resp.status_code = status
    return resp


@router.get("/ui/partials/pipeline-runs", response_class=HTMLResponse)
def runs_partial(
    request: Request,
    pipeline: str = Query("", max_length=200),
    expect: str = Query("", max_length=64),
    until: float | None = None,
) -> Response:
    """The runs table (htmx; it keeps polling itself while a run is active or expected)."""
    if authenticate(request) is None:
        return Response(status_code=401)
    svc = request.app.state.platform.pipelines
    ctx = _runs_context(svc, pipeline or None, expect or None, until)
    return page(request, "partials/pipeline_runs.html", "pipelines", **ctx)


@router.post("/pipelines/{name}/run")
def start_run(request: Request, name: str) -> Response:
    """Start a run with the pipeline's default parameters (operators); audited."""
    from opsloop.learn.pipelines import PipelineError, SpecError
    from opsloop.services.pipelines import PipelineNotFound

    principal = authenticate(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    if not principal.role.allows(Role.operator):
        return Response("operator role required", status_code=403)
    platform = request.app.state.platform
    try:
        run_id = platform.pipelines.start(name, {}, trigger=f"dashboard:{principal.actor}")
    except PipelineNotFound:
        return Response("no such pipeline", status_code=404)
    except (SpecError, PipelineError, ValueError) as exc:
        message = f"This pipeline cannot run: {exc}"
        return _render_pipeline(request, principal, name, run_error=message, status=422)
    platform.audit.record(principal.actor, "pipeline.run", target=name, run=run_id)
    return RedirectResponse(f"/pipelines/{quote(name, safe='')}?started={run_id}", status_code=303)
