"""Logs: ingest over HTTP, search, templates, anomalies."""

from __future__ import annotations

import json
import math
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel

from opsloop.api.auth import require
from opsloop.observe.record import MAX_LINE_BYTES, RawLine, decode_line
from opsloop.roles import Role
from opsloop.store.telemetry.logs import LogTable
from opsloop.timeparse import parse_duration, parse_time

router = APIRouter(prefix="/api/v1", tags=["logs"])
MAX_LINES_PER_REQUEST = 100_000
_NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/json")
_KNOWN_KEYS = {"message", "timestamp", "source", "level", "host"}


class Rejected(BaseModel):
    """A line that was not accepted, and why."""

    line: int
    reason: str


class IngestOut(BaseModel):
    """The answer to a log post: everything accepted is already durable."""

    accepted: int
    rejected: list[Rejected]
    first_seq: int | None
    last_seq: int | None
    new_templates: list[int]


def _times(since: str | None, until: str | None) -> tuple[float | None, float | None]:
    now = time.time()
    try:
        return (
            parse_time(since, now) if since else None,
            parse_time(until, now) if until else None,
        )
    except ValueError as exc:
        raise HTTPException(400, detail=str(exc)) from None


def _json_line(obj: Any, n: int, default_source: str, now: float) -> RawLine:
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    message = obj.get("message")
    if not isinstance(message, str) or not message.strip():
        raise ValueError("'message' must be a non-empty string")
    ts = obj.get("timestamp")
    if ts is not None:
        if isinstance(ts, bool) or not isinstance(ts, int | float | str):
            raise ValueError("'timestamp' must be epoch seconds or ISO-8601")
        if isinstance(ts, str):
            ts = parse_time(ts, now)
        elif not math.isfinite(ts):
            raise ValueError("'timestamp' must be finite")
        ts = float(ts)
    text = decode_line(message.encode("utf-8", "replace")) or ""
    extra = {k: v for k, v in obj.items() if k not in _KNOWN_KEYS}
    return RawLine(
        text=text,
        source=str(obj.get("source") or default_source)[:200],
        received_at=now,
        timestamp=ts,
        host=str(obj["host"])[:200] if obj.get("host") else None,
        level=str(obj["level"])[:20].lower() if obj.get("level") else None,
        fields=extra,
    )


@router.post("/logs", response_model=IngestOut)
async def post_logs(
    request: Request,
    _: Annotated[object, Depends(require(Role.operator))],
    source: Annotated[str, Query(max_length=200)] = "http",
) -> IngestOut:
    """Ingest log lines: plain text (one line each) or NDJSON objects with a ``message``.

    NDJSON objects may carry ``timestamp`` (epoch seconds or ISO-8601), ``source``, ``level``,
    ``host`` and any other fields. Bad lines are listed in ``rejected``; the others are stored,
    and durable when the answer arrives.
    """
    body = await request.body()
    ctype = request.headers.get("content-type", "text/plain").split(";")[0].strip().lower()
    now = time.time()
    lines: list[RawLine] = []
    rejected: list[Rejected] = []
    raw_lines = body.split(b"\n")
    if len(raw_lines) > MAX_LINES_PER_REQUEST:
        raise HTTPException(413, detail=f"at most {MAX_LINES_PER_REQUEST} lines per request")
    if ctype in _NDJSON_TYPES:
        stripped = body.strip()
        if ctype == "application/json" and stripped.startswith(b"["):
            try:
                items = json.loads(stripped)
            except ValueError as exc:
                raise HTTPException(400, detail=f"invalid JSON: {exc}") from None
            numbered = list(enumerate(items, 1))
        else:
            numbered = []
            for n, raw in enumerate(raw_lines, 1):
                if not raw.strip():
                    continue
                try:
                    numbered.append((n, json.loads(raw)))
                except ValueError as exc:
                    rejected.append(Rejected(line=n, reason=f"invalid JSON: {exc}"))
        for n, obj in numbered:
            try:
                lines.append(_json_line(obj, n, source, now))
            except ValueError as exc:
                rejected.append(Rejected(line=n, reason=str(exc)))
    elif ctype.startswith("text/") or ctype == "application/octet-stream":
        for raw in raw_lines:
            text = decode_line(raw, MAX_LINE_BYTES)
            if text is not None:
                lines.append(RawLine(text=text, source=source, received_at=now))
    else:
        raise HTTPException(415, detail="send text/plain lines or application/x-ndjson objects")
    platform = request.app.state.platform
    import asyncio

    result = await asyncio.to_thread(platform.logs.ingest, lines)
    return IngestOut(
        accepted=result.accepted,
        rejected=rejected,
        first_seq=result.first_seq,
        last_seq=result.last_seq,
        new_templates=result.new_templates,
    )


@router.get("/logs")
def search_logs(
    request: Request,
    _: Annotated[object, Depends(require(Role.viewer))],
    since: str | None = None,
    until: str | None = None,
    source: Annotated[str | None, Query(max_length=200)] = None,
    level: Annotated[str | None, Query(max_length=20)] = None,
    template_id: Annotated[int | None, Query(ge=0)] = None,
    q: Annotated[str | None, Query(max_length=500, description="text contained")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_seq: Annotated[int | None, Query(ge=1, description="page: lines older than")] = None,
) -> dict[str, Any]:
    """Stored lines, newest first, filtered; page with ``next_before_seq``."""
    t0, t1 = _times(since, until)
    platform = request.app.state.platform
    ids = platform.logs.ids_for(template_id) if template_id is not None else None
    rows = LogTable(platform.telemetry).search(
        since=t0, until=t1, source=source, level=level, template_ids=ids, text=q,
        limit=limit, before_seq=before_seq,
    )  # fmt: skip
    templates = platform.logs.templates()
    out = []
    for r in rows:
        item = r.to_json()
        live = platform.logs.resolve(r.template_id)
        item["template_id"] = live
        item["template"] = templates.get(live, "")
        out.append(item)
    return {
        "lines": out,
        "next_before_seq": rows[-1].seq if len(rows) == limit else None,
    }


def _template_rows(platform: Any, since: float | None, until: float | None) -> list[dict]:
    stats = LogTable(platform.telemetry).template_stats(since, until)
    templates = platform.logs.templates()
    merged: dict[int, dict[str, Any]] = {}
    for s in stats:
        live = platform.logs.resolve(s.template_id)
        m = merged.get(live)
        if m is None:
            merged[live] = {
                "id": live, "template": templates.get(live, ""), "count": s.count,
                "first_seen": s.first_seen, "last_seen": s.last_seen, "examples": s.examples,
            }  # fmt: skip
        else:
            m["count"] += s.count
            m["first_seen"] = min(m["first_seen"], s.first_seen)
            m["last_seen"] = max(m["last_seen"], s.last_seen)
            m["examples"] = (m["examples"] + s.examples)[:3]
    for m in merged.values():
        m["novelty"] = round(platform.logs.novelty_score(m["id"]), 4)
    return sorted(merged.values(), key=lambda m: -m["count"])


@router.get("/log-templates")
def list_templates(
    request: Request,
    _: Annotated[object, Depends(require(Role.viewer))],
    since: str | None = None,
    until: str | None = None,
    new_within: Annotated[str, Query(description="'new' = first seen within this")] = "1h",
) -> dict[str, Any]:
    """Templates with counts, first/last seen, examples and novelty; most frequent first."""
    t0, t1 = _times(since, until)
    try:
        window = parse_duration(new_within)
    except ValueError as exc:
        raise HTTPException(400, detail=str(exc)) from None
    rows = _template_rows(request.app.state.platform, t0, t1)
    now = time.time()
    for r in rows:
        r["new"] = r["first_seen"] >= now - window
    return {"templates": rows, "total": len(rows)}


@router.get("/log-templates/{template_id}")
def template_detail(
    request: Request,
    template_id: int,
    _: Annotated[object, Depends(require(Role.viewer))],
    since: str = "24h",
    step: str = "5m",
) -> dict[str, Any]:
    """One template: text, counts over time and its latest lines."""
    t0, _t1 = _times(since, None)
    try:
        dt = max(parse_duration(step), 1.0)
    except ValueError as exc:
        raise HTTPException(400, detail=str(exc)) from None
    platform = request.app.state.platform
    live = platform.logs.resolve(template_id)
    text = platform.logs.templates().get(live)
    if text is None:
        raise HTTPException(404, detail="no such template")
    ids = platform.logs.ids_for(live)
    table = LogTable(platform.telemetry)
    now = time.time()
    start = t0 if t0 is not None else now - 86400
    if (now - start) / dt > 5000:
        raise HTTPException(400, detail="too many buckets; use a larger step")
    buckets: dict[float, int] = {}
    for series in table.template_counts_over_time(ids, start, now, dt).values():
        for b, n in series:
            buckets[b] = buckets.get(b, 0) + n
    lines = table.search(template_ids=ids, limit=20)
    return {
        "id": live,
        "template": text,
        "merged_ids": [i for i in ids if i != live],
        "counts": sorted(buckets.items()),
        "lines": [r.to_json() for r in lines],
        "novelty": platform.logs.novelty_score(live),
    }


@router.get("/anomalies")
def list_anomalies(
    request: Request,
    _: Annotated[object, Depends(require(Role.viewer))],
    since: str | None = "24h",
    source: Annotated[str | None, Query(max_length=100, description="source prefix")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Anomaly records from every detector, newest first."""
    t0, _t1 = _times(since, None)
    table = LogTable(request.app.state.platform.telemetry)
    return {"anomalies": table.anomalies(since=t0, source_prefix=source, limit=limit)}
