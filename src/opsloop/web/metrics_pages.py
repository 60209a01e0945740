"""Dashboard Metrics pages: series browser, one series with scores, alarms and forecast."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from opsloop.api.auth import authenticate
from opsloop.store.telemetry.logs import LogTable
from opsloop.web.pages import page

router = APIRouter(include_in_schema=False)


@router.get("/series", response_class=HTMLResponse)
def series_page(request: Request) -> Response:
    """Every series with its latest value and anomaly score."""
    principal = authenticate(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    return page(request, "series.html", "metrics", principal=principal)


@router.get("/ui/partials/series", response_class=HTMLResponse)
def series_partial(
    request: Request, prefix: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    """The series table (htmx)."""
    if authenticate(request) is None:
        return Response(status_code=401)
    rows = request.app.state.platform.telemetry.series_overview(prefix, 1000)
    for r in rows:
        r["query"] = [("name", r["name"])] + [("label", f"{k}={v}") for k, v in r["labels"].items()]
    return page(request, "partials/series_table.html", "metrics", rows=rows)


@router.get("/series/view", response_class=HTMLResponse)
def series_view(
    request: Request,
    name: Annotated[str, Query(min_length=1, max_length=200)],
    label: Annotated[list[str], Query()] = [],  # noqa: B006
) -> Response:
    """One series: values, anomaly scores, alarms and the forecast band."""
    principal = authenticate(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    labels = dict(x.partition("=")[::2] for x in label if "=" in x)
    platform = request.app.state.platform
    threshold = platform.metrics.capacity_threshold(name)
    return page(
        request, "series_view.html", "metrics", principal=principal, name=name, labels=labels,
        threshold=threshold,
    )  # fmt: skip


@router.get("/ui/partials/findings", response_class=HTMLResponse)
def findings_partial(request: Request) -> Response:
    """Overview: anomalies of the last hour and exhaustion forecasts of the last day (htmx)."""
    if authenticate(request) is None:
        return Response(status_code=401)
    table = LogTable(request.app.state.platform.telemetry)
    now = time.time()
    recent = [a for a in table.anomalies(since=now - 3600, limit=50)
              if a["kind"] != "exhaustion_forecast"][:10]  # fmt: skip
    exhaustion = [a for a in table.anomalies(since=now - 86400, source_prefix="metrics.forecast")]
    latest: dict[str, dict] = {}
    for a in exhaustion:  # newest first: keep the latest warning per series
        latest.setdefault(a["key"], a)
    upcoming = sorted(latest.values(), key=lambda a: a["time"] + a["details"].get("eta_s", 0))
    return page(request, "partials/findings.html", "overview", recent=recent, upcoming=upcoming)
