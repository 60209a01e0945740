"""Pipelines: the catalogue, runs (start, list, one run with steps, logs and lineage)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from opsloop.api.auth import require
from opsloop.roles import Role
from opsloop.store.state.tokens import Principal

router = APIRouter(prefix="/api/v1", tags=["pipelines"])
Viewer = Annotated[Principal, Depends(require(Role.viewer))]
Operator = Annotated[Principal, Depends(require(Role.operator))]


def _svc(request: Request) -> Any:
    return request.app.state.platform.pipelines


@router.get("/pipelines")
def list_pipelines(request: Request, _: Viewer) -> dict[str, Any]:
    """Every pipeline (built-in and YAML), its schedules and its latest run."""
    from opsloop.services.pipeline_runs import run_summary

    svc = _svc(request)
    out = []
    for name, entry in svc.catalog().items():
        latest = svc.runs.recent(name, limit=1)
        out.append(
            {
                "name": name,
                "source": entry.source,
                "description": entry.description,
                "error": entry.error,
                "schedules": svc.schedules_of(name),
                "last_run": run_summary(latest[0]) if latest else None,
            }
        )
    return {"pipelines": out}


@router.get("/pipelines/{name}")
def get_pipeline(request: Request, name: str, _: Viewer) -> dict[str, Any]:
    """One pipeline with its DAG (steps, inputs, outputs, params) and schedules."""
    from opsloop.services.pipelines import PipelineNotFound

    try:
        return _svc(request).describe(name)
    except PipelineNotFound:
        raise HTTPException(404, detail=f"no pipeline {name!r}") from None


class PipelineRunIn(BaseModel):
    """Param overrides per step, and optionally a run to resume."""

    model_config = ConfigDict(extra="forbid")
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    resume_from: str | None = None


@router.post("/pipelines/{name}/run", status_code=202)
def run_pipeline(
    request: Request, name: str, principal: Operator, body: PipelineRunIn | None = None
) -> dict[str, Any]:
    """Start a run in the background (202); poll ``/pipeline-runs/{id}``."""
    from opsloop.learn.pipelines import PipelineError, SpecError
    from opsloop.services.pipelines import PipelineNotFound

    body = body or PipelineRunIn()
    platform = request.app.state.platform
    try:
        run_id = _svc(request).start(
            name, body.params, trigger=f"api:{principal.actor}", resume_from=body.resume_from
        )
    except PipelineNotFound:
        raise HTTPException(404, detail=f"no pipeline {name!r}") from None
    except (SpecError, PipelineError, ValueError) as exc:
        raise HTTPException(422, detail=str(exc)) from None
    platform.audit.record(principal.actor, "pipeline.run", target=name, run=run_id)
    return {"id": run_id, "pipeline": name, "status": "pending"}


@router.get("/pipeline-runs")
def list_runs(
    request: Request,
    _: Viewer,
    pipeline: str | None = None,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    """Runs, newest first: status, timing, trigger, which steps were cached."""
    from opsloop.services.pipeline_runs import run_summary

    runs = _svc(request).runs.recent(pipeline, limit=limit, status=status)
    return {"runs": [run_summary(r) for r in runs]}


@router.get("/pipeline-runs/{run_id}")
def get_run(request: Request, run_id: str, _: Viewer) -> dict[str, Any]:
    """One run whole: steps (status, attempts, logs, metrics, cache hits), lineage."""
    from opsloop.services.pipeline_runs import run_summary

    record = _svc(request).runs.get(run_id)
    if record is None:
        raise HTTPException(404, detail=f"no pipeline run {run_id!r}")
    return {**record.model_dump(mode="json"), "summary": run_summary(record)}
