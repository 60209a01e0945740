"""The runbook engine: outputs, when, retries, on_failure, timeouts, dry run, records, HTTP."""

from __future__ import annotations

import doctest
import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from opsloop.act.runbooks import (
    InMemoryApprovals,
    InMemoryRunStore,
    RecordingNotifier,
    RunbookEngine,
    RunRecord,
    RunStatus,
    StepStatus,
    TriggerEvent,
    backoff_delays,
    mark_interrupted,
    parse_runbook,
)
from opsloop.act.runbooks import engine as engine_mod
from opsloop.act.runbooks import host as host_mod
from opsloop.act.runbooks import steps as steps_mod

PY = sys.executable


def runbook(**doc):
    doc.setdefault("name", "t")
    return parse_runbook(yaml.safe_dump(doc, sort_keys=False), file="t.yaml")


@pytest.mark.parametrize("module", [engine_mod, host_mod, steps_mod])
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0


@pytest.fixture
def store() -> InMemoryRunStore:
    return InMemoryRunStore()


@pytest.fixture
def notifier() -> RecordingNotifier:
    return RecordingNotifier()


@pytest.fixture
def engine(store, notifier) -> RunbookEngine:
    return RunbookEngine(store, notifier=notifier, kill_grace_s=0.3)


# -- steps, outputs, when ------------------------------------------------------------------------


def test_outputs_flow_between_steps_and_when_skips(engine, store, notifier):
    rb = runbook(
        parameters={"greeting": {"type": "string", "default": "hello ${event.labels.who}"}},
        steps=[
            {"id": "a", "shell": {"argv": ["printf", "%s\\n", "${params.greeting}"]}},
            {"id": "b", "shell": {"argv": ["printf", "%s", "${steps.a.stdout}!"]}},
            {"id": "c", "shell": {"argv": ["false"]}, "when": "steps.b.stdout == 'nope'"},
            {
                "notify": {"receiver": "r", "message": "${steps.b.stdout} ${steps.c.status}"},
                "when": "steps.a.exit_code == 0 and steps.c.status == 'skipped'",
            },
        ],
    )
    ev = TriggerEvent(kind="alert", key="k", labels={"who": "world"})
    rec = engine.run(rb, ev)
    assert rec.status is RunStatus.SUCCEEDED, rec.error
    assert rec.params == {"greeting": "hello world"}
    assert [s.status for s in rec.steps] == [
        StepStatus.SUCCEEDED,
        StepStatus.SUCCEEDED,
        StepStatus.SKIPPED,
        StepStatus.SUCCEEDED,
    ]
    assert rec.step("b").stdout == "hello world!"
    assert rec.step("b").rendered["argv"] == ["printf", "%s", "hello world!"]
    assert notifier.sent == [("r", "hello world! skipped", rec.id, "t")]
    assert rec.steps[0].duration_s is not None and rec.steps[0].attempts == 1
    statuses = [s for rid, s in store.history if rid == rec.id]
    assert statuses[0] is RunStatus.PENDING and statuses[-1] is RunStatus.SUCCEEDED
    assert RunStatus.RUNNING in statuses
    assert store.get(rec.id).to_dict()["steps"][0]["status"] == "succeeded"


def test_parameters_given_manually_override_defaults(engine):
    rb = runbook(
        parameters={
            "n": {"type": "int", "default": 1},
            "mode": {"type": "string", "choices": ["a", "b"], "default": "a"},
        },
        steps=[{"id": "s", "shell": {"argv": ["echo", "${params.n}", "${params.mode}"]}}],
    )
    rec = engine.run(rb, params={"n": "5", "mode": "b"}, requested_by="alice")
    assert rec.step("s").stdout == "5 b\n"
    assert rec.params == {"n": 5, "mode": "b"} and rec.requested_by == "alice"
    assert rec.trigger["kind"] == "manual"


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({}, "parameter 'need' is required"),
        ({"need": "x", "extra": 1}, "unknown parameter(s): extra"),
        ({"need": "x", "n": "many"}, "expected an integer"),
    ],
)
def test_bad_parameters_fail_before_anything_runs(engine, tmp_path, params, needle):
    marker = tmp_path / "ran"
    rb = runbook(
        parameters={
            "need": {"type": "string", "required": True},
            "n": {"type": "int", "default": 1},
        },
        steps=[{"shell": {"argv": ["touch", str(marker)]}}],
    )
    rec = engine.run(rb, params=params)
    assert rec.status is RunStatus.FAILED and needle in rec.error
    assert not marker.exists() and rec.steps == []


def test_conditions(engine, tmp_path):
    marker = tmp_path / "ran"
    rb = runbook(
        conditions=["event.labels.env == 'prod'", "event.labels.pct > 90"],
        steps=[{"shell": {"argv": ["touch", str(marker)]}}],
    )
    ev = lambda **labels: TriggerEvent(kind="alert", key="k", labels=labels)  # noqa: E731
    skipped = engine.run(rb, ev(env="dev", pct="95"))
    assert skipped.status is RunStatus.SKIPPED
    assert skipped.reason == "condition not met: event.labels.env == 'prod'"
    broken = engine.run(rb, ev(env="prod"))
    assert broken.status is RunStatus.FAILED and "no key 'pct'" in broken.error
    assert not marker.exists()
    assert engine.run(rb, ev(env="prod", pct="95")).status is RunStatus.SUCCEEDED
    assert marker.exists()


def test_skipped_runs_are_recorded_unless_disabled(tmp_path):
    store = InMemoryRunStore()
    rb = runbook(conditions=["false"], steps=[{"wait": {"seconds": 0}}])
    RunbookEngine(store).run(rb)
    assert len(store.all()) == 1
    quiet = InMemoryRunStore()
    rec = RunbookEngine(quiet, record_skipped=False).run(rb)
    assert rec.status is RunStatus.SKIPPED and quiet.all() == []


# -- retries, failures ---------------------------------------------------------------------------

FLAKY = """
import sys
from pathlib import Path
p = Path(sys.argv[1])
n = int(p.read_text()) + 1 if p.exists() else 1
p.write_text(str(n))
print(f"attempt {n}")
sys.exit(0 if n >= int(sys.argv[2]) else 1)
"""


def test_retries_with_exponential_backoff(engine, tmp_path):
    script = tmp_path / "flaky.py"
    script.write_text(FLAKY)
    counter = tmp_path / "count"
    rb = runbook(
        policies={"retries": 3, "backoff_s": 0.1},
        steps=[{"id": "flaky", "shell": {"argv": [PY, str(script), str(counter), "3"]}}],
    )
    t0 = time.monotonic()
    rec = engine.run(rb)
    elapsed = time.monotonic() - t0
    assert rec.status is RunStatus.SUCCEEDED
    step = rec.step("flaky")
    assert step.attempts == 3 and step.stdout == "attempt 3\n"
    assert elapsed >= 0.1 + 0.2  # waited backoff_s, then twice that


def test_step_retries_override_policy_and_give_up(engine, tmp_path):
    script = tmp_path / "flaky.py"
    script.write_text(FLAKY)
    counter = tmp_path / "count"
    rb = runbook(
        policies={"retries": 5, "backoff_s": 0.01},
        steps=[
            {
                "id": "flaky",
                "retries": 1,
                "shell": {"argv": [PY, str(script), str(counter), "10"]},
            }
        ],
    )
    rec = engine.run(rb)
    assert rec.status is RunStatus.FAILED
    assert rec.step("flaky").attempts == 2 and counter.read_text() == "2"
    assert rec.error == "step flaky: exited with status 1"


def test_backoff_delays():
    assert backoff_delays(0, 1.0) == []
    assert backoff_delays(3, 1.0, max_backoff_s=3.0) == [1.0, 2.0, 3.0]


def test_on_failure_runs_with_failure_context(engine, notifier, tmp_path):
    after = tmp_path / "after"
    rb = runbook(
        steps=[
            {"id": "soft", "shell": {"argv": ["false"]}, "allow_failure": True},
            {"id": "hard", "shell": {"argv": ["sh", "-c", "echo boom >&2; exit 7"]}},
            {"shell": {"argv": ["touch", str(after)]}},
        ],
        on_failure=[
            {
                "id": "report",
                "notify": {
                    "receiver": "oncall",
                    "message": "${failure.step}: ${failure.error} / ${steps.hard.stderr} "
                    "/ soft=${steps.soft.status}",
                },
            }
        ],
    )
    rec = engine.run(rb)
    assert rec.status is RunStatus.FAILED
    assert rec.error == "step hard: exited with status 7"
    assert rec.step("soft").status is StepStatus.FAILED  # allowed; the run went on
    assert rec.step("hard").exit_code == 7 and rec.step("hard").stderr == "boom\n"
    assert not after.exists()
    assert rec.step("report", phase="on_failure").status is StepStatus.SUCCEEDED
    assert notifier.sent[0][1] == "hard: exited with status 7 / boom / soft=failed"


def test_notify_failures(store):
    class Broken:
        calls = 0

        def notify(self, receiver, message, run_id, runbook):
            Broken.calls += 1
            raise ConnectionError("down")

    rb = runbook(
        steps=[{"notify": {"receiver": "r", "message": "m"}, "retries": 1, "backoff_s": 0}]
    )
    rec = RunbookEngine(store, notifier=Broken()).run(rb)
    assert rec.status is RunStatus.FAILED and "ConnectionError: down" in rec.error
    assert Broken.calls == 2
    rec = RunbookEngine(store).run(rb)
    assert "no notifier is configured" in rec.error


def test_run_timeout_caps_steps(engine):
    rb = runbook(
        policies={"timeout_s": 0.5},
        steps=[{"shell": {"argv": ["sleep", "5"], "timeout_s": 60}}, {"wait": {"seconds": 0}}],
    )
    t0 = time.monotonic()
    rec = engine.run(rb)
    assert time.monotonic() - t0 < 2.5
    assert rec.status is RunStatus.FAILED
    assert "run timed out (policies.timeout_s = 0.5s)" in rec.error
    assert len(rec.steps) == 1


def test_wait_step_is_capped_by_run_timeout(engine):
    rb = runbook(policies={"timeout_s": 0.2}, steps=[{"wait": {"seconds": 30}}])
    t0 = time.monotonic()
    rec = engine.run(rb)
    assert time.monotonic() - t0 < 1.5 and rec.status is RunStatus.FAILED
    assert "run timed out" in rec.error


def test_output_is_capped_with_a_marker(engine):
    rb = runbook(
        steps=[{"shell": {"argv": [PY, "-c", "print('x' * 10000)"], "max_output_bytes": 256}}]
    )
    rec = engine.run(rb)
    out = rec.steps[0].stdout
    assert out.startswith("x" * 256)
    assert out.endswith("[... truncated: 9745 more bytes not kept]")


def test_program_that_cannot_start(engine):
    rec = engine.run(runbook(steps=[{"shell": {"argv": ["/nonexistent/program"]}}]))
    assert rec.status is RunStatus.FAILED and "cannot start '/nonexistent/program'" in rec.error


def test_cwd_and_env(engine, tmp_path):
    rb = runbook(
        parameters={"dir": {"type": "path", "default": str(tmp_path)}},
        steps=[
            {
                "id": "pwd",
                "shell": {
                    "argv": ["sh", "-c", 'pwd; echo "$GREETING"'],
                    "cwd": "${params.dir}",
                    "env": {"GREETING": "hi ${runbook.name}"},
                },
            }
        ],
    )
    rec = engine.run(rb)
    assert rec.step("pwd").stdout == f"{tmp_path.resolve()}\nhi t\n"


# -- approve step --------------------------------------------------------------------------------


def test_approve_step_in_the_middle(tmp_path, store):
    approvals = InMemoryApprovals()
    engine = RunbookEngine(store, approvals=approvals)
    first, second = tmp_path / "first", tmp_path / "second"
    rb = runbook(
        steps=[
            {"shell": {"argv": ["touch", str(first)]}},
            {"id": "ok", "approve": {"role": "operator", "message": "continue?"}},
            {"shell": {"argv": ["touch", str(second)]}},
        ]
    )
    snap = engine.start(rb)
    [req] = approvals.wait_pending()
    assert first.exists() and not second.exists()
    assert req.gate == "ok" and req.message == "continue?"
    approvals.decide(snap.id, "ok", False, by="dave")
    engine.join(5)
    rec = store.get(snap.id)
    assert rec.status is RunStatus.REJECTED and not second.exists()
    assert rec.step("ok").approver == "dave"

    snap = engine.start(rb)
    approvals.wait_pending()
    approvals.decide(snap.id, "ok", True, by="erin")
    engine.join(5)
    rec = store.get(snap.id)
    assert rec.status is RunStatus.SUCCEEDED and second.exists()


# -- dry run -------------------------------------------------------------------------------------


def test_dry_run_runs_nothing_and_shows_everything(engine, store, notifier, tmp_path, monkeypatch):
    monkeypatch.setenv("OPSLOOP_SECRET_TOKEN", "dry-secret-value")
    marker = tmp_path / "ran"
    rb = runbook(
        parameters={"days": {"type": "int", "default": 7}},
        policies={"requires_approval": True, "cooldown_s": 3600},
        steps=[
            {
                "id": "find",
                "shell": {
                    "argv": ["find", str(tmp_path), "-mtime", "+${params.days}", "-print"],
                    "env": {"T": "${secret:TOKEN}"},
                },
            },
            {"id": "touch", "shell": {"argv": ["touch", str(marker), "${steps.find.stdout}"]}},
            {"notify": {"receiver": "r", "message": "x"}, "when": "params.days > 100"},
            {"notify": {"receiver": "r", "message": "y"}, "when": "steps.find.exit_code == 0"},
        ],
        on_failure=[{"notify": {"receiver": "r", "message": "${failure.error}"}}],
    )
    ev = TriggerEvent(kind="alert", key="k", labels={})
    rec = engine.run(rb, ev, dry_run=True)
    assert rec.status is RunStatus.SUCCEEDED and rec.dry_run
    assert rec.reason == "dry run: nothing was executed"
    assert not marker.exists() and notifier.sent == []
    gate, find, touch, skip, later, fail = rec.steps
    assert gate.phase == "gate" and gate.reason == "waits for approval by admin"
    assert find.rendered["argv"] == ["find", str(tmp_path), "-mtime", "+7", "-print"]
    assert find.rendered["env"] == {"T": "[secret:TOKEN]"}
    assert touch.rendered["argv"][-1] == "<steps.find.stdout>"
    assert skip.status is StepStatus.SKIPPED
    assert later.status is StepStatus.PLANNED and "decided at run time" in later.reason
    assert fail.phase == "on_failure" and fail.rendered["message"] == "<failure.error>"
    assert all(s.exit_code is None and s.attempts == 0 for s in rec.steps)
    assert "dry-secret-value" not in json.dumps(rec.to_dict())
    # a dry run uses no cooldown and needs no approval; the real run still waits
    assert engine.admission.running("t") == 0
    assert engine.run(rb, ev, dry_run=True).status is RunStatus.SUCCEEDED


def test_dry_run_reports_problems(engine):
    rb = runbook(
        steps=[
            {"shell": {"argv": ["echo", "${event.labels.missing}"]}},
            {"shell": {"argv": ["echo"], "env": {"X": "${secret:ABSENT}"}}},
        ]
    )
    rec = engine.run(rb, dry_run=True)
    assert rec.status is RunStatus.FAILED
    assert "no key 'missing'" in rec.error and "OPSLOOP_SECRET_ABSENT" in rec.error


# -- records -------------------------------------------------------------------------------------


def test_mark_interrupted_never_reruns(tmp_path):
    store = InMemoryRunStore()
    approvals = InMemoryApprovals()
    engine = RunbookEngine(store, approvals=approvals)
    marker = tmp_path / "ran"
    rb = runbook(
        policies={"requires_approval": True},
        steps=[{"shell": {"argv": ["touch", str(marker)]}}],
    )
    snap = engine.start(rb)
    approvals.wait_pending()
    done = RunRecord(id="old-ok", runbook="t", status=RunStatus.SUCCEEDED)
    store.save(done)
    # "restart": a new process sees the stored records before accepting runs
    marked = mark_interrupted(store, now=123.0)
    assert [r.id for r in marked] == [snap.id]
    rec = store.get(snap.id)
    assert rec.status is RunStatus.INTERRUPTED and rec.finished == 123.0
    assert "waiting_approval" in rec.error and "not re-run" in rec.error
    assert rec.steps[0].status is StepStatus.INTERRUPTED
    assert store.get("old-ok").status is RunStatus.SUCCEEDED
    assert mark_interrupted(store) == []
    engine.engage_kill_switch("test over")
    engine.join(5)
    assert not marker.exists()


def test_internal_errors_never_leave_a_run_running(store, monkeypatch):
    engine = RunbookEngine(store)

    def boom(*a, **k):
        raise RuntimeError("bug")

    monkeypatch.setattr(engine, "_step", boom)
    rec = engine.run(runbook(steps=[{"wait": {"seconds": 0}}]))
    assert rec.status is RunStatus.FAILED and "internal error: RuntimeError: bug" in rec.error
    assert store.unfinished() == [] and engine.active() == []


# -- python steps --------------------------------------------------------------------------------


@pytest.fixture
def pymod(tmp_path, monkeypatch) -> str:
    pkg = tmp_path / "rbsteps_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "ops.py").write_text(
        "import time\n"
        "def add(a, b):\n    return {'sum': a + b, 'args': [a, b]}\n"
        "def fail():\n    raise ValueError('nope')\n"
        "def slow(seconds):\n    time.sleep(seconds)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return "rbsteps_pkg"


def test_python_step(store, pymod):
    engine = RunbookEngine(store, python_modules=[pymod])
    rb = runbook(
        parameters={"n": {"type": "int", "default": 2}},
        steps=[
            {
                "id": "p",
                "python": {"entrypoint": f"{pymod}.ops:add", "args": {"a": "${params.n}", "b": 3}},
            },
            {"id": "echo", "shell": {"argv": ["echo", "${steps.p.result.sum}"]}},
        ],
    )
    rec = engine.run(rb)
    assert rec.status is RunStatus.SUCCEEDED, rec.error
    assert rec.step("p").stdout == '{"args": [2, 3], "sum": 5}'
    assert rec.step("p").rendered == {"entrypoint": f"{pymod}.ops:add", "args": {"a": 2, "b": 3}}
    assert rec.step("echo").stdout == "5\n"


def test_python_step_errors_and_timeout(store, pymod):
    engine = RunbookEngine(store, python_modules=[pymod])
    rec = engine.run(runbook(steps=[{"python": {"entrypoint": f"{pymod}.ops:fail"}}]))
    assert rec.error == "step #1 python: ValueError: nope"
    rec = engine.run(runbook(steps=[{"python": {"entrypoint": f"{pymod}.ops:missing"}}]))
    assert "cannot load" in rec.error
    t0 = time.monotonic()
    rb = runbook(
        steps=[
            {
                "python": {
                    "entrypoint": f"{pymod}.ops:slow",
                    "args": {"seconds": 2},
                    "timeout_s": 0.2,
                }
            }
        ]
    )
    rec = engine.run(rb)
    assert time.monotonic() - t0 < 1.5
    assert "cannot be killed" in rec.error


# -- HTTP over loopback --------------------------------------------------------------------------


@pytest.fixture
def api() -> Iterator[tuple[str, list[dict]]]:
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _reply(self):
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            seen.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "auth": self.headers.get("authorization"),
                    "body": json.loads(body) if body else None,
                }
            )
            if self.path.startswith("/fail"):
                code, payload = 503, {"error": "busy"}
            else:
                code, payload = 200, {"replicas": 2, "service": self.path.split("/")[-1]}
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = _reply

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_http_steps(store, notifier, api, monkeypatch):
    base, seen = api
    monkeypatch.setenv("OPSLOOP_SECRET_API", "tok-9876543")
    engine = RunbookEngine(store, notifier=notifier)
    rb = runbook(
        parameters={"api": {"type": "string", "default": base}, "n": {"type": "int", "default": 4}},
        steps=[
            {"id": "get", "http": {"url": "${params.api}/svc/${event.labels.service}"}},
            {
                "id": "put",
                "http": {
                    "method": "PUT",
                    "url": "${params.api}/svc/${steps.get.json.service}/scale",
                    "headers": {"Authorization": "Bearer ${secret:API}"},
                    "json": {"replicas": "${params.n}", "was": "${steps.get.json.replicas}"},
                    "expected_status": [200, 202],
                },
            },
            {"notify": {"receiver": "r", "message": "HTTP ${steps.put.status_code}"}},
        ],
    )
    rec = engine.run(rb, TriggerEvent(kind="alert", key="k", labels={"service": "web"}))
    assert rec.status is RunStatus.SUCCEEDED, rec.error
    assert seen[1] == {
        "method": "PUT",
        "path": "/svc/web/scale",
        "auth": "Bearer tok-9876543",
        "body": {"replicas": 4, "was": 2},
    }
    assert rec.step("put").http_status == 200
    assert rec.step("put").rendered["headers"] == {"Authorization": "Bearer [secret:API]"}
    assert notifier.sent[0][1] == "HTTP 200"


def test_http_unexpected_status_is_retried_then_fails(store, api):
    base, seen = api
    rb = runbook(
        parameters={"api": {"type": "string", "default": base}},
        steps=[{"id": "f", "http": {"url": "${params.api}/fail"}, "retries": 2, "backoff_s": 0.01}],
    )
    rec = RunbookEngine(store).run(rb)
    assert rec.status is RunStatus.FAILED and rec.error == "step f: unexpected HTTP status 503"
    assert rec.step("f").attempts == 3 and len(seen) == 3
    assert json.loads(rec.step("f").stdout) == {"error": "busy"}


def test_http_connection_refused(store):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rb = runbook(steps=[{"http": {"url": f"http://127.0.0.1:{port}/x", "timeout_s": 2}}])
    rec = RunbookEngine(store).run(rb)
    assert rec.status is RunStatus.FAILED and "ConnectError" in rec.error
