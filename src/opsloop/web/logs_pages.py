"""Dashboard Logs pages: template explorer, search, template drill-down."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from opsloop.api.auth import authenticate
from opsloop.store.telemetry.logs import LogTable
from opsloop.timeparse import parse_time
from opsloop.web.pages import page

router = APIRouter(include_in_schema=False)
NEW_WITHIN_S = 3600.0


@router.get("/logs", response_class=HTMLResponse)
def logs_page(request: Request) -> Response:
    """Template explorer and search."""
    principal = authenticate(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    return page(request, "logs.html", "logs", principal=principal)


@router.get("/ui/partials/log-templates", response_class=HTMLResponse)
def templates_partial(request: Request, since: str = "24h") -> Response:
    """The templates table (htmx)."""
    from opsloop.api.routes.logs import _template_rows

    if authenticate(request) is None:
        return Response(status_code=401)
    try:
        t0 = parse_time(since)
    except ValueError:
        t0 = time.time() - 86400
    rows = _template_rows(request.app.state.platform, t0, None)
    now = time.time()
    for r in rows:
        r["new"] = r["first_seen"] >= now - NEW_WITHIN_S
    return page(request, "partials/log_templates.html", "logs", rows=rows[:200], total=len(rows))


@router.get("/ui/partials/log-lines", response_class=HTMLResponse)
def lines_partial(
    request: Request,
    q: Annotated[str | None, Query(max_length=500)] = None,
    level: Annotated[str | None, Query(max_length=20)] = None,
    template_id: Annotated[str | None, Query(max_length=12)] = None,
) -> Response:
    """Search results (htmx)."""
    if authenticate(request) is None:
        return Response(status_code=401)
    platform = request.app.state.platform
    tid = int(template_id) if template_id and template_id.isdigit() else None
    ids = platform.logs.ids_for(tid) if tid is not None else None
    rows = LogTable(platform.telemetry).search(
        level=level or None, template_ids=ids, text=q or None, limit=200
    )
    return page(request, "partials/log_lines.html", "logs", lines=rows)


@router.get("/logs/templates/{template_id}", response_class=HTMLResponse)
def template_page(request: Request, template_id: int) -> Response:
    """One template: its counts over time and its lines."""
    principal = authenticate(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    platform = request.app.state.platform
    live = platform.logs.resolve(template_id)
    text = platform.logs.templates().get(live)
    if text is None:
        resp = page(request, "not_found.html", "logs", principal=principal, what="template")
        resp.status_code = 404
        return resp
    lines = LogTable(platform.telemetry).search(template_ids=platform.logs.ids_for(live), limit=50)
    return page(
        request, "log_template.html", "logs", principal=principal, template_id=live,
        template=text, lines=lines, novelty=platform.logs.novelty_score(live),
    )  # fmt: skip
