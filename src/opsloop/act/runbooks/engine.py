"""The :class:`RunbookEngine`: runs a runbook for a trigger event, safely.

Order of a run::

    kill switch? -> enabled? -> parameters (typed, checked) -> conditions -> [dry run: plan]
    -> cooldown / max_concurrent [-> queue] -> approval gate -> steps (when, retries, timeouts)
    -> on_failure (when something failed) -> finished

* Refusals (kill switch, disabled, conditions false, cooldown, max_concurrent with
  ``on_busy: skip``, a full queue) give a ``skipped`` record with the ``reason``; bad
  parameters or conditions give ``failed``; in both cases nothing ran.
* With ``on_busy: queue`` (the default) a run that finds every slot busy is recorded
  ``pending`` with a ``queued`` reason and starts when a slot frees, first come first
  served; cancel or the kill switch while it waits ends it ``cancelled``. Time spent queued
  does not count against ``timeout_s``.
* Each step's timeout is capped by what is left of ``policies.timeout_s`` (time spent
  waiting for approvals does not count). A failed attempt is retried ``retries`` times
  after ``backoff_s * 2**(attempt-1)`` seconds (at most ``max_backoff_s``). A step that fails
  for good fails the run - unless ``allow_failure`` - and then ``on_failure`` steps run
  (with ``${failure.step}``, ``${failure.error}``), each bounded by its own timeout.
* ``${steps.<id>.*}`` of a step that was skipped or failed before running holds ``null``
  (renders as an empty string); test ``steps.<id>.status`` in ``when:`` to tell.
* Rejection or timeout at an approval gate ends the run ``rejected`` and nothing more runs;
  cancel (or the kill switch) ends it ``cancelled``, killing a running shell step's
  process group. Neither runs ``on_failure``.
* Dry run: parameters, conditions and templates are evaluated and every step is rendered
  (outputs of earlier steps as ``<steps.x.stdout>``, secrets as ``[secret:NAME]``) but
  nothing is executed, no cooldown is used and no approval asked.
* Every stored string - rendered commands, stdout/stderr, errors - passes the secrets
  :class:`~opsloop.act.runbooks.secrets.Redactor` first.
* Restarts: until its first step starts, a run keeps in ``RunRecord.resume`` (never shown, no
  secret: secrets are resolved when a step renders) its full trigger event and the parameters
  as given. At start-up :meth:`RunbookEngine.recover` resumes, with the same id, runs that were
  queued or waiting at the run's approval gate (the approval keeps its deadline: gate start +
  ``timeout_s``; passed already, the run ends ``rejected``); every other unfinished run - one
  that was ``running`` or waiting at an ``approve`` step - becomes ``interrupted``, never
  re-run.

The engine is synchronous: :meth:`RunbookEngine.run` blocks until the run ends;
:meth:`RunbookEngine.start` does the checks, then runs the rest in a background thread.
"""

from __future__ import annotations

import copy
import json
import math
import os
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opsloop.act.runbooks.admission import Admission, Ticket
from opsloop.act.runbooks.checks import STEP_OUTPUTS
from opsloop.act.runbooks.expression import ExpressionError, compile_expression, truthy
from opsloop.act.runbooks.host import ApprovalRequest, Approvals, LearnActions, Notifier
from opsloop.act.runbooks.parameters import ParameterError
from opsloop.act.runbooks.records import (
    InMemoryRunStore,
    RunRecord,
    RunStatus,
    RunStore,
    StepRecord,
    StepStatus,
    interrupt,
    resumable,
)
from opsloop.act.runbooks.schema import Runbook, Step
from opsloop.act.runbooks.secrets import SecretError, SecretResolver
from opsloop.act.runbooks.steps import StepResult, run_http, run_python, run_shell, run_wait
from opsloop.act.runbooks.template import (
    Context,
    Ref,
    TemplateError,
    parse_template,
    render_str,
    render_value,
    stringify,
)
from opsloop.act.runbooks.triggers import TriggerEvent
from opsloop.roles import Role

__all__ = ["Recovery", "RunbookEngine", "StepError", "backoff_delays"]


class StepError(ValueError):
    """A step that cannot be rendered (missing key, bad value); it is not retried."""


def backoff_delays(retries: int, backoff_s: float, max_backoff_s: float = 300.0) -> list[float]:
    """The waits before each retry.

    >>> backoff_delays(4, 0.5)
    [0.5, 1.0, 2.0, 4.0]
    >>> backoff_delays(3, 200.0)
    [200.0, 300.0, 300.0]
    """
    return [min(backoff_s * 2**i, max_backoff_s) for i in range(retries)]


@dataclass
class _Run:
    rb: Runbook
    rec: RunRecord
    ctx: Context
    cancel: threading.Event
    ticket: Ticket
    gate: StepRecord | None = None  # the run's approval gate, resumed after a restart


@dataclass
class Recovery:
    """What :meth:`RunbookEngine.recover` did with the runs a previous process left unfinished
    (run ids): ``resumed`` (waiting again, queued or running), ``interrupted`` (not resumable,
    or their runbook is gone), ``ended`` (resumed, then ended at once: approval deadline
    passed, runbook disabled, kill switch, parameters or conditions refused)."""

    resumed: list[str] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)

    def add(self, rec: RunRecord) -> None:
        """Count ``rec`` by its status."""
        if not rec.status.final:
            self.resumed.append(rec.id)
        elif rec.status is RunStatus.INTERRUPTED:
            self.interrupted.append(rec.id)
        else:
            self.ended.append(rec.id)


class _DryContext(Context):
    """Resolves what a dry run can know; step outputs and failures become ``<...>`` markers."""

    def __init__(self, data: dict[str, Any], secrets: SecretResolver | None) -> None:
        super().__init__(data, None)
        self._resolver = secrets
        self.problems: list[str] = []
        self.secret = self._secret

    def _secret(self, name: str) -> str:
        if self._resolver is None:
            raise TemplateError(f"${{secret:{name}}}: no secrets are configured")
        try:
            if not self._resolver.exists(name):
                self._resolver(name)  # raises with the precise message
        except SecretError as e:
            raise TemplateError(str(e)) from None
        return f"[secret:{name}]"

    def resolve(self, ref: Ref) -> Any:
        if ref.root in ("steps", "failure"):
            return f"<{ref.dotted}>"
        return super().resolve(ref)


class RunbookEngine:
    """Executes runbooks. One engine per process; it is thread-safe.

    ``python_modules`` lists the packages Python steps may import (none by default).
    ``kill_grace_s`` is the wait between SIGTERM and SIGKILL. ``clock`` gives epoch seconds
    for records and cooldowns.
    """

    def __init__(
        self,
        store: RunStore | None = None,
        *,
        notifier: Notifier | None = None,
        approvals: Approvals | None = None,
        learn: LearnActions | None = None,
        secrets: SecretResolver | None = None,
        python_modules: Sequence[str] = (),
        kill_grace_s: float = 3.0,
        max_backoff_s: float = 300.0,
        record_skipped: bool = True,
        clock: Callable[[], float] = time.time,
        http_transport: Any = None,
    ) -> None:
        self.store: RunStore = store if store is not None else InMemoryRunStore()
        self.notifier = notifier
        self.approvals = approvals
        self.learn = learn
        self.secrets = secrets or SecretResolver()
        self.redactor = self.secrets.redactor
        self.python_modules = tuple(python_modules)
        self.kill_grace_s = kill_grace_s
        self.max_backoff_s = max_backoff_s
        self.record_skipped = record_skipped
        self.clock = clock
        self.http_transport = http_transport
        self.admission = Admission(clock)
        self._lock = threading.Lock()
        self._cancels: dict[str, threading.Event] = {}
        self._threads: dict[str, threading.Thread] = {}

    # -- control -------------------------------------------------------------------------------

    @property
    def kill_switch(self) -> str | None:
        """Why runs are refused, or ``None`` when they are allowed."""
        return self.admission.kill_switch

    def engage_kill_switch(self, reason: str = "kill switch engaged") -> None:
        """Refuse new runs and cancel every run in progress."""
        self.admission.engage(reason)
        with self._lock:
            events = list(self._cancels.values())
        for ev in events:
            ev.set()

    def release_kill_switch(self) -> None:
        """Accept runs again."""
        self.admission.release()

    def cancel(self, run_id: str) -> bool:
        """Ask a run in progress to stop; ``False`` when it is not running here."""
        with self._lock:
            ev = self._cancels.get(run_id)
        if ev is None:
            return False
        ev.set()
        return True

    def active(self) -> list[str]:
        """Ids of runs in progress."""
        with self._lock:
            return list(self._cancels)

    def join(self, timeout_s: float | None = None) -> None:
        """Wait for runs started with :meth:`start` (tests, shutdown)."""
        end = None if timeout_s is None else time.monotonic() + timeout_s
        with self._lock:
            threads = list(self._threads.values())
        for t in threads:
            t.join(None if end is None else max(0.0, end - time.monotonic()))

    # -- entry points --------------------------------------------------------------------------

    def run(
        self,
        runbook: Runbook,
        event: TriggerEvent | None = None,
        params: Mapping[str, Any] | None = None,
        *,
        dry_run: bool = False,
        requested_by: str | None = None,
    ) -> RunRecord:
        """Run ``runbook`` for ``event`` (a manual event by default) and return its record."""
        rec, run = self._prepare(runbook, event, params, dry_run=dry_run, requested_by=requested_by)
        if run is not None:
            self._execute(run)
        return rec

    def start(
        self,
        runbook: Runbook,
        event: TriggerEvent | None = None,
        params: Mapping[str, Any] | None = None,
        *,
        requested_by: str | None = None,
    ) -> RunRecord:
        """Check and admit synchronously, then run in a background thread. The returned
        record is a snapshot (``pending``, or final when refused); read the store after."""
        rec, run = self._prepare(runbook, event, params, dry_run=False, requested_by=requested_by)
        if run is None:
            return rec
        return self._launch(run)

    def recover(self, runbooks: Mapping[str, Runbook]) -> Recovery:
        """Start-up: resume, with the same ids, the unfinished runs of a previous process that
        had not executed any step (:func:`~opsloop.act.runbooks.records.resumable`) - those
        waiting at the approval gate first (they held a slot), then the queued ones in their
        original order - and mark every other one ``interrupted``. ``runbooks`` are the
        runbooks loaded now, by name. Call it once, before the engine accepts runs."""
        out = Recovery()
        for rec in sorted(self.store.unfinished(), key=_resume_order):
            if resumable(rec):
                out.add(self.resume(rec, runbooks.get(rec.runbook)))
            else:
                self._save(interrupt(rec, self.clock()))
                out.add(rec)
        return out

    def resume(self, record: RunRecord, runbook: Runbook | None) -> RunRecord:
        """Continue ``record`` - queued, or waiting at the run's approval gate, when a
        previous process stopped - with ``runbook`` as loaded now (``None``: it is gone).

        The run keeps its id, trigger event and given parameters (``record.resume``);
        parameters and conditions are checked again. A gate keeps its role and its deadline
        (gate start + ``timeout_s``). A run that cannot go on is ended and saved:
        ``interrupted`` (runbook gone, not resumable), ``skipped`` (disabled, kill switch),
        ``rejected`` (deadline passed), ``failed`` (parameters). Returns a snapshot, like
        :meth:`start`."""
        rec = copy.deepcopy(record)
        try:
            event, given, gate = _decode_resume(rec)
        except (KeyError, TypeError, ValueError) as e:
            return self._end_resumed(rec, RunStatus.INTERRUPTED, f"cannot resume this run: {e}")
        refusal = self._resume_refusal(rec, runbook)
        if refusal is not None:
            return self._end_resumed(rec, *refusal)
        assert runbook is not None  # refused above
        if gate is not None and _gate_left(gate, rec, self.clock()) <= 0:
            return self._expired(rec, gate)
        ctx = self._checked_context(runbook, rec, event, given, dry_run=False)
        if ctx is None:
            return self._end_resumed(rec, rec.status, rec.reason)
        ticket = self.admission.reclaim(
            runbook.name,
            f"{event.kind}:{event.key}",
            at=rec.created,
            slot=gate is not None,
            max_concurrent=runbook.policies.max_concurrent,
        )
        rec.reason = _queued_reason(runbook) if ticket.queued else None
        return self._launch(self._admitted(runbook, rec, ctx, ticket, gate))

    def _resume_refusal(
        self, rec: RunRecord, runbook: Runbook | None
    ) -> tuple[RunStatus, str | None] | None:
        if not resumable(rec):
            return RunStatus.INTERRUPTED, None
        if runbook is None:
            return RunStatus.INTERRUPTED, (
                f"runbook {rec.runbook!r} is no longer loaded (file removed, renamed or "
                "invalid) after a restart; the run was not resumed"
            )
        if self.kill_switch is not None:
            return RunStatus.SKIPPED, f"kill switch: {self.kill_switch}; not resumed"
        if not runbook.enabled:
            return RunStatus.SKIPPED, "runbook is disabled; not resumed"
        return None

    def _end_resumed(self, rec: RunRecord, status: RunStatus, why: str | None) -> RunRecord:
        """End a run that is not resumed (``why``: the error or reason); return a snapshot."""
        now = self.clock()
        why = self.redactor.redact(why) if why else None
        if status is RunStatus.INTERRUPTED:
            interrupt(rec, now, why)
        else:
            rec.status, rec.finished = status, rec.finished or now
            if status is RunStatus.SKIPPED:
                rec.reason = why
            for s in rec.steps:
                if s.status is StepStatus.WAITING_APPROVAL:
                    s.status, s.finished = StepStatus.INTERRUPTED, now
        self._save(rec)
        return copy.deepcopy(rec)

    def _expired(self, rec: RunRecord, gate: StepRecord) -> RunRecord:
        """The approval deadline passed while opsloop was stopped: ``rejected``, as a timeout."""
        _, timeout_s = _gate_spec(gate)
        gate.status, gate.attempts = StepStatus.REJECTED, 1
        gate.reason = (
            f"not approved within {timeout_s:g}s (the deadline passed while opsloop was stopped)"
        )
        self._finish_step(gate)
        self._end(rec, RunStatus.REJECTED, reason=gate.reason)
        return copy.deepcopy(rec)

    def _launch(self, run: _Run) -> RunRecord:
        """Run the rest in a background thread; return a snapshot of the record."""
        snapshot = copy.deepcopy(run.rec)
        t = threading.Thread(target=self._execute, args=(run,), name=f"runbook-{run.rec.id}")
        t.daemon = True
        with self._lock:
            self._threads[run.rec.id] = t
        t.start()
        return snapshot

    # -- preparation ---------------------------------------------------------------------------

    def _finish_early(
        self,
        rec: RunRecord,
        status: RunStatus,
        *,
        reason: str | None = None,
        error: str | None = None,
    ) -> None:
        rec.status = status
        rec.reason = reason
        rec.error = self.redactor.redact(error) if error else None
        rec.finished = self.clock()
        if status is not RunStatus.SKIPPED or self.record_skipped:
            self._save(rec)

    def _save(self, rec: RunRecord) -> None:
        """Save ``rec``; its resume payload is dropped once steps start or the run ends."""
        if rec.status not in (RunStatus.PENDING, RunStatus.WAITING_APPROVAL):
            rec.resume = None
        self.store.save(rec)

    def _prepare(
        self,
        rb: Runbook,
        event: TriggerEvent | None,
        params: Mapping[str, Any] | None,
        *,
        dry_run: bool,
        requested_by: str | None,
    ) -> tuple[RunRecord, _Run | None]:
        event = event or TriggerEvent.manual(requested_by)
        rec = RunRecord(
            id=uuid.uuid4().hex,
            runbook=rb.name,
            trigger=event.summary(),
            dry_run=dry_run,
            requested_by=requested_by or event.requested_by,
            created=self.clock(),
        )
        if self.kill_switch is not None and not dry_run:
            self._finish_early(rec, RunStatus.SKIPPED, reason=f"kill switch: {self.kill_switch}")
            return rec, None
        if not rb.enabled and not dry_run:
            self._finish_early(rec, RunStatus.SKIPPED, reason="runbook is disabled")
            return rec, None
        ctx = self._checked_context(rb, rec, event, params or {}, dry_run=dry_run)
        if ctx is None:
            return rec, None
        if dry_run:
            self._dry_run(rb, rec, ctx)
            return rec, None
        pol = rb.policies
        ticket = self.admission.admit(
            rb.name,
            f"{event.kind}:{event.key}",
            cooldown_s=pol.cooldown_s,
            max_concurrent=pol.max_concurrent,
            max_queued=pol.max_queued if pol.on_busy == "queue" else 0,
        )
        if isinstance(ticket, str):
            self._finish_early(rec, RunStatus.SKIPPED, reason=ticket)
            return rec, None
        if ticket.queued:
            rec.reason = _queued_reason(rb)
        rec.resume = _resume_payload(event, params)
        return rec, self._admitted(rb, rec, ctx, ticket)

    def _admitted(
        self,
        rb: Runbook,
        rec: RunRecord,
        ctx: Context,
        ticket: Ticket,
        gate: StepRecord | None = None,
    ) -> _Run:
        """Register an admitted run (cancellable from now on) and save it."""
        cancel = threading.Event()
        with self._lock:
            self._cancels[rec.id] = cancel
        self._save(rec)
        return _Run(rb, rec, ctx, cancel, ticket, gate)

    def _checked_context(
        self,
        rb: Runbook,
        rec: RunRecord,
        event: TriggerEvent,
        given: Mapping[str, Any],
        *,
        dry_run: bool,
    ) -> Context | None:
        """The run's template context once parameters and conditions pass; ``None`` (``rec``
        ended ``failed`` or ``skipped``) when they refuse the run."""
        data: dict[str, Any] = {
            "event": event.context(),
            "run": {
                "id": rec.id,
                "trigger": event.kind,
                "dry_run": dry_run,
                "requested_by": rec.requested_by or "",
            },
            "runbook": {"name": rb.name, "description": rb.description},
            "steps": {},
        }
        try:
            data["params"] = rec.params = self._params(rb, given, Context(dict(data)))
        except (ParameterError, TemplateError) as e:
            self._finish_early(rec, RunStatus.FAILED, error=f"parameters: {e}")
            return None
        ctx = _DryContext(data, self.secrets) if dry_run else Context(data, self.secrets)
        for text in rb.conditions:
            try:
                ok = truthy(compile_expression(text).evaluate(ctx))
            except ExpressionError as e:
                self._finish_early(rec, RunStatus.FAILED, error=f"condition: {e}")
                return None
            if not ok:
                self._finish_early(rec, RunStatus.SKIPPED, reason=f"condition not met: {text}")
                return None
        return ctx

    def _params(self, rb: Runbook, given: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
        unknown = sorted(set(given) - set(rb.parameters))
        if unknown:
            raise ParameterError(f"unknown parameter(s): {', '.join(unknown)}")
        out: dict[str, Any] = {}
        for name, p in rb.parameters.items():
            if name in given and given[name] is not None:
                value = given[name]
            elif p.default is not None:
                value = render_value(p.default, ctx)
            elif p.required:
                raise ParameterError(f"parameter {name!r} is required")
            else:
                continue
            out[name] = p.coerce(name, value)
        return out

    # -- execution -----------------------------------------------------------------------------

    def _execute(self, run: _Run) -> None:
        rb, rec = run.rb, run.rec
        try:
            if not run.ticket.slot:
                if not self.admission.wait_turn(run.ticket, run.cancel):
                    why = self.kill_switch
                    self._end(
                        rec,
                        RunStatus.CANCELLED,
                        error=f"kill switch: {why}" if why else "cancelled while queued",
                    )
                    return
                rec.reason = None
            self._execute_inner(run)
        except Exception as e:  # never leave a run "running" because of a bug
            rec.status = RunStatus.FAILED
            rec.error = self.redactor.redact(f"internal error: {type(e).__name__}: {e}")
            rec.finished = self.clock()
            self._save(rec)
        finally:
            if run.ticket.slot:
                self.admission.done(rb.name)
            with self._lock:
                self._cancels.pop(rec.id, None)
                self._threads.pop(rec.id, None)

    def _execute_inner(self, run: _Run) -> None:
        rb, rec, ctx, cancel = run.rb, run.rec, run.ctx, run.cancel
        if rb.policies.requires_approval is not None or run.gate is not None:
            outcome = self._approval_gate(run)
            if outcome is not None:
                self._end(rec, outcome)
                return
        rec.status = RunStatus.RUNNING
        rec.started = self.clock()
        self._save(rec)
        deadline = [time.monotonic() + rb.policies.timeout_s]
        failure: dict[str, Any] | None = None
        for i, step in enumerate(rb.steps):
            srec = self._step(run, step, i, "steps", deadline)
            if srec.status is StepStatus.CANCELLED or cancel.is_set():
                self._end(rec, RunStatus.CANCELLED, error=srec.error or "cancelled")
                return
            if srec.status is StepStatus.REJECTED:
                self._end(rec, RunStatus.REJECTED, reason=srec.reason)
                return
            if srec.status is StepStatus.FAILED and not step.allow_failure:
                failure = {"step": srec.label, "error": srec.error or "", "status": "failed"}
                break
        if failure is None:
            self._end(rec, RunStatus.SUCCEEDED)
            return
        rec.error = f"step {failure['step']}: {failure['error']}"
        ctx.data["failure"] = failure
        for i, step in enumerate(rb.on_failure):
            if cancel.is_set():
                break
            self._step(run, step, i, "on_failure", None)
        self._end(rec, RunStatus.FAILED, error=rec.error)

    def _end(
        self,
        rec: RunRecord,
        status: RunStatus,
        *,
        reason: str | None = None,
        error: str | None = None,
    ) -> None:
        rec.status = status
        if reason:
            rec.reason = reason
        if error:
            rec.error = self.redactor.redact(error)
        rec.finished = self.clock()
        self._save(rec)

    def _approval_gate(self, run: _Run) -> RunStatus | None:
        """The run-level gate (``policies.requires_approval``); a resumed gate (``run.gate``)
        keeps its role and its deadline."""
        rb, rec = run.rb, run.rec
        summary = [_describe(s) for s in self._plan(rb, rec, run.ctx, attach=False)]
        if run.gate is not None:
            role, timeout_s = _gate_spec(run.gate)
            left = max(0.0, _gate_left(run.gate, rec, self.clock()))
            return self._gate(run, run.gate, role, timeout_s, "", summary, wait_s=left)
        gate = rb.policies.requires_approval
        assert gate is not None  # checked by the caller
        srec = StepRecord(index=0, label="approval", type="approve", phase="gate")
        rec.steps.append(srec)
        return self._gate(run, srec, gate.role, gate.timeout_s, "", summary)

    def _gate(
        self,
        run: _Run,
        srec: StepRecord,
        role: Role,
        timeout_s: float,
        message: str,
        summary: list[str],
        wait_s: float | None = None,
    ) -> RunStatus | None:
        """Wait at an approval gate (at most ``wait_s``, by default ``timeout_s``); ``None``
        when approved, else the run's end status."""
        rec = run.rec
        srec.status = StepStatus.WAITING_APPROVAL
        if srec.started is None:
            srec.started = self.clock()
        srec.rendered = {"role": role.value, "timeout_s": timeout_s, "message": message}
        rec.status = RunStatus.WAITING_APPROVAL
        self._save(rec)
        if self.approvals is None:
            srec.status = StepStatus.FAILED
            srec.error = "this runbook needs approval but no approvals provider is configured"
            self._finish_step(srec)
            rec.error = srec.error
            return RunStatus.FAILED
        decision = self.approvals.request(
            ApprovalRequest(
                run_id=rec.id,
                runbook=rec.runbook,
                gate=srec.label,
                role=role,
                timeout_s=timeout_s if wait_s is None else wait_s,
                message=message,
                summary=summary,
            ),
            run.cancel,
        )
        srec.approver = decision.by
        srec.attempts = 1
        if decision.outcome == "approved":
            srec.status = StepStatus.SUCCEEDED
            srec.reason = f"approved by {decision.by}" + (
                f": {decision.comment}" if decision.comment else ""
            )
            if srec.phase == "gate":
                rec.approver = decision.by
            self._finish_step(srec)
            return None
        if decision.outcome == "cancelled" or run.cancel.is_set():
            srec.status = StepStatus.CANCELLED
            srec.reason = "cancelled while waiting for approval"
            self._finish_step(srec)
            return RunStatus.CANCELLED
        srec.status = StepStatus.REJECTED
        if decision.outcome == "timeout":
            srec.reason = f"not approved within {timeout_s:g}s"
        else:
            srec.reason = f"rejected by {decision.by}" + (
                f": {decision.comment}" if decision.comment else ""
            )
        self._finish_step(srec)
        rec.reason = srec.reason
        return RunStatus.REJECTED

    def _finish_step(self, srec: StepRecord) -> None:
        srec.finished = self.clock()
        if srec.started is not None:
            srec.duration_s = round(srec.finished - srec.started, 6)

    def _step(
        self, run: _Run, step: Step, index: int, phase: str, deadline: list[float] | None
    ) -> StepRecord:
        rec, ctx = run.rec, run.ctx
        srec = StepRecord(
            index=index, label=step.label(index), type=step.type, phase=phase, id=step.id
        )
        rec.steps.append(srec)
        outputs = ctx.data["steps"]
        if step.when is not None:
            try:
                go = truthy(compile_expression(step.when).evaluate(ctx))
            except ExpressionError as e:
                return self._step_failed(run, srec, step, f"when: {e}")
            if not go:
                srec.status = StepStatus.SKIPPED
                srec.reason = f"when is false: {step.when}"
                if step.id:
                    outputs[step.id] = {
                        **dict.fromkeys(STEP_OUTPUTS[step.type]),
                        "status": "skipped",
                        "attempts": 0,
                    }
                self._save(rec)
                return srec
        try:
            call, shown = self._render(step, ctx)
        except (StepError, TemplateError, SecretError) as e:
            return self._step_failed(run, srec, step, str(e))
        srec.rendered = shown
        srec.started = self.clock()
        srec.status = StepStatus.RUNNING
        rec.status = RunStatus.RUNNING
        self._save(rec)

        if step.approve is not None:
            t0 = time.monotonic()
            outcome = self._gate(
                run, srec, step.approve.role, step.approve.timeout_s, call["message"], []
            )
            if deadline is not None:
                deadline[0] += time.monotonic() - t0  # waiting for people is not run time
            rec.status = RunStatus.RUNNING
            if step.id:
                outputs[step.id] = {
                    "status": srec.status.value,
                    "attempts": 1,
                    "error": srec.error,
                    "approver": srec.approver,
                }
            if outcome is RunStatus.FAILED:
                srec.status = StepStatus.FAILED
            self._save(rec)
            return srec

        retries = step.retries if step.retries is not None else run.rb.policies.retries
        backoff = step.backoff_s if step.backoff_s is not None else run.rb.policies.backoff_s
        delays = backoff_delays(retries, backoff, self.max_backoff_s)
        result = StepResult(ok=False, error="not run")
        run_timeout = False
        for attempt in range(retries + 1):
            left = math.inf if deadline is None else deadline[0] - time.monotonic()
            if left <= 0:
                result = StepResult(ok=False, timed_out=True, error="")
                run_timeout = True
                break
            srec.attempts = attempt + 1
            own = _timeout(step)
            result = self._call(step, call, min(own, left), run.cancel)
            if result.timed_out and left < own:
                run_timeout = True
            if result.ok or result.cancelled or run_timeout:
                break
            if attempt < len(delays) and run.cancel.wait(min(delays[attempt], max(0.0, left))):
                result = StepResult(ok=False, cancelled=True, error="cancelled")
                break
        if run_timeout:
            limit = run.rb.policies.timeout_s
            result.error = f"run timed out (policies.timeout_s = {limit:g}s)" + (
                f"; {result.error}" if result.error else ""
            )
        self._store_result(srec, result)
        if result.ok:
            srec.status = StepStatus.SUCCEEDED
        elif result.cancelled or run.cancel.is_set():
            srec.status = StepStatus.CANCELLED
        else:
            srec.status = StepStatus.FAILED
        if step.id:
            outputs[step.id] = {
                **dict.fromkeys(STEP_OUTPUTS[step.type]),
                **result.outputs,
                "status": srec.status.value,
                "attempts": srec.attempts,
                "error": result.error,
            }
        self._finish_step(srec)
        self._save(rec)
        return srec

    def _step_failed(self, run: _Run, srec: StepRecord, step: Step, error: str) -> StepRecord:
        srec.status = StepStatus.FAILED
        srec.error = self.redactor.redact(error)
        if step.id:
            run.ctx.data["steps"][step.id] = {
                **dict.fromkeys(STEP_OUTPUTS[step.type]),
                "status": "failed",
                "attempts": 0,
                "error": error,
            }
        self._finish_step(srec)
        self._save(run.rec)
        return srec

    def _store_result(self, srec: StepRecord, r: StepResult) -> None:
        srec.exit_code = r.exit_code
        srec.http_status = r.http_status
        srec.stdout = self._capped(r.stdout, r.stdout_dropped)
        srec.stderr = self._capped(r.stderr, r.stderr_dropped)
        srec.error = self.redactor.redact(r.error) if r.error else None

    def _capped(self, text: str, dropped: int) -> str:
        out = self.redactor.redact(text, truncated=dropped > 0)
        if dropped:
            out += f"\n[... truncated: {dropped} more bytes not kept]"
        return out

    def _call(
        self, step: Step, call: dict[str, Any], timeout_s: float, cancel: threading.Event
    ) -> StepResult:
        if step.shell is not None:
            return run_shell(
                call["argv"],
                cwd=call["cwd"],
                env=call["env"],
                timeout_s=timeout_s,
                max_output_bytes=step.shell.max_output_bytes,
                cancel=cancel,
                kill_grace_s=self.kill_grace_s,
            )
        if step.http is not None:
            return run_http(
                call["method"],
                call["url"],
                headers=call["headers"],
                body=call["json"],
                expected_status=step.http.expected_status,
                timeout_s=timeout_s,
                max_output_bytes=step.http.max_output_bytes,
                transport=self.http_transport,
            )
        if step.python is not None:
            return run_python(
                call["entrypoint"],
                call["args"],
                allowed_modules=self.python_modules,
                timeout_s=timeout_s,
                cancel=cancel,
            )
        if step.wait is not None:
            if call["seconds"] > timeout_s:
                r = run_wait(timeout_s, cancel)
                if r.ok:
                    return StepResult(ok=False, timed_out=True, error="")
                return r
            return run_wait(call["seconds"], cancel)
        if step.notify is not None:
            if self.notifier is None:
                return StepResult(ok=False, error="no notifier is configured")
            try:
                self.notifier.notify(
                    call["receiver"], call["message"], call["run_id"], call["runbook"]
                )
            except Exception as e:
                return StepResult(ok=False, error=f"notify failed: {type(e).__name__}: {e}")
            return StepResult(ok=True)
        if step.pipeline is not None or step.model is not None:
            return self._learn_call(step, call, timeout_s)
        raise AssertionError(f"unhandled step type {step.type}")  # pragma: no cover

    def _learn_call(self, step: Step, call: dict[str, Any], timeout_s: float) -> StepResult:
        if self.learn is None:
            return StepResult(ok=False, error=f"{step.type} steps need the platform (no host)")
        actor = f"runbook:{call['runbook']}"
        try:
            if step.pipeline is not None:
                out = self.learn.run_pipeline(
                    call["name"], call["params"], step.pipeline.wait,
                    min(timeout_s, step.pipeline.timeout_s), f"{actor}:{call['run_id']}",
                )  # fmt: skip
                ok = out.get("run_status") not in ("failed", "interrupted", "unknown")
                error = None if ok else f"pipeline run {out.get('run_id')} {out.get('run_status')}"
                return StepResult(ok=ok, outputs=out, error=error)
            out = self.learn.move_model(
                call["action"], call["name"], call["alias"], call["version"], actor,
                call["reason"],
            )  # fmt: skip
            return StepResult(ok=True, outputs=out)
        except Exception as e:
            return StepResult(ok=False, error=f"{step.type} failed: {type(e).__name__}: {e}")

    # -- rendering -----------------------------------------------------------------------------

    def _render(self, step: Step, ctx: Context) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(what to call with, what to record)`` - the record is redacted."""
        red = self.redactor.redact
        if step.shell is not None:
            s = step.shell
            argv = [render_str(a, ctx) for a in s.argv]
            _check_argv(s.argv, argv)
            cwd = render_str(s.cwd, ctx) if s.cwd is not None else None
            if cwd is not None and not os.path.isabs(cwd):
                raise StepError(f"cwd must be an absolute path, got {cwd!r}")
            env = {k: render_str(v, ctx) for k, v in s.env.items()}
            shown = {
                "argv": [red(a) for a in argv],
                "cwd": cwd,
                "env": {k: red(v) for k, v in env.items()},
                "timeout_s": s.timeout_s,
            }
            return {"argv": argv, "cwd": cwd, "env": env}, shown
        if step.http is not None:
            h = step.http
            url = _render_url(h.url, ctx)
            headers = {k: render_str(v, ctx) for k, v in h.headers.items()}
            for k, v in headers.items():
                if "\r" in v or "\n" in v:
                    raise StepError(f"header {k!r}: line breaks are not allowed")
            body = render_value(h.body, ctx) if h.body is not None else None
            shown = {
                "method": h.method,
                "url": red(url),
                "headers": {k: red(v) for k, v in headers.items()},
                "json": _redact_obj(body, red),
                "timeout_s": h.timeout_s,
            }
            return {"method": h.method, "url": url, "headers": headers, "json": body}, shown
        if step.python is not None:
            args = render_value(step.python.args, ctx)
            shown = {"entrypoint": step.python.entrypoint, "args": _redact_obj(args, red)}
            return {"entrypoint": step.python.entrypoint, "args": args}, shown
        if step.wait is not None:
            return {"seconds": step.wait.seconds}, {"seconds": step.wait.seconds}
        if step.notify is not None:
            receiver = render_str(step.notify.receiver, ctx)
            message = red(render_str(step.notify.message, ctx))
            call = {
                "receiver": receiver,
                "message": message,
                "run_id": ctx.data["run"]["id"],
                "runbook": ctx.data["runbook"]["name"],
            }
            return call, {"receiver": receiver, "message": message}
        if step.pipeline is not None:
            name = render_str(step.pipeline.name, ctx)
            params = render_value(step.pipeline.params, ctx)
            base = {"run_id": ctx.data["run"]["id"], "runbook": ctx.data["runbook"]["name"]}
            shown = {"name": name, "params": _redact_obj(params, red), "wait": step.pipeline.wait}
            return {**base, "name": name, "params": params}, shown
        if step.model is not None:
            m = step.model
            call = {
                "run_id": ctx.data["run"]["id"],
                "runbook": ctx.data["runbook"]["name"],
                "action": m.action,
                "name": render_str(m.name, ctx),
                "alias": m.alias,
                "version": render_str(m.version, ctx) if m.version else None,
                "reason": red(render_str(m.reason, ctx)),
            }
            shown = {k: call[k] for k in ("action", "name", "alias", "version", "reason")}
            return call, shown
        if step.approve is not None:
            message = red(render_str(step.approve.message, ctx))
            shown = {"role": step.approve.role.value, "message": message}
            return {"message": message}, shown
        raise AssertionError(f"unhandled step type {step.type}")  # pragma: no cover

    # -- dry run -------------------------------------------------------------------------------

    def _plan(self, rb: Runbook, rec: RunRecord, ctx: Context, *, attach: bool) -> list[StepRecord]:
        dctx = ctx if isinstance(ctx, _DryContext) else _DryContext(ctx.data, self.secrets)
        plan: list[StepRecord] = []
        for phase, steps in (("steps", rb.steps), ("on_failure", rb.on_failure)):
            for i, step in enumerate(steps):
                srec = StepRecord(
                    index=i, label=step.label(i), type=step.type, phase=phase, id=step.id
                )
                srec.status = StepStatus.PLANNED
                if step.when is not None:
                    expr = compile_expression(step.when)
                    if any(r.root in ("steps", "failure") for r in expr.refs):
                        srec.reason = f"runs if {step.when} (decided at run time)"
                    else:
                        try:
                            if not truthy(expr.evaluate(dctx)):
                                srec.status = StepStatus.SKIPPED
                                srec.reason = f"when is false: {step.when}"
                        except ExpressionError as e:
                            srec.status = StepStatus.FAILED
                            srec.error = f"when: {e}"
                if srec.status is StepStatus.PLANNED:
                    try:
                        _, srec.rendered = self._render(step, dctx)
                    except (StepError, TemplateError, SecretError) as e:
                        srec.status = StepStatus.FAILED
                        srec.error = self.redactor.redact(str(e))
                if phase == "on_failure" and srec.status is StepStatus.PLANNED:
                    srec.reason = "runs only if a step fails"
                plan.append(srec)
        if attach:
            rec.steps.extend(plan)
        return plan

    def _dry_run(self, rb: Runbook, rec: RunRecord, ctx: Context) -> None:
        if rb.policies.requires_approval is not None:
            gate = rb.policies.requires_approval
            rec.steps.append(
                StepRecord(
                    index=0,
                    label="approval",
                    type="approve",
                    phase="gate",
                    status=StepStatus.PLANNED,
                    rendered={"role": gate.role.value, "timeout_s": gate.timeout_s},
                    reason=f"waits for approval by {gate.role.value}",
                )
            )
        plan = self._plan(rb, rec, ctx, attach=True)
        problems = [f"{s.label}: {s.error}" for s in plan if s.status is StepStatus.FAILED]
        if problems:
            self._finish_early(
                rec,
                RunStatus.FAILED,
                reason="dry run: nothing was executed",
                error="; ".join(problems),
            )
        else:
            self._finish_early(rec, RunStatus.SUCCEEDED, reason="dry run: nothing was executed")


def _queued_reason(rb: Runbook) -> str:
    return (
        f"queued: {rb.name} has {rb.policies.max_concurrent} run(s) in progress; "
        "starts when one ends"
    )


def _resume_payload(event: TriggerEvent, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """What :meth:`RunbookEngine.resume` needs, JSON-able: the full event, the given params."""
    payload = {"event": event.to_dict(), "params": dict(given or {})}
    return json.loads(json.dumps(payload, default=str))


def _decode_resume(
    rec: RunRecord,
) -> tuple[TriggerEvent, dict[str, Any], StepRecord | None]:
    """``(event, given params, gate step or None)`` from a record to resume."""
    payload = rec.resume
    if not isinstance(payload, Mapping):
        raise ValueError("no resume payload")
    event = TriggerEvent.from_dict(payload["event"])
    given = dict(payload["params"])
    gate = rec.steps[0] if rec.steps else None
    if gate is not None:
        _gate_spec(gate)  # raises on a record it cannot read
    return event, given, gate


def _gate_spec(gate: StepRecord) -> tuple[Role, float]:
    """The role and timeout a gate asked for, as recorded."""
    return Role(gate.rendered["role"]), float(gate.rendered["timeout_s"])


def _gate_left(gate: StepRecord, rec: RunRecord, now: float) -> float:
    """Seconds left before the gate's deadline (its start + ``timeout_s``)."""
    started = gate.started if gate.started is not None else rec.created
    return started + _gate_spec(gate)[1] - now


def _resume_order(rec: RunRecord) -> tuple[int, float]:
    """Runs waiting at a gate first (they held a slot), then by creation."""
    return (0 if rec.status is RunStatus.WAITING_APPROVAL else 1, rec.created)


def _timeout(step: Step) -> float:
    spec = step.spec
    if step.wait is not None:
        return math.inf
    return float(getattr(spec, "timeout_s", 60.0))


def _check_argv(templates: Sequence[str], argv: Sequence[str]) -> None:
    """Refuse values that would turn into options or code.

    * A rendered placeholder value starting with ``-`` before any literal ``--`` would be read
      as an option (``find /x -delete`` from a label ``-delete``): refused.
    * NUL bytes cannot be passed to a program: refused with a clear message.
    """
    seen_dashdash = False
    for j, (tmpl, value) in enumerate(zip(templates, argv, strict=True)):
        if "\x00" in value:
            raise StepError(f"argv[{j}]: NUL characters cannot be passed as an argument")
        if j == 0:
            continue
        templated = any(isinstance(p, Ref) for p in parse_template(tmpl))
        if templated and value.startswith("-") and not seen_dashdash:
            raise StepError(
                f"argv[{j}]: the value {value[:40]!r} starts with '-' and would be read as an "
                f"option; put '--' before it in argv (refusing to run)"
            )
        if not templated and tmpl == "--":
            seen_dashdash = True


def _render_url(template: str, ctx: Context) -> str:
    """Render a URL: a leading placeholder (the base, from params) is kept as is; every other
    value is percent-encoded, so it stays inside its path segment or query value."""
    parts = parse_template(template)
    out: list[str] = []
    for i, p in enumerate(parts):
        if isinstance(p, str):
            out.append(p)
        elif i == 0:
            out.append(stringify(ctx.resolve(p)))
        else:
            out.append(urllib.parse.quote(stringify(ctx.resolve(p)), safe=""))
    url = "".join(out)
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https") and not url.startswith("<"):
        raise StepError(f"url must be http or https, got {url[:60]!r}")
    return url


def _redact_obj(value: Any, red: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return red(value)
    if isinstance(value, Mapping):
        return {k: _redact_obj(v, red) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_obj(v, red) for v in value]
    return value


def _describe(s: StepRecord) -> str:
    r = s.rendered
    if s.status is StepStatus.SKIPPED:
        return f"{s.label}: skipped ({s.reason})"
    if s.type == "shell" and "argv" in r:
        return f"{s.label}: run {r['argv']!r}"
    if s.type == "http" and "url" in r:
        return f"{s.label}: {r['method']} {r['url']}"
    if s.type == "python" and "entrypoint" in r:
        return f"{s.label}: call {r['entrypoint']}"
    if s.type == "notify" and "receiver" in r:
        return f"{s.label}: notify {r['receiver']}"
    if s.type == "wait":
        return f"{s.label}: wait {r.get('seconds')}s"
    if s.type == "approve":
        return f"{s.label}: approval by {r.get('role')}"
    if s.type == "pipeline" and "name" in r:
        return f"{s.label}: run pipeline {r['name']}"
    if s.type == "model" and "name" in r:
        return f"{s.label}: {r['action']} model {r['name']}@{r['alias']}"
    return f"{s.label}: {s.type}" + (f" ({s.error})" if s.error else "")
