"""Dashboard Runbooks pages: runbooks, recent runs, pending approvals, run detail."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from opsloop.api.auth import authenticate
from opsloop.roles import Role
from opsloop.web.pages import page

router = APIRouter(include_in_schema=False)


@router.get("/runbooks", response_class=HTMLResponse)
def runbooks_page(request: Request) -> Response:
    """Runbooks, pending approvals and the latest runs."""
    principal = authenticate(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    svc = request.app.state.platform.runbooks
    pending = svc.approvals.pending()
    return page(
        request, "runbooks.html", "runbooks", principal=principal,
        runbooks=list(svc.runbooks.values()), errors=svc.errors, runs=svc.store.list(limit=50),
        pending=pending, kill_switch=svc.engine.kill_switch,
        can_approve=principal.role.allows(Role.operator),
    )  # fmt: skip


@router.get("/runbooks/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str) -> Response:
    """One run: each step's command or request, status, output."""
    principal = authenticate(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    run = request.app.state.platform.runbooks.store.get(run_id)
    if run is None:
        resp = page(request, "not_found.html", "runbooks", principal=principal, what="run")
        resp.status_code = 404
        return resp
    return page(request, "runbook_run.html", "runbooks", principal=principal, run=run)


@router.post("/runbooks/{name}/start")
def start(request: Request, name: str, mode: Annotated[str, Form(max_length=10)] = "run") -> Any:
    """Run (or dry-run) a runbook by hand with its default parameters (operators)."""
    principal = authenticate(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    if not principal.role.allows(Role.operator):
        return Response("operator role required", status_code=403)
    svc = request.app.state.platform.runbooks
    dry = mode == "dry-run"
    try:
        rec = svc.run(name, {}, principal.actor, dry_run=dry)
    except KeyError:
        return Response("no such runbook", status_code=404)
    except PermissionError as exc:
        return Response(str(exc), status_code=409)
    request.app.state.platform.audit.record(
        principal.actor, "runbook.dry_run" if dry else "runbook.run", target=name, run=rec.id
    )
    return RedirectResponse(f"/runbooks/runs/{rec.id}", status_code=303)


@router.post("/runbooks/runs/{run_id}/decide")
def decide(request: Request, run_id: str, decision: Annotated[str, Form(max_length=10)]) -> Any:
    """Approve or reject from the dashboard."""
    principal = authenticate(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    svc = request.app.state.platform.runbooks
    try:
        svc.decide(run_id, decision == "approve", principal.actor, principal.role)
    except KeyError:
        return Response("this run is not waiting for an approval", status_code=409)
    except PermissionError as exc:
        return Response(str(exc), status_code=403)
    request.app.state.platform.audit.record(
        principal.actor, "runbook.approve" if decision == "approve" else "runbook.reject",
        target=run_id,
    )  # fmt: skip
    return RedirectResponse(f"/runbooks/runs/{run_id}", status_code=303)
