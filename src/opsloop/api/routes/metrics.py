"""Metric queries over the telemetry store."""

from __future__ import annotations

import json
import math
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel

from opsloop.api.auth import require
from opsloop.roles import Role
from opsloop.services.metric_ingest import summarize
from opsloop.store.telemetry import MetricSample
from opsloop.timeparse import parse_duration, parse_time

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
    t0, t1, dt = _range(since, until, step)
    store = request.app.state.platform.telemetry
    series = store.query_metrics(name, t0, t1, dt, _labels(label))
    return QueryOut(
        name=name,
        since=t0,
        until=t1,
        step=dt,
        series=[SeriesOut(labels=s.labels, points=s.points) for s in series],
    )


@router.post("")
async def post_metrics(
    request: Request, _: Annotated[object, Depends(require(Role.operator))]
) -> dict[str, Any]:
    """Ingest samples: Prometheus text / OpenMetrics, or JSON.

    JSON is ``[{"name", "value", "timestamp"?, "labels"?}]`` or ``{"samples": [...]}``
    (``timestamp`` in epoch seconds or ISO-8601; default now). Invalid samples (NaN, infinities,
    timestamps far in the future, bad names) are listed in ``rejected`` with the reason; the rest
    are stored, and scored by the series' anomaly detector.
    """
    import asyncio

    body = await request.body()
    ctype = request.headers.get("content-type", "text/plain").split(";")[0].strip().lower()
    now = time.time()
    parse_errors: list[dict[str, str]] = []
    if ctype == "application/json":
        samples, parse_errors = _json_samples(body, now)
    elif ctype.startswith("text/") or ctype == "application/openmetrics-text":
        samples, parse_errors = _text_samples(request, body, ctype, now)
    else:
        raise HTTPException(415, detail="send Prometheus text, OpenMetrics or application/json")
    platform = request.app.state.platform
    result = await asyncio.to_thread(platform.metrics.ingest, samples)
    out = summarize(result)
    out["rejected"] = parse_errors + out["rejected"]
    return out


def _json_samples(body: bytes, now: float) -> tuple[list[MetricSample], list[dict[str, str]]]:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise HTTPException(400, detail=f"invalid JSON: {exc}") from None
    items = data.get("samples") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise HTTPException(400, detail="expected a list of samples or {'samples': [...]}")
    samples, errors = [], []
    for i, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise ValueError("expected an object")
            unknown = set(item) - {"name", "value", "timestamp", "labels"}
            if unknown:
                raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
            name, value = item.get("name"), item.get("value")
            if not isinstance(name, str):
                raise ValueError("'name' must be a string")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError("'value' must be a number")
            ts = item.get("timestamp", now)
            if isinstance(ts, str):
                ts = parse_time(ts, now)
            if isinstance(ts, bool) or not isinstance(ts, int | float):
                raise ValueError("'timestamp' must be epoch seconds or ISO-8601")
            labels = item.get("labels") or {}
            if not isinstance(labels, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
            ):
                raise ValueError("'labels' must map strings to strings")
            samples.append(MetricSample(name, float(value), float(ts), labels))
        except ValueError as exc:
            errors.append({"sample": f"#{i}", "reason": str(exc)})
    return samples, errors


def _text_samples(
    request: Request, body: bytes, ctype: str, now: float
) -> tuple[list[MetricSample], list[dict[str, str]]]:
    from opsloop.observe.prom_text import parse

    text = body.decode("utf-8", errors="replace")
    openmetrics = True if ctype == "application/openmetrics-text" else None
    result = parse(text, openmetrics=openmetrics)
    rates = request.app.state.counter_rates
    samples, counters = [], []
    for ps in result.samples:
        s = MetricSample(ps.name, ps.value, now if ps.timestamp_s is None else ps.timestamp_s,
                         dict(ps.labels))  # fmt: skip
        samples.append(s)
        if ps.family_type == "counter" and not ps.name.endswith("_created"):
            counters.append(s)
    samples += rates.update_many(counters)
    errors = [{"sample": f"line {e.line_no}", "reason": e.reason} for e in result.errors]
    return samples, errors


@router.get("/series")
def series(
    request: Request,
    _: Annotated[object, Depends(require(Role.viewer))],
    prefix: Annotated[str, Query(max_length=200)] = "",
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> dict[str, Any]:
    """Every series with its last value, last anomaly score and number of alarms."""
    rows = request.app.state.platform.telemetry.series_overview(prefix, limit)
    return {"series": rows}


@router.get("/scores", response_model=QueryOut)
def scores(
    request: Request,
    _: Annotated[object, Depends(require(Role.viewer))],
    name: Annotated[str, Query(min_length=1, max_length=200)],
    since: str = "1h",
    until: str | None = None,
    step: str = "1m",
    label: Annotated[list[str], Query()] = [],  # noqa: B006
) -> QueryOut:
    """Anomaly scores in [0, 1] (maximum per ``step``) of the series named ``name``."""
    t0, t1, dt = _range(since, until, step)
    store = request.app.state.platform.telemetry
    found = store.query_scores(name, t0, t1, dt, _labels(label))
    out = [SeriesOut(labels=s.labels, points=s.points) for s in found]
    return QueryOut(name=name, since=t0, until=t1, step=dt, series=out)


@router.get("/alarms")
def alarms(
    request: Request,
    _: Annotated[object, Depends(require(Role.viewer))],
    name: Annotated[str, Query(min_length=1, max_length=200)],
    since: str = "24h",
    label: Annotated[list[str], Query()] = [],  # noqa: B006
) -> dict[str, Any]:
    """Alarms raised on the series named ``name``: ``[labels, time, score]``."""
    t0, t1, _ = _range(since, None, "1m")
    rows = request.app.state.platform.telemetry.alarms(name, t0, t1, _labels(label))
    return {"alarms": [{"labels": lab, "time": t, "score": s} for lab, t, s in rows]}


@router.get("/forecast")
def forecast(
    request: Request,
    _: Annotated[object, Depends(require(Role.viewer))],
    name: Annotated[str, Query(min_length=1, max_length=200)],
    label: Annotated[list[str], Query()] = [],  # noqa: B006
    threshold: float | None = None,
    horizon: str = "7d",
    direction: Literal["up", "down"] | None = None,
) -> dict[str, Any]:
    """Forecast of one series (exact labels) with a 90 % band, and when it crosses ``threshold``
    (rising to it, or falling to it with ``direction=down``; by default the direction of the
    capacity rule matching the name, else up). When the crossing was read from the last
    hour's pace (``eta_source`` ``"recent"``), ``recent_band`` holds that pace's forecast and
    band up to past the crossing (else it is empty)."""
    from opsloop.services.metric_ingest import build_forecaster, forecast_band, recent_band

    labels = _labels(label)
    try:
        horizon_s = parse_duration(horizon)
    except ValueError as exc:
        raise HTTPException(400, detail=str(exc)) from None
    if threshold is not None and not math.isfinite(threshold):
        raise HTTPException(400, detail="threshold must be finite")
    platform = request.app.state.platform
    if direction is None:
        rule = platform.metrics.capacity_rule(name)
        direction = "down" if rule is not None and rule[1] else "up"
    falling = direction == "down"
    f = platform.metrics.forecaster(name, labels)
    now = time.time()
    if f is None or f.falling != falling:
        points = platform.telemetry.series_points(name, labels, now - 14 * 86400, now)
        if len(points) < 3:
            raise HTTPException(404, detail="not enough samples of that exact series")
        f = build_forecaster(points, falling)
    out: dict[str, Any] = {
        "name": name,
        "labels": labels,
        "band": [list(p) for p in forecast_band(f, now, horizon_s)],
        "threshold": threshold,
        "direction": direction,
        "eta": None,
        # the last hour's pace, when the ETA was read from it: drawn to past the crossing
        "recent_band": [],
    }
    if threshold is not None:
        eta = f.time_to_threshold(threshold, now=now)
        if math.isfinite(eta.seconds) and eta.seconds <= horizon_s:
            out["eta"] = now + eta.seconds
            out["eta_low"] = now + eta.low
            out["eta_high"] = now + eta.high if math.isfinite(eta.high) else None
            out["eta_source"] = eta.source  # "trend", or "recent": the last hour's pace
            if eta.source == "recent":
                until = now + min(horizon_s, max(1.5 * eta.seconds, 600.0))
                out["recent_band"] = [list(p) for p in recent_band(f, now, until)]
    return out


def _range(since: str, until: str | None, step: str) -> tuple[float, float, float]:
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
    return t0, t1, dt


@router.get("/names")
def names(request: Request, _: Annotated[object, Depends(require(Role.viewer))]) -> list[str]:
    """Every metric name in the store."""
    return request.app.state.platform.telemetry.metric_names()
