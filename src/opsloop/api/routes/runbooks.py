"""Runbooks: list, run (or dry-run), runs, approvals, cancel, kill switch."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from opsloop.api.auth import require
from opsloop.roles import Role
from opsloop.store.state.tokens import Principal

router = APIRouter(prefix="/api/v1", tags=["runbooks"])
Viewer = Annotated[Principal, Depends(require(Role.viewer))]
Operator = Annotated[Principal, Depends(require(Role.operator))]
Admin = Annotated[Principal, Depends(require(Role.admin))]


def _svc(request: Request) -> Any:
    return request.app.state.platform.runbooks


def _runbook_json(rb: Any) -> dict[str, Any]:
    return {
        "name": rb.name,
        "description": rb.description,
        "enabled": rb.enabled,
        "triggers": [t.model_dump(exclude_none=True) for t in rb.triggers],
        "parameters": {k: v.model_dump(exclude_none=True) for k, v in rb.parameters.items()},
        "steps": len(rb.steps),
    }


@router.get("/runbooks")
def list_runbooks(request: Request, _: Viewer) -> dict[str, Any]:
    """Loaded runbooks, files that failed validation (with line numbers), the kill switch."""
    svc = _svc(request)
    return {
        "runbooks": [_runbook_json(rb) for rb in svc.runbooks.values()],
        "errors": svc.errors,
        "kill_switch": svc.engine.kill_switch,
    }


class RunIn(BaseModel):
    """Parameters of a manual run."""

    model_config = ConfigDict(extra="forbid")
    params: dict[str, Any] = Field(default_factory=dict)
    dry_run: bool = False


@router.post("/runbooks/{name}/run", status_code=202)
async def run_runbook(
    request: Request, name: str, principal: Operator, body: RunIn | None = None
) -> dict[str, Any]:
    """Start a run (202; poll the run) or, with ``dry_run``, show exactly what would run."""
    body = body or RunIn()
    svc = _svc(request)
    try:
        rec = await asyncio.to_thread(svc.run, name, body.params, principal.actor, body.dry_run)
    except KeyError:
        raise HTTPException(404, detail=f"no runbook {name!r}") from None
    except PermissionError as exc:
        raise HTTPException(409, detail=str(exc)) from None
    request.app.state.platform.audit.record(
        principal.actor, "runbook.dry_run" if body.dry_run else "runbook.run", target=name,
        run=rec.id,
    )  # fmt: skip
    return rec.to_dict()


@router.post("/runbooks/kill-switch")
def kill_switch(request: Request, principal: Admin, engage: bool = True) -> dict[str, Any]:
    """Stop all automation at once (and cancel running runs), or allow it again."""
    svc = _svc(request)
    if engage:
        svc.engine.engage_kill_switch(f"engaged by {principal.actor}")
    else:
        svc.engine.release_kill_switch()
    request.app.state.platform.audit.record(
        principal.actor, "runbook.kill_switch", target="engaged" if engage else "released"
    )
    return {"kill_switch": svc.engine.kill_switch}


@router.get("/runbook-runs")
def list_runs(
    request: Request,
    _: Viewer,
    runbook: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Runs, newest first."""
    svc = _svc(request)
    pending = {r.run_id for r in svc.approvals.pending()}
    runs = svc.store.list(runbook, limit)
    for r in runs:
        r["awaiting_approval"] = r["id"] in pending
    return {"runs": runs}


@router.get("/runbook-runs/{run_id}")
def get_run(request: Request, run_id: str, _: Viewer) -> dict[str, Any]:
    """One run with every step's command or request, exit code, output, duration."""
    run = _svc(request).store.get(run_id)
    if run is None:
        raise HTTPException(404, detail="no such run")
    return run


def _decide(request: Request, run_id: str, principal: Principal, approved: bool) -> dict[str, Any]:
    svc = _svc(request)
    try:
        svc.decide(run_id, approved, principal.actor, principal.role)
    except KeyError:
        raise HTTPException(409, detail="this run is not waiting for an approval") from None
    except PermissionError as exc:
        raise HTTPException(403, detail=str(exc)) from None
    request.app.state.platform.audit.record(
        principal.actor, "runbook.approve" if approved else "runbook.reject", target=run_id
    )
    return {"run_id": run_id, "decision": "approved" if approved else "rejected"}


@router.post("/runbook-runs/{run_id}/approve")
def approve(request: Request, run_id: str, principal: Operator) -> dict[str, Any]:
    """Approve a run waiting at a gate (the gate's role or higher)."""
    return _decide(request, run_id, principal, True)


@router.post("/runbook-runs/{run_id}/reject")
def reject(request: Request, run_id: str, principal: Operator) -> dict[str, Any]:
    """Reject a run waiting at a gate."""
    return _decide(request, run_id, principal, False)


@router.post("/runbook-runs/{run_id}/cancel")
def cancel(request: Request, run_id: str, principal: Operator) -> dict[str, Any]:
    """Stop a run in progress."""
    if not _svc(request).engine.cancel(run_id):
        raise HTTPException(409, detail="this run is not in progress")
    request.app.state.platform.audit.record(principal.actor, "runbook.cancel", target=run_id)
    return {"run_id": run_id, "cancelled": True}
