"""The runbook service across a restart, on a real state store (SQLite, and PostgreSQL when
configured): a run waiting for approval waits again (same id, approvable), a queued run runs,
a run that was running is ``interrupted``, a deadline passed or a runbook deleted while down
ends the run clearly."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from tests.conftest import wait_for

from opsloop.roles import Role
from opsloop.services.runbooks import RunbookService
from opsloop.store.state import open_state
from opsloop.store.state.models import RunbookRunRow

GATED = """
name: needs-ok
triggers: [{manual: {}}]
parameters:
  tag: {type: string, default: none}
policies: {requires_approval: {role: admin, timeout_s: 3600}}
steps:
  - shell: {argv: [sh, -c, 'echo "$1" >> "$2"', x, "${params.tag}", "LOG"]}
"""

QUEUED = """
name: one-at-a-time
triggers: [{manual: {}}]
parameters:
  tag: {type: string, default: none}
  seconds: {type: string, default: "0", pattern: "[0-9.]+"}
policies: {max_concurrent: 1, on_busy: queue}
steps:
  - shell: {argv: [sh, -c, 'echo "$1" >> "$2"; sleep "$3"', x, "${params.tag}", "LOG",
                   "${params.seconds}"], timeout_s: 60}
"""


class _Dead:
    """The store of a process that died: nothing it does after the crash is saved."""

    def save(self, record) -> None:
        pass

    def unfinished(self) -> list:
        return []


@pytest.fixture
def state(state_url):
    db = open_state(state_url)
    yield db
    db.close()


@pytest.fixture
def log(settings, tmp_path):
    folder = settings.home / "runbooks"
    folder.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "log"
    (folder / "needs-ok.yaml").write_text(GATED.replace("LOG", str(out)))
    (folder / "one-at-a-time.yaml").write_text(QUEUED.replace("LOG", str(out)))
    return out


def crash(svc: RunbookService) -> None:
    """kill -9: the service's threads stop, and nothing more reaches the state store."""
    svc.engine.store = _Dead()
    svc.engine.engage_kill_switch("process died")
    svc.engine.join(5)


def status(svc: RunbookService, run_id: str) -> str:
    return svc.store.get(run_id)["status"]


def test_waiting_and_queued_runs_survive_a_restart(settings, state, log):
    svc = RunbookService(settings, state)
    waiting = svc.run("needs-ok", {"tag": "approved"}, "bob")
    running = svc.run("one-at-a-time", {"tag": "first", "seconds": "30"}, "bob")
    queued = svc.run("one-at-a-time", {"tag": "second"}, "carol")
    assert queued.reason.startswith("queued")
    wait_for(lambda: svc.approvals.pending())
    wait_for(lambda: status(svc, running.id) == "running")
    with state.session() as s:
        row = s.get(RunbookRunRow, waiting.id)
        assert row.resume["params"] == {"tag": "approved"}  # kept apart from the record
        assert "resume" not in row.data
    crash(svc)

    again = RunbookService(settings, state)
    assert status(again, running.id) == "interrupted"
    assert "not re-run" in again.store.get(running.id)["error"]
    # the queued run starts (the slot of the interrupted one is free) with its given params
    wait_for(lambda: status(again, queued.id) == "succeeded")
    assert again.store.get(queued.id)["requested_by"] == "carol"
    # the run waiting for approval waits again, with the same id, and can be approved
    [req] = wait_for(lambda: again.approvals.pending())
    assert req.run_id == waiting.id and status(again, waiting.id) == "waiting_approval"
    with pytest.raises(PermissionError):
        again.decide(waiting.id, True, "op", Role.operator)
    again.decide(waiting.id, True, "alice", Role.admin)
    wait_for(lambda: status(again, waiting.id) == "succeeded")
    run = again.store.get(waiting.id)
    assert run["approver"] == "alice" and "resume" not in run
    assert log.read_text().split() == ["first", "second", "approved"]
    with state.session() as s:
        assert s.scalars(sa.select(RunbookRunRow.resume)).all() == [None, None, None]
    crash(again)


def test_deadline_passed_while_down_ends_rejected(settings, state, log):
    svc = RunbookService(settings, state)
    waiting = svc.run("needs-ok", {}, "bob")
    wait_for(lambda: svc.approvals.pending())
    crash(svc)
    with state.session() as s:  # two hours pass before the restart
        row = s.get(RunbookRunRow, waiting.id)
        data = dict(row.data)
        data["created"] -= 7200
        data["steps"] = [{**data["steps"][0], "started": data["steps"][0]["started"] - 7200}]
        row.data = data

    again = RunbookService(settings, state)
    run = again.store.get(waiting.id)
    assert run["status"] == "rejected"
    assert "not approved within 3600s" in run["reason"] and "stopped" in run["reason"]
    assert again.approvals.pending() == [] and not log.exists()


def test_runbook_deleted_while_down_ends_interrupted(settings, state, log):
    svc = RunbookService(settings, state)
    waiting = svc.run("needs-ok", {}, "bob")
    wait_for(lambda: svc.approvals.pending())
    crash(svc)
    (settings.home / "runbooks" / "needs-ok.yaml").unlink()

    again = RunbookService(settings, state)
    run = again.store.get(waiting.id)
    assert run["status"] == "interrupted"
    assert "needs-ok" in run["error"] and "no longer loaded" in run["error"]
    assert again.approvals.pending() == [] and not log.exists()


def test_a_cli_service_does_not_take_over_the_servers_runs(settings, state, log):
    svc = RunbookService(settings, state)
    waiting = svc.run("needs-ok", {}, "bob")
    wait_for(lambda: svc.approvals.pending())
    cli = RunbookService(settings, state, recover=False)
    assert cli.approvals.pending() == [] and status(cli, waiting.id) == "waiting_approval"
    svc.decide(waiting.id, True, "alice", Role.admin)
    wait_for(lambda: status(svc, waiting.id) == "succeeded")
