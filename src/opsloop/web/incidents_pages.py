"""Dashboard Incidents pages: live list, detail with timeline and evidence, silence editor."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from opsloop.api.auth import authenticate
from opsloop.roles import Role
from opsloop.services.incidents import NotFound, incident_json
from opsloop.web.pages import page

router = APIRouter(include_in_schema=False)


def _who(request: Request) -> Any:
    return authenticate(request)


def _operator(request: Request) -> tuple[Any, Response | None]:
    """The caller if an operator; else the answer to send (login redirect or 403)."""
    principal = _who(request)
    if principal is None:
        return None, RedirectResponse("/login", status_code=303)
    if not principal.role.allows(Role.operator):
        return None, Response("operator role required", status_code=403)
    return principal, None


@router.get("/incidents", response_class=HTMLResponse)
def incidents_page(request: Request) -> Response:
    """The incident list (refreshed live by htmx)."""
    principal = _who(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    return page(request, "incidents.html", "incidents", principal=principal)


@router.get("/ui/partials/incidents", response_class=HTMLResponse)
def incidents_partial(
    request: Request, status: Annotated[str, Query(max_length=20)] = ""
) -> Response:
    """The incident table (htmx)."""
    if _who(request) is None:
        return Response(status_code=401)
    st = status if status in ("open", "acknowledged", "resolved") else None
    items, total = request.app.state.platform.incidents.list(status=st, limit=100)
    rows = [incident_json(i) for i in items]
    return page(request, "partials/incident_rows.html", "incidents", rows=rows, total=total)


@router.get("/incidents/{incident_id}", response_class=HTMLResponse)
def incident_page(request: Request, incident_id: str) -> Response:
    """One incident: its alerts with reasons, the timeline, evidence and actions."""
    principal = _who(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    svc = request.app.state.platform.incidents
    try:
        inc = svc.get(incident_id)
    except NotFound:
        resp = page(request, "not_found.html", "incidents", principal=principal, what="incident")
        resp.status_code = 404
        return resp
    data = incident_json(inc)
    evidence = []
    for entry in data["alerts"]:
        alert = entry["alert"]
        labels = alert.get("labels", {})
        item = {"alert": alert, "reasons": inc.reasons(alert["fingerprint"])}
        metric = labels.get("metric")
        if metric:
            item["metric"] = {
                "name": metric,
                "labels": {k: v for k, v in labels.items()
                           if k not in ("alertname", "metric", "severity", "key")},
            }  # fmt: skip
        if alert.get("source", "").startswith("opsloop:logs") and labels.get("key", "").isdigit():
            item["lines"] = _lines_near(request, int(labels["key"]), alert["starts_at"])
        evidence.append(item)
    can_act = principal.role.allows(Role.operator)
    return page(
        request, "incident.html", "incidents", principal=principal, inc=data, evidence=evidence,
        timeline=svc.timeline(incident_id), deliveries=svc.deliveries(incident_id),
        can_act=can_act,
    )  # fmt: skip


def _lines_near(request: Request, template_id: int, at: float) -> list[Any]:
    """The template's lines in the ten minutes up to a signal (the log evidence)."""
    from opsloop.store.telemetry.logs import LogTable

    platform = request.app.state.platform
    ids = platform.logs.ids_for(template_id)
    return LogTable(platform.telemetry).search(
        since=at - 600, until=at + 60, template_ids=ids, limit=5
    )


@router.post("/incidents/{incident_id}/action")
def incident_action(
    request: Request,
    incident_id: str,
    action: Annotated[str, Form(max_length=20)],
    text: Annotated[str, Form(max_length=10_000)] = "",
) -> Response:
    """Acknowledge, resolve, add a note or give feedback from the dashboard (operators)."""
    principal, refused = _operator(request)
    if refused is not None:
        return refused
    svc = request.app.state.platform.incidents
    try:
        if action == "ack":
            svc.acknowledge(incident_id, principal.actor)
        elif action == "resolve":
            svc.resolve(incident_id, principal.actor, text)
        elif action == "note" and text.strip():
            svc.note(incident_id, principal.actor, text.strip())
        elif action in ("true_problem", "noise", "duplicate"):
            svc.feedback(incident_id, principal.actor, action)
    except (NotFound, ValueError) as exc:
        return Response(str(exc), status_code=400)
    return RedirectResponse(f"/incidents/{incident_id}", status_code=303)


@router.get("/silences", response_class=HTMLResponse)
def silences_page(request: Request) -> Response:
    """Silences and a form to add one."""
    principal = _who(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    now = time.time()
    silences = [
        {**s.to_dict(), "state": str(getattr(s.state(now), "value", s.state(now)))}
        for s in request.app.state.platform.incidents.silences()
    ]
    silences.sort(key=lambda s: (s["state"] != "active", -s["ends_at"]))
    return page(request, "silences.html", "silences", principal=principal, silences=silences,
                error=request.query_params.get("error"))  # fmt: skip


@router.post("/silences")
def silences_add(
    request: Request,
    matchers: Annotated[str, Form(max_length=2000)],
    hours: Annotated[float, Form(gt=0, le=24 * 365)] = 2.0,
    comment: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Create a silence from the editor."""
    from urllib.parse import quote

    principal, refused = _operator(request)
    if refused is not None:
        return refused
    now = time.time()
    try:
        request.app.state.platform.incidents.add_silence(
            matchers, now, now + hours * 3600, principal.actor, comment
        )
    except ValueError as exc:
        return RedirectResponse(f"/silences?error={quote(str(exc))}", status_code=303)
    return RedirectResponse("/silences", status_code=303)


@router.post("/silences/{silence_id}/expire")
def silences_expire(request: Request, silence_id: str) -> Response:
    """End a silence from the editor."""
    principal, refused = _operator(request)
    if refused is not None:
        return refused
    try:
        request.app.state.platform.incidents.expire_silence(silence_id, principal.actor)
    except NotFound:
        return Response("no such silence", status_code=404)
    return RedirectResponse("/silences", status_code=303)
