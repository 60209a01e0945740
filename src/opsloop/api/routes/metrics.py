"""Metric queries over the telemetry store."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel

from opsloop.api.auth import require
from opsloop.api.timeparse import parse_duration, parse_time
from opsloop.roles import Role

router = APIRouter(prefix="/api/v1/metrics", tags=["metrics"])
MAX_POINTS = 11_000


class SeriesOut(BaseModel):
    """One series: labels and ``[time, value]`` points (epoch seconds)."""

    labels: dict[str, str]
    points: list[tuple[float, float]]


class QueryOut(BaseModel):
    """The answer to a metric query."""

    name: str
    since: float
    until: float
    step: float
    series: list[SeriesOut]


def _labels(matchers: list[str]) -> dict[str, str]:
    out = {}
    for m in matchers:
        key, sep, value = m.partition("=")
        if not sep or not key:
            raise HTTPException(400, detail=f"label filter must be key=value, got {m!r}")
        out[key] = value
    return out


@router.get("/query", response_model=QueryOut)
def query(
    request: Request,
    _: Annotated[object, Depends(require(Role.viewer))],
    name: Annotated[str, Query(min_length=1, max_length=200)],
    since: Annotated[str, Query(description="epoch s, ISO-8601, or ago like 1h")] = "1h",
    until: Annotated[str | None, Query()] = None,
    step: Annotated[str, Query(description="bucket width, e.g. 10s, 1m")] = "1m",
    label: Annotated[list[str], Query(description="filter key=value, repeatable")] = [],  # noqa: B006
) -> QueryOut:
    """Series named ``name`` from ``since`` to ``until`` (default now), averaged per ``step``."""
    now = time.time()
    try:
        t0 = parse_time(since, now)
        t1 = parse_time(until, now) if until else now
        dt = parse_duration(step)
    except ValueError as exc:
        raise HTTPException(400, detail=str(exc)) from None
    if dt < 1:
        raise HTTPException(400, detail="step must be at least 1s")
    if t1 <= t0:
        raise HTTPException(400, detail="'until' must be after 'since'")
    if (t1 - t0) / dt > MAX_POINTS:
        raise HTTPException(400, detail=f"too many points; at most {MAX_POINTS} per series")
    store = request.app.state.platform.telemetry
    series = store.query_metrics(name, t0, t1, dt, _labels(label))
    return QueryOut(
        name=name,
        since=t0,
        until=t1,
        step=dt,
        series=[SeriesOut(labels=s.labels, points=s.points) for s in series],
    )


@router.get("/names")
def names(request: Request, _: Annotated[object, Depends(require(Role.viewer))]) -> list[str]:
    """Every metric name in the store."""
    return request.app.state.platform.telemetry.metric_names()
