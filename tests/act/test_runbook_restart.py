"""Restarts: runs that had not executed a step (queued, or waiting at the run's approval gate)
are resumed with the same id; anything that may have half-run becomes ``interrupted``."""

from __future__ import annotations

import doctest
import json
import time
from pathlib import Path

import pytest
import yaml
from tests.conftest import wait_for

from opsloop.act.runbooks import (
    InMemoryApprovals,
    InMemoryRunStore,
    RunbookEngine,
    RunRecord,
    RunStatus,
    SecretResolver,
    StepStatus,
    TriggerEvent,
    parse_runbook,
)
from opsloop.act.runbooks import admission as admission_mod
from opsloop.act.runbooks import records as records_mod
from opsloop.act.runbooks import triggers as triggers_mod
from opsloop.act.runbooks.records import resumable
from opsloop.roles import Role


def runbook(**doc):
    doc.setdefault("name", "t")
    return parse_runbook(yaml.safe_dump(doc, sort_keys=False), file="t.yaml")


def alert(**labels) -> TriggerEvent:
    return TriggerEvent(
        kind="alert",
        key="fp-" + str(sorted(labels.items())),
        name="DiskFull",
        labels=labels,
        annotations={"summary": "disk is full"},
        data={"score": 0.9},
    )


def gated(marker: Path, timeout_s: float = 3600.0, **extra):
    code = 'echo "$1 $2" >> "$3"'
    argv = ["sh", "-c", code, "x", "${params.who}", "${event.annotations.summary}", str(marker)]
    return runbook(
        policies={"requires_approval": {"role": "admin", "timeout_s": timeout_s}},
        parameters={"who": {"type": "string", "default": "nobody"}},
        steps=[{"shell": {"argv": argv}}],
        **extra,
    )


def logging_runbook(log: Path, seconds: str):
    argv = ["sh", "-c", 'echo "$1" >> "$2"; sleep "$3"', "x", "${event.labels.k}", str(log)]
    return runbook(steps=[{"shell": {"argv": [*argv, seconds]}}])


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def crash(old: RunbookEngine) -> InMemoryRunStore:
    """What the next process finds: the records as last saved, oldest last (so order comes
    from ``created``). The old engine's threads are stopped without reaching the new store."""
    found = InMemoryRunStore()
    for rec in reversed(old.store.all()):
        found.save(rec)
    old.engage_kill_switch("process died")
    old.join(5)
    return found


@pytest.mark.parametrize("module", [records_mod, admission_mod, triggers_mod])
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_trigger_event_round_trips_through_json():
    ev = alert(host="db1")
    assert TriggerEvent.from_dict(json.loads(json.dumps(ev.to_dict()))) == ev


def test_waiting_approval_resumes_with_same_id_and_original_deadline(tmp_path):
    clock, marker = Clock(), tmp_path / "ran"
    first = RunbookEngine(InMemoryRunStore(), approvals=InMemoryApprovals(), clock=clock)
    snap = first.start(gated(marker), alert(host="db1"), {"who": "bob"}, requested_by="bob")
    first.approvals.wait_pending()
    saved = first.store.get(snap.id)
    assert saved.status is RunStatus.WAITING_APPROVAL and resumable(saved)
    assert saved.resume["params"] == {"who": "bob"}
    assert saved.resume["event"]["annotations"] == {"summary": "disk is full"}
    assert "resume" not in saved.to_dict()  # never shown
    store = crash(first)

    clock.now += 600  # ten minutes down
    approvals = InMemoryApprovals()
    engine = RunbookEngine(store, approvals=approvals, clock=clock)
    done = engine.recover({"t": gated(marker)})
    assert done.resumed == [snap.id] and done.interrupted == [] and done.ended == []
    [req] = approvals.wait_pending()
    assert req.run_id == snap.id and req.gate == "approval" and req.role is Role.admin
    assert req.timeout_s == pytest.approx(3000.0)  # the deadline did not move
    assert any("echo" in line for line in req.summary)
    time.sleep(0.05)
    assert not marker.exists()
    assert store.get(snap.id).status is RunStatus.WAITING_APPROVAL
    approvals.decide(snap.id, "approval", True, by="alice", role=Role.admin)
    engine.join(5)
    rec = store.get(snap.id)
    assert rec.status is RunStatus.SUCCEEDED and rec.approver == "alice"
    assert rec.requested_by == "bob" and rec.params == {"who": "bob"}
    assert [s.phase for s in rec.steps] == ["gate", "steps"] and rec.steps[0].started == 1000.0
    assert marker.read_text() == "bob disk is full\n"  # the full event and the given params
    assert rec.resume is None  # dropped once steps started


def test_deadline_passed_while_down_rejects(tmp_path):
    clock, marker = Clock(), tmp_path / "ran"
    first = RunbookEngine(InMemoryRunStore(), approvals=InMemoryApprovals(), clock=clock)
    snap = first.start(gated(marker, timeout_s=60), alert(host="db1"))
    first.approvals.wait_pending()
    store = crash(first)
    clock.now += 61
    approvals = InMemoryApprovals()
    engine = RunbookEngine(store, approvals=approvals, clock=clock)
    done = engine.recover({"t": gated(marker, timeout_s=60)})
    assert done.ended == [snap.id] and done.resumed == []
    rec = store.get(snap.id)
    assert rec.status is RunStatus.REJECTED and rec.finished == 1061.0
    assert "not approved within 60s" in rec.reason and "while opsloop was stopped" in rec.reason
    assert rec.steps[0].status is StepStatus.REJECTED and rec.resume is None
    assert approvals.pending() == [] and engine.active() == []
    assert not marker.exists()


def test_queued_runs_resume_in_order_and_the_running_one_is_interrupted(tmp_path):
    clock, log = Clock(), tmp_path / "log"
    slow = logging_runbook(log, "30")
    first = RunbookEngine(InMemoryRunStore(), clock=clock, kill_grace_s=0.2)
    running = first.start(slow, alert(k="1"))
    clock.now += 1
    queued = [first.start(slow, alert(k="2"))]
    clock.now += 1
    queued.append(first.start(slow, alert(k="3")))
    assert all(q.status is RunStatus.PENDING and q.reason.startswith("queued") for q in queued)
    wait_for(lambda: first.store.get(running.id).status is RunStatus.RUNNING)
    wait_for(lambda: log.exists())
    store = crash(first)

    fast = logging_runbook(log, "0.2")
    engine = RunbookEngine(store, clock=clock)
    done = engine.recover({"t": fast})
    assert done.resumed == [q.id for q in queued] and done.interrupted == [running.id]
    assert engine.admission.running("t") == 1 and engine.admission.waiting("t") == 1
    assert store.get(queued[1].id).reason.startswith("queued")
    wait_for(lambda: all(store.get(q.id).status.final for q in queued))
    engine.join(5)
    for q in queued:
        rec = store.get(q.id)
        assert rec.status is RunStatus.SUCCEEDED and rec.reason is None and rec.resume is None
    assert log.read_text().split() == ["1", "2", "3"]  # the running one was not re-run
    gone = store.get(running.id)
    assert gone.status is RunStatus.INTERRUPTED and "not re-run" in gone.error
    assert gone.steps[0].status is StepStatus.INTERRUPTED


def test_approve_step_after_steps_ran_is_interrupted(tmp_path):
    marker = tmp_path / "count"
    rb = runbook(
        steps=[
            {"shell": {"argv": ["sh", "-c", 'echo ran >> "$1"', "x", str(marker)]}},
            {"id": "ok", "approve": {"role": "admin", "message": "go on?"}},
            {"shell": {"argv": ["sh", "-c", 'echo after >> "$1"', "x", str(marker)]}},
        ]
    )
    first = RunbookEngine(InMemoryRunStore(), approvals=InMemoryApprovals())
    snap = first.start(rb, alert(host="a"))
    first.approvals.wait_pending()
    saved = first.store.get(snap.id)
    assert saved.status is RunStatus.WAITING_APPROVAL and saved.resume is None
    assert not resumable(saved)
    store = crash(first)
    approvals = InMemoryApprovals()
    engine = RunbookEngine(store, approvals=approvals)
    assert engine.recover({"t": rb}).interrupted == [snap.id]
    rec = store.get(snap.id)
    assert rec.status is RunStatus.INTERRUPTED and "waiting_approval" in rec.error
    assert approvals.pending() == [] and marker.read_text() == "ran\n"


@pytest.mark.parametrize(
    ("case", "status", "text"),
    [
        ("deleted", RunStatus.INTERRUPTED, "no longer loaded"),
        ("disabled", RunStatus.SKIPPED, "runbook is disabled"),
        ("kill switch", RunStatus.SKIPPED, "kill switch: maintenance"),
        ("bad params", RunStatus.FAILED, "parameters:"),
    ],
)
def test_runs_that_cannot_go_on_end_with_a_clear_status(tmp_path, case, status, text):
    marker = tmp_path / "ran"
    first = RunbookEngine(InMemoryRunStore(), approvals=InMemoryApprovals())
    waiting = first.start(gated(marker), alert(host="a"), {"who": "bob"})
    first.approvals.wait_pending()
    store = crash(first)
    queued = RunRecord(
        id="q1",
        runbook="t",
        created=waiting.created + 1,
        reason="queued: busy",
        resume={"event": alert(host="b").to_dict(), "params": {"who": "carol"}},
    )
    store.save(queued)
    now = gated(marker)
    if case == "disabled":
        now = gated(marker, enabled=False)
    if case == "bad params":  # the file changed while down: "who" must now be an int
        now = runbook(
            parameters={"who": {"type": "int"}},
            policies={"requires_approval": True},
            steps=[{"shell": {"argv": ["touch", str(marker)]}}],
        )
    approvals = InMemoryApprovals()
    engine = RunbookEngine(store, approvals=approvals, record_skipped=False)
    if case == "kill switch":
        engine.engage_kill_switch("maintenance")
    done = engine.recover({} if case == "deleted" else {"t": now})
    assert done.resumed == []
    for run_id in (waiting.id, "q1"):
        rec = store.get(run_id)
        assert rec.status is status, rec
        assert text in ((rec.error or "") + (rec.reason or ""))
        assert rec.resume is None and rec.finished is not None
        assert all(s.status is not StepStatus.WAITING_APPROVAL for s in rec.steps)
    assert store.unfinished() == [] and approvals.pending() == []
    assert not marker.exists()


def test_dry_runs_and_finished_runs_keep_no_resume_payload(tmp_path):
    engine = RunbookEngine(InMemoryRunStore())
    rb = runbook(steps=[{"shell": {"argv": ["true"]}}])
    assert engine.run(rb, alert(host="a"), dry_run=True).resume is None
    rec = engine.run(rb, alert(host="a"))
    assert rec.status is RunStatus.SUCCEEDED and rec.resume is None
    assert all(r.resume is None for r in engine.store.all())


def test_resume_payload_holds_no_secret_value(tmp_path):
    secrets = SecretResolver(environ={"OPSLOOP_SECRET_TOKEN": "s3cr3t-value-42"})
    marker = tmp_path / "env"
    rb = runbook(
        policies={"requires_approval": True},
        steps=[
            {
                "shell": {
                    "argv": ["sh", "-c", 'printf %s "$TOKEN" > "$1"', "x", str(marker)],
                    "env": {"TOKEN": "${secret:TOKEN}"},
                }
            }
        ],
    )
    first = RunbookEngine(InMemoryRunStore(), approvals=InMemoryApprovals(), secrets=secrets)
    snap = first.start(rb, alert(host="a"))
    first.approvals.wait_pending()
    store = crash(first)
    assert "s3cr3t" not in json.dumps([r.resume for r in store.all()])
    approvals = InMemoryApprovals()
    engine = RunbookEngine(store, approvals=approvals, secrets=secrets)
    assert engine.recover({"t": rb}).resumed == [snap.id]
    approvals.wait_pending()
    approvals.decide(snap.id, "approval", True, by="alice", role=Role.admin)
    engine.join(5)
    rec = store.get(snap.id)
    assert rec.status is RunStatus.SUCCEEDED and marker.read_text() == "s3cr3t-value-42"
    assert "s3cr3t" not in json.dumps(rec.to_dict()) and rec.resume is None
