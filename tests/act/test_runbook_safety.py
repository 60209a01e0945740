"""Safety by construction: no shell injection, approvals, cooldown, kill at timeout, secrets."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from opsloop.act.runbooks import (
    InMemoryApprovals,
    InMemoryRunStore,
    RecordingNotifier,
    RunbookEngine,
    RunbookValidationError,
    RunStatus,
    SecretResolver,
    StepStatus,
    TriggerEvent,
    parse_runbook,
)
from opsloop.act.runbooks.steps import group_alive
from opsloop.roles import Role

PY = sys.executable


def runbook(**doc):
    doc.setdefault("name", "t")
    return parse_runbook(yaml.safe_dump(doc, sort_keys=False), file="t.yaml")


def alert(**labels) -> TriggerEvent:
    return TriggerEvent(kind="alert", key="fp-" + str(sorted(labels.items())), labels=labels)


@pytest.fixture
def engine() -> RunbookEngine:
    return RunbookEngine(notifier=RecordingNotifier(), kill_grace_s=0.3)


@pytest.fixture
def dump_argv(tmp_path: Path) -> Path:
    """A tiny program that writes its arguments as JSON to the file named by argv[1]."""
    p = tmp_path / "dump_argv.py"
    p.write_text(
        "import json, sys\nwith open(sys.argv[1], 'w') as f:\n    json.dump(sys.argv[2:], f)\n"
    )
    return p


def hostile_values(markers: Path) -> list[str]:
    m = markers
    return [
        f"; touch {m}/semicolon",
        f"$(touch {m}/dollar)",
        f"`touch {m}/backtick`",
        f"x\ntouch {m}/newline",
        f"| touch {m}/pipe",
        f"&& touch {m}/and",
        f"> {m}/redirect",
        "../../../../etc/passwd",
        "${params.n} $HOME * ~ 'quoted' \"dq\" \\",
        "",
    ]


# -- injection ----------------------------------------------------------------------------------


def test_hostile_labels_are_plain_arguments(engine, tmp_path, dump_argv):
    markers = tmp_path / "markers"
    markers.mkdir()
    values = hostile_values(markers)
    labels = {f"v{i}": v for i, v in enumerate(values)}
    out = tmp_path / "argv.json"
    rb = runbook(
        parameters={"n": {"type": "int", "default": 1}},
        steps=[
            {
                "id": "printf",
                "shell": {
                    "argv": ["printf", "[%s]\\n", *[f"${{event.labels.{k}}}" for k in labels]]
                },
            },
            {
                "shell": {
                    "argv": [
                        PY,
                        str(dump_argv),
                        str(out),
                        *[f"${{event.labels.{k}}}" for k in labels],
                    ]
                }
            },
        ],
    )
    rec = engine.run(rb, alert(**labels))
    assert rec.status is RunStatus.SUCCEEDED, rec.error
    assert json.loads(out.read_text()) == values  # each value is exactly one argument
    assert rec.steps[0].stdout == "".join(f"[{v}]\n" for v in values)
    assert list(markers.iterdir()) == []  # nothing else ran
    assert rec.steps[1].rendered["argv"][3:] == values


def test_values_reach_sh_c_only_as_positional_parameters(engine, tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    out = tmp_path / "out.txt"
    value = f"; touch {markers}/a $(touch {markers}/b) `touch {markers}/c`"
    rb = runbook(
        steps=[
            {
                "shell": {
                    "argv": [
                        "sh",
                        "-c",
                        'printf %s "$1" > "$2"',
                        "sh",
                        "${event.labels.x}",
                        str(out),
                    ]
                }
            }
        ]
    )
    rec = engine.run(rb, alert(x=value))
    assert rec.status is RunStatus.SUCCEEDED, rec.error
    assert out.read_text() == value
    assert list(markers.iterdir()) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["sh", "-c", "echo ${event.labels.x}"],
        ["bash", "-ec", "rm ${event.labels.x}"],
        ["sudo", "sh", "-c", "${event.labels.x}"],
        ["python3", "-c", "${event.labels.x}"],
        ["${event.labels.x}", "--version"],
    ],
)
def test_templated_code_or_program_is_refused_at_load(argv):
    with pytest.raises(RunbookValidationError, match="literal"):
        runbook(steps=[{"shell": {"argv": argv}}])


def test_string_command_is_refused_at_load():
    with pytest.raises(RunbookValidationError, match="not a string"):
        runbook(steps=[{"shell": {"argv": "rm -rf ${event.labels.x}"}}])


def test_option_injection_is_refused_unless_after_double_dash(engine, tmp_path, dump_argv):
    out = tmp_path / "argv.json"
    rb = runbook(steps=[{"shell": {"argv": [PY, str(dump_argv), str(out), "${event.labels.x}"]}}])
    rec = engine.run(rb, alert(x="-delete"))
    assert rec.status is RunStatus.FAILED
    assert "starts with '-'" in rec.steps[0].error
    assert rec.steps[0].attempts == 0 and not out.exists()
    safe = runbook(
        steps=[{"shell": {"argv": [PY, str(dump_argv), str(out), "--", "${event.labels.x}"]}}]
    )
    assert engine.run(safe, alert(x="-delete")).status is RunStatus.SUCCEEDED
    assert json.loads(out.read_text()) == ["--", "-delete"]


def test_path_parameters_refuse_traversal(engine, tmp_path):
    marker = tmp_path / "ran"
    rb = runbook(
        parameters={"dir": {"type": "path", "under": [str(tmp_path)], "default": str(tmp_path)}},
        steps=[{"shell": {"argv": ["touch", str(marker)]}}],
    )
    for bad in (f"{tmp_path}/../../etc", "/etc", "relative", f"{tmp_path}x"):
        rec = engine.run(rb, params={"dir": bad})
        assert rec.status is RunStatus.FAILED and rec.error.startswith("parameters:"), bad
        assert rec.steps == []
    assert not marker.exists()
    assert engine.run(rb, params={"dir": f"{tmp_path}/sub"}).status is RunStatus.SUCCEEDED


def test_url_values_are_percent_encoded():
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return httpx.Response(200, json={})

    engine = RunbookEngine(http_transport=httpx.MockTransport(handler))
    rb = runbook(
        parameters={"api": {"type": "string", "default": "http://127.0.0.1:9"}},
        steps=[{"http": {"url": "${params.api}/svc/${event.labels.s}?q=${event.labels.q}"}}],
    )
    rec = engine.run(rb, alert(s="../admin", q="1&drop=all#x"))
    assert rec.status is RunStatus.SUCCEEDED, rec.error
    assert seen == ["/svc/..%2Fadmin?q=1%26drop%3Dall%23x"]


def test_expression_values_cannot_inject(engine, tmp_path):
    marker = tmp_path / "ran"
    rb = runbook(
        conditions=["event.labels.env == 'prod'"],
        steps=[{"shell": {"argv": ["touch", str(marker)]}}],
    )
    rec = engine.run(rb, alert(env="x' or '1' == '1"))
    assert rec.status is RunStatus.SKIPPED and not marker.exists()


# -- approvals ----------------------------------------------------------------------------------


def approval_runbook(marker: Path, timeout_s: float = 5.0):
    return runbook(
        policies={"requires_approval": {"role": "admin", "timeout_s": timeout_s}},
        steps=[{"id": "touch", "shell": {"argv": ["touch", str(marker)]}}],
    )


def test_nothing_runs_until_approved(tmp_path):
    store, approvals = InMemoryRunStore(), InMemoryApprovals()
    engine = RunbookEngine(store, approvals=approvals)
    marker = tmp_path / "ran"
    snap = engine.start(approval_runbook(marker), alert(x="1"), requested_by="bob")
    assert snap.status is RunStatus.PENDING
    [req] = approvals.wait_pending()
    assert req.role is Role.admin and req.gate == "approval"
    assert any("touch" in line for line in req.summary)  # approvers see what will run
    time.sleep(0.1)
    assert not marker.exists()
    assert store.get(snap.id).status is RunStatus.WAITING_APPROVAL
    with pytest.raises(PermissionError):
        approvals.decide(snap.id, "approval", True, by="op", role=Role.operator)
    assert not marker.exists()
    approvals.decide(snap.id, "approval", True, by="alice", role=Role.admin)
    engine.join(5)
    rec = store.get(snap.id)
    assert rec.status is RunStatus.SUCCEEDED and marker.exists()
    assert rec.approver == "alice"
    assert rec.steps[0].phase == "gate" and rec.steps[0].approver == "alice"
    statuses = [s for rid, s in store.history if rid == snap.id]
    assert statuses.index(RunStatus.WAITING_APPROVAL) < statuses.index(RunStatus.RUNNING)


def test_rejected_run_does_nothing(tmp_path):
    store, approvals = InMemoryRunStore(), InMemoryApprovals()
    notifier = RecordingNotifier()
    engine = RunbookEngine(store, approvals=approvals, notifier=notifier)
    marker = tmp_path / "ran"
    rb = runbook(
        policies={"requires_approval": True},
        steps=[{"shell": {"argv": ["touch", str(marker)]}}],
        on_failure=[{"notify": {"receiver": "r", "message": "failed"}}],
    )
    snap = engine.start(rb, alert(x="1"))
    approvals.wait_pending()
    approvals.decide(snap.id, "approval", False, by="carol", comment="not now")
    engine.join(5)
    rec = store.get(snap.id)
    assert rec.status is RunStatus.REJECTED
    assert rec.reason == "rejected by carol: not now"
    assert not marker.exists() and notifier.sent == []
    assert [s.status for s in rec.steps] == [StepStatus.REJECTED]


def test_approval_timeout_does_nothing(tmp_path):
    engine = RunbookEngine(approvals=InMemoryApprovals())
    marker = tmp_path / "ran"
    t0 = time.monotonic()
    rec = engine.run(approval_runbook(marker, timeout_s=0.2), alert(x="1"))
    assert 0.2 <= time.monotonic() - t0 < 2
    assert rec.status is RunStatus.REJECTED and "not approved within 0.2s" in rec.reason
    assert not marker.exists()


def test_approval_without_provider_fails_closed(tmp_path):
    marker = tmp_path / "ran"
    rec = RunbookEngine().run(approval_runbook(marker), alert(x="1"))
    assert rec.status is RunStatus.FAILED and "no approvals provider" in rec.error
    assert not marker.exists()


# -- cooldown -----------------------------------------------------------------------------------


def test_cooldown_stops_a_second_run(tmp_path):
    now = [1000.0]
    engine = RunbookEngine(clock=lambda: now[0])
    log = tmp_path / "log"
    rb = runbook(
        policies={"cooldown_s": 600},
        steps=[{"shell": {"argv": ["sh", "-c", 'echo run >> "$1"', "sh", str(log)]}}],
    )
    assert engine.run(rb, alert(host="a")).status is RunStatus.SUCCEEDED
    second = engine.run(rb, alert(host="a"))
    assert second.status is RunStatus.SKIPPED and second.reason.startswith("cooldown:")
    assert engine.run(rb, alert(host="b")).status is RunStatus.SUCCEEDED  # another key
    now[0] += 601
    assert engine.run(rb, alert(host="a")).status is RunStatus.SUCCEEDED
    assert log.read_text().count("run") == 3


# -- timeouts and process groups ---------------------------------------------------------------


HANG = """
import os, subprocess, sys, time, signal
signal.signal(signal.SIGTERM, signal.SIG_IGN) if sys.argv[2] == "stubborn" else None
child = subprocess.Popen(["sleep", "30"])
with open(sys.argv[1], "w") as f:
    f.write(f"{os.getpid()} {child.pid}")
time.sleep(30)
"""


@pytest.mark.parametrize("mode", ["polite", "stubborn"])
def test_hanging_step_is_killed_at_its_timeout_with_its_group(tmp_path, mode):
    script = tmp_path / "hang.py"
    script.write_text(HANG)
    pids = tmp_path / "pids"
    engine = RunbookEngine(kill_grace_s=0.3)
    rb = runbook(steps=[{"shell": {"argv": [PY, str(script), str(pids), mode], "timeout_s": 0.8}}])
    t0 = time.monotonic()
    rec = engine.run(rb)
    elapsed = time.monotonic() - t0
    assert rec.status is RunStatus.FAILED
    assert 0.8 <= elapsed < 3.0, elapsed
    step = rec.steps[0]
    assert "timed out after 0.8s" in step.error and step.exit_code is not None
    leader, child = map(int, pids.read_text().split())
    assert not group_alive(leader)
    for pid in (leader, child):
        assert _gone(pid), f"{pid} survived"


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] == "Z"  # a zombie waiting for its reaper is dead


def test_background_children_do_not_outlive_their_step(engine, tmp_path):
    rb = runbook(steps=[{"id": "bg", "shell": {"argv": ["sh", "-c", "sleep 30 & echo $!"]}}])
    t0 = time.monotonic()
    rec = engine.run(rb)
    assert time.monotonic() - t0 < 3
    assert rec.status is RunStatus.SUCCEEDED
    assert _gone(int(rec.steps[0].stdout.strip()))


def test_kill_switch_refuses_runs_and_cancels_running_ones(tmp_path):
    store = InMemoryRunStore()
    engine = RunbookEngine(store, kill_grace_s=0.3)
    marker = tmp_path / "after"
    rb = runbook(
        policies={"max_concurrent": 2},
        steps=[
            {"shell": {"argv": ["sleep", "30"]}},
            {"shell": {"argv": ["touch", str(marker)]}},
        ],
    )
    snap = engine.start(rb)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and ((r := store.get(snap.id)) is None or not r.steps):
        time.sleep(0.01)
    t0 = time.monotonic()
    engine.engage_kill_switch("maintenance")
    engine.join(5)
    assert time.monotonic() - t0 < 2
    rec = store.get(snap.id)
    assert rec.status is RunStatus.CANCELLED
    assert rec.steps[0].status is StepStatus.CANCELLED and not marker.exists()
    refused = engine.run(rb)
    assert refused.status is RunStatus.SKIPPED and refused.reason == "kill switch: maintenance"
    engine.release_kill_switch()
    assert engine.kill_switch is None


# -- secrets ------------------------------------------------------------------------------------


def test_secrets_never_reach_stored_output(tmp_path, monkeypatch):
    secret = "S3cr3t-Value-42"
    monkeypatch.setenv("OPSLOOP_SECRET_TOKEN", secret)
    monkeypatch.setenv("OPSLOOP_SECRET_OTHER", "never-passed")
    received: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        received.append(request.headers["authorization"])
        return httpx.Response(500, text=f"bad token {secret}")

    store = InMemoryRunStore()
    notifier = RecordingNotifier()
    engine = RunbookEngine(
        store,
        notifier=notifier,
        secrets=SecretResolver(),
        http_transport=httpx.MockTransport(handler),
    )
    script = 'echo "token=$TOKEN"; echo "err $TOKEN" >&2; env; exit 3'
    rb = runbook(
        steps=[
            {
                "id": "sh",
                "shell": {"argv": ["sh", "-c", script], "env": {"TOKEN": "${secret:TOKEN}"}},
                "allow_failure": True,
            },
            {
                "id": "api",
                "http": {
                    "url": "http://127.0.0.1:9/x",
                    "headers": {"Authorization": "Bearer ${secret:TOKEN}"},
                    "json": {"token": "${secret:TOKEN}"},
                },
            },
        ],
        on_failure=[
            {"notify": {"receiver": "r", "message": "${failure.error} ${steps.sh.stdout}"}}
        ],
    )
    rec = engine.run(rb)
    assert rec.status is RunStatus.FAILED
    assert received == [f"Bearer {secret}"]  # the real value was used ...
    sh = rec.step("sh")
    assert "token=[secret:TOKEN]" in sh.stdout and "err [secret:TOKEN]" in sh.stderr
    assert sh.rendered["env"] == {"TOKEN": "[secret:TOKEN]"}
    assert "OPSLOOP_" not in sh.stdout  # the child does not inherit opsloop's environment
    api = rec.step("api")
    assert api.rendered["headers"]["Authorization"] == "Bearer [secret:TOKEN]"
    assert api.rendered["json"] == {"token": "[secret:TOKEN]"}
    assert "bad token [secret:TOKEN]" in api.stdout
    # ... and never stored or sent anywhere
    for r in store.all():
        assert secret not in json.dumps(r.to_dict())
    assert secret not in json.dumps(notifier.sent)
    assert "[secret:TOKEN]" in notifier.sent[0][1]


def test_secret_in_truncated_output_is_masked(tmp_path, monkeypatch):
    secret = "ABCDEFGHIJKLMNOP"
    monkeypatch.setenv("OPSLOOP_SECRET_K", secret)
    engine = RunbookEngine()
    # 256 bytes kept: 250 'x' then the first 6 characters of the secret
    rb = runbook(
        steps=[
            {
                "shell": {
                    "argv": ["sh", "-c", 'printf "%0250d$K" 0'],
                    "env": {"K": "${secret:K}"},
                    "max_output_bytes": 256,
                }
            }
        ]
    )
    rec = engine.run(rb)
    out = rec.steps[0].stdout
    assert "ABCDEF" not in out and out.endswith("more bytes not kept]")
    assert "[secret:K]" in out


def test_missing_secret_fails_before_running(tmp_path):
    marker = tmp_path / "ran"
    engine = RunbookEngine()
    rb = runbook(
        steps=[{"shell": {"argv": ["touch", str(marker)], "env": {"T": "${secret:NOPE}"}}}]
    )
    rec = engine.run(rb)
    assert rec.status is RunStatus.FAILED and "OPSLOOP_SECRET_NOPE" in rec.error
    assert not marker.exists()


def test_python_steps_need_an_allow_listed_module(tmp_path):
    rb = runbook(steps=[{"python": {"entrypoint": "os:getcwd"}}])
    rec = RunbookEngine().run(rb)
    assert rec.status is RunStatus.FAILED and "not allowed" in rec.error


def test_no_shell_true_in_executors():
    src = Path(__file__).parents[2] / "src/opsloop/act/runbooks/steps.py"
    text = src.read_text()
    assert "shell=False" in text and "shell=True" not in text
    assert "os.system" not in text and "os.popen" not in text


def test_concurrent_runs_are_limited(tmp_path):
    store = InMemoryRunStore()
    engine = RunbookEngine(store, kill_grace_s=0.2)
    rb = runbook(policies={"on_busy": "skip"}, steps=[{"shell": {"argv": ["sleep", "30"]}}])
    first = engine.start(rb, alert(k="1"))
    second = engine.run(rb, alert(k="2"))
    assert second.status is RunStatus.SKIPPED and second.reason.startswith("max_concurrent")
    assert engine.cancel(first.id)
    engine.join(5)
    assert store.get(first.id).status is RunStatus.CANCELLED
    assert engine.run(rb, alert(k="3"), dry_run=True).status is RunStatus.SUCCEEDED
    assert not engine.cancel("unknown")


def test_threads_left_behind_are_daemons():
    assert all(t.daemon for t in threading.enumerate() if t.name.startswith("runbook-"))


def test_secret_values_are_not_in_the_process_environment_of_steps(tmp_path, monkeypatch):
    monkeypatch.setenv("OPSLOOP_SECRET_X", "zzz-secret")
    rec = RunbookEngine().run(runbook(steps=[{"shell": {"argv": ["env"]}}]))
    assert "zzz-secret" not in rec.steps[0].stdout
    assert "PATH=" in rec.steps[0].stdout
    assert os.environ["OPSLOOP_SECRET_X"] == "zzz-secret"


def _wait_for(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


def test_busy_runbook_queues_runs_first_come_first_served(tmp_path):
    """Two subjects triggering at once both get their run (the default ``on_busy: queue``):
    the second waits for the first's slot instead of being skipped."""
    store = InMemoryRunStore()
    engine = RunbookEngine(store, kill_grace_s=0.2)
    log = tmp_path / "log"
    rb = runbook(
        steps=[
            {
                "shell": {
                    "argv": [
                        "sh",
                        "-c",
                        'echo "start $1" >> "$2"; sleep 0.3; echo "end $1" >> "$2"',
                        "x",
                        "${event.labels.k}",
                        str(log),
                    ]
                }
            },
        ]
    )
    first = engine.start(rb, alert(k="1"))
    second = engine.start(rb, alert(k="2"))
    third = engine.start(rb, alert(k="3"))
    assert second.status is RunStatus.PENDING and second.reason.startswith("queued")
    assert engine.admission.waiting("t") == 2
    assert _wait_for(lambda: all(store.get(r.id).status.final for r in (first, second, third)))
    engine.join(5)
    for r in (first, second, third):
        rec = store.get(r.id)
        assert rec.status is RunStatus.SUCCEEDED, rec
        assert rec.reason is None
    # one at a time, in arrival order
    assert log.read_text().split("\n")[:-1] == [
        "start 1",
        "end 1",
        "start 2",
        "end 2",
        "start 3",
        "end 3",
    ]
    assert engine.admission.running("t") == 0 and engine.admission.waiting("t") == 0


def test_queue_is_bounded_and_queued_runs_can_be_cancelled(tmp_path):
    store = InMemoryRunStore()
    engine = RunbookEngine(store, kill_grace_s=0.2)
    marker = tmp_path / "ran"
    rb = runbook(
        policies={"max_queued": 2},
        steps=[{"shell": {"argv": ["sh", "-c", 'sleep 30; touch "$1"', "x", str(marker)]}}],
    )
    running = engine.start(rb, alert(k="1"))
    queued = [engine.start(rb, alert(k=str(k))) for k in (2, 3)]
    full = engine.start(rb, alert(k="4"))
    assert full.status is RunStatus.SKIPPED and full.reason.startswith("queue full")
    assert engine.cancel(queued[0].id)
    assert _wait_for(lambda: store.get(queued[0].id).status is RunStatus.CANCELLED)
    assert "queued" in store.get(queued[0].id).error
    assert engine.admission.waiting("t") == 1
    engine.engage_kill_switch("maintenance")
    engine.join(5)
    assert store.get(running.id).status is RunStatus.CANCELLED
    rec = store.get(queued[1].id)
    assert rec.status is RunStatus.CANCELLED and "maintenance" in rec.error
    assert not rec.steps and not marker.exists()
    assert engine.admission.running("t") == 0 and engine.admission.waiting("t") == 0
