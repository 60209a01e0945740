"""Score a simulated run: was each fault detected, correlated into an incident, acted on?

Inputs are what the simulator wrote (its ground truth) and what opsloop answered over its API
(anomaly records, incidents, runbook runs). For each fault:

* **detected** — the first anomaly about the fault's host (or, for ``model_drift``, about the
  model) whose event time lies in ``[start, end + grace]`` (simulated time); **time to detect**
  is that anomaly's time minus the fault's start;
* **incident** — the incident holding the alert of the first such anomaly that reached the
  incident engine (severity ≥ warning), and whether its group names the fault's host or model;
* **acted on** — a runbook run that succeeded after the fault began (wall time) and whose
  trigger is about the fault's host or model.

**False alarms** are anomalies of severity ≥ warning, after a warm-up, that fall in no fault's
window on their host (or model): what an operator would have been paged for with no fault.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

GRACE_S = 300.0  # simulated seconds after a fault's end that still count as its detection


@dataclass
class FaultResult:
    """How opsloop did on one injected fault."""

    id: str
    kind: str
    target: str
    detected: bool = False
    time_to_detect_s: float | None = None
    detector: str | None = None
    evidence: str | None = None
    incident: str | None = None
    incident_group: str | None = None
    correlated: bool = False
    acted_by: list[str] = field(default_factory=list)


def _subject(a: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(host, model) an anomaly is about."""
    d = a.get("details") or {}
    labels = d.get("labels") if isinstance(d.get("labels"), Mapping) else {}
    host = labels.get("host") or d.get("host")
    model = labels.get("model") or d.get("model")
    return (str(host) if host else None, str(model) if model else None)


def _about(a: Mapping[str, Any], fault: Mapping[str, Any]) -> bool:
    host, model = _subject(a)
    if fault["kind"] == "model_drift":
        return a.get("source") == "models.monitor" and model == fault["target"]
    return host is not None and host == fault.get("host")


def _window(f: Mapping[str, Any], speed: float, wall_of: Any = None) -> tuple[float, float, bool]:
    """``(lo, hi, wall)``: when anomalies about ``f`` count as its detection.

    Logs and metrics carry the simulated event time. A served model's predictions carry none:
    the gateway stamps them on arrival (wall time), so drift is judged on the wall clock from
    when the fault was sent (``sent_at``, the simulator's wall clock at the tick that started
    it; a simulator running behind its schedule sends it late), its duration shrunk by the
    speed-up (time to detect is then scaled back to simulated seconds).
    """
    if f["kind"] == "model_drift" and wall_of is not None:
        sent = f.get("sent_at")
        lo = float(sent) if sent is not None else wall_of(f["start"])
        return lo, lo + (f["end"] - f["start"] + GRACE_S) / speed + 60.0, True
    return f["start"], f["end"] + GRACE_S, False


def _severity(a: Mapping[str, Any]) -> str:
    from opsloop.act.incidents.alert import anomaly_severity
    from opsloop.detect.anomaly import Anomaly

    return anomaly_severity(Anomaly.from_dict(dict(a))).value


def _fingerprint(a: Mapping[str, Any]) -> str:
    from opsloop.act.incidents import from_anomaly
    from opsloop.detect.anomaly import Anomaly

    return from_anomaly(Anomaly.from_dict(dict(a))).fingerprint


def _alarm(a: Mapping[str, Any]) -> bool:
    return _severity(a) in ("warning", "error", "critical")


def evaluate_run(
    ground_truth: Mapping[str, Any],
    anomalies: Sequence[Mapping[str, Any]],
    incidents: Sequence[Mapping[str, Any]],
    runbook_runs: Sequence[Mapping[str, Any]] = (),
    warmup_s: float = 300.0,
) -> dict[str, Any]:
    """Per-fault results and the false alarms of one run (JSON-able)."""
    faults = ground_truth["faults"]
    speed = float(ground_truth.get("speed") or 1.0)
    sim0, wall0 = ground_truth.get("sim_start"), ground_truth.get("wall_start")

    def wall_of(sim_t: float) -> float:
        """The wall time at which the simulator played simulated time ``sim_t``."""
        return float(wall0) + (sim_t - float(sim0)) / speed

    wall = wall_of if sim0 is not None and wall0 is not None else None
    by_fp: dict[str, Mapping[str, Any]] = {}
    for inc in incidents:
        for entry in inc.get("alerts", []):
            fp = (entry.get("alert") or {}).get("fingerprint")
            if fp:
                by_fp[fp] = inc
    results = []
    for f in faults:
        r = FaultResult(f["id"], f["kind"], f["target"])
        lo, hi, origin = _window(f, speed, wall)
        hits = sorted(
            (a for a in anomalies if _about(a, f) and lo <= float(a["time"]) <= hi),
            key=lambda a: float(a["time"]),
        )
        if hits:
            first = hits[0]
            r.detected = True
            r.time_to_detect_s = round((float(first["time"]) - lo) * (speed if origin else 1), 1)
            r.detector = f"{first['source']}.{first['kind']}"
            r.evidence = (first.get("evidence") or [""])[0]
            for a in hits:
                if not _alarm(a):
                    continue
                inc = by_fp.get(_fingerprint(a))
                if inc is not None:
                    r.incident = inc["id"]
                    r.incident_group = inc.get("group_key", "")
                    subject = f["target"] if f["kind"] == "model_drift" else f.get("host")
                    r.correlated = subject is not None and (
                        subject in (r.incident_group or "") or subject in str(inc.get("alerts"))
                    )
                    break
        sent = wall(f["start"]) if wall is not None else 0.0
        for run in runbook_runs:
            if run.get("status") != "succeeded" or float(run.get("created", 0)) < sent:
                continue
            trig = run.get("trigger") or {}
            labels = trig.get("labels") or {}
            subject = f["target"] if f["kind"] == "model_drift" else f.get("host")
            about = subject and subject in (labels.get("host"), labels.get("model"))
            if about and run["runbook"] not in r.acted_by:
                r.acted_by.append(run["runbook"])
        results.append(r)
    start = float(ground_truth.get("sim_start", 0.0)) + warmup_s
    false_alarms = []
    for a in anomalies:
        if float(a["time"]) < start or not _alarm(a):
            continue
        if any(_about(a, f) and _window(f, speed, wall)[0] <= float(a["time"])
               <= _window(f, speed, wall)[1] for f in faults):  # fmt: skip
            continue
        host, model = _subject(a)
        false_alarms.append(
            {"time": a["time"], "detector": f"{a['source']}.{a['kind']}", "host": host,
             "model": model, "evidence": (a.get("evidence") or [""])[0]}
        )  # fmt: skip
    detected = [r for r in results if r.detected]
    delays = sorted(r.time_to_detect_s for r in detected if r.time_to_detect_s is not None)
    return {
        "faults": [asdict(r) for r in results],
        "detected": len(detected),
        "correlated": sum(r.correlated for r in results),
        "acted_on": sum(bool(r.acted_by) for r in results),
        "total": len(results),
        "median_time_to_detect_s": delays[len(delays) // 2] if delays else None,
        "false_alarms": len(false_alarms),
        "false_alarm_list": false_alarms,
    }


def collect(url: str, token: str, since: str = "24h") -> dict[str, list[dict[str, Any]]]:
    """What opsloop found, over its HTTP API: anomalies, incidents, runbook runs."""
    import httpx

    h = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=h, timeout=30) as c:
        anomalies: list[dict[str, Any]] = []
        # one source at a time, so the 1,000-row page rarely cuts any of them
        for source in ("metrics", "logs", "models", "sessions"):
            r = c.get("/api/v1/anomalies", params={"since": since, "source": source, "limit": 1000})
            r.raise_for_status()
            anomalies += r.json()["anomalies"]
        incidents = c.get("/api/v1/incidents", params={"limit": 500}).json()["incidents"]
        detailed = []
        for inc in incidents:
            one = c.get(f"/api/v1/incidents/{inc['id']}")
            detailed.append(one.json() if one.status_code == 200 else inc)
        runs = c.get("/api/v1/runbook-runs", params={"limit": 1000}).json()["runs"]
    return {"anomalies": anomalies, "incidents": detailed, "runbook_runs": runs}
