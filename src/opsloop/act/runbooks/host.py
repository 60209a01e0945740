"""What the engine's host provides: a :class:`Notifier` and :class:`Approvals`.

The engine runs synchronously (in a worker thread of the host). ``notify`` must not block for
long - hand the message to a queue (opsloop's notification dispatcher ``submit`` never blocks).
``Approvals.request`` *does* block: until a decision, the timeout, or the run's ``cancel``
event. :class:`InMemoryApprovals` implements it with a condition variable; the API layer calls
:meth:`InMemoryApprovals.decide` when someone clicks approve/reject.

>>> import threading
>>> approvals = InMemoryApprovals()
>>> req = ApprovalRequest(run_id="r1", runbook="x", gate="run", role=Role.admin, timeout_s=5)
>>> t = threading.Timer(0.05, approvals.decide, args=("r1", "run", True, "alice", Role.admin))
>>> t.start(); approvals.request(req, threading.Event()).outcome
'approved'
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from opsloop.roles import Role

__all__ = [
    "ApprovalDecision",
    "ApprovalRequest",
    "Approvals",
    "InMemoryApprovals",
    "LearnActions",
    "Notifier",
    "RecordingNotifier",
]

Outcome = Literal["approved", "rejected", "timeout", "cancelled"]


@dataclass(frozen=True)
class ApprovalRequest:
    """A run waiting at a gate: ``gate`` is ``run`` (``policies.requires_approval``) or the
    label of an ``approve`` step. ``summary`` describes what will run (rendered, redacted)."""

    run_id: str
    runbook: str
    gate: str
    role: Role
    timeout_s: float
    message: str = ""
    summary: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ApprovalDecision:
    """How a gate ended; ``by`` is who decided (``None`` on timeout/cancel)."""

    outcome: Outcome
    by: str | None = None
    comment: str = ""


@runtime_checkable
class Notifier(Protocol):
    """Sends a runbook's ``notify`` step message to a named receiver."""

    def notify(self, receiver: str, message: str, run_id: str, runbook: str) -> None:
        """Deliver or enqueue; raise to fail the step (it may be retried)."""


@runtime_checkable
class Approvals(Protocol):
    """Asks humans to approve a run and waits for the answer."""

    def request(self, req: ApprovalRequest, cancel: threading.Event) -> ApprovalDecision:
        """Block until decided, ``req.timeout_s`` passes (``timeout``) or ``cancel`` is set."""


class InMemoryApprovals:
    """Pending approvals in memory; :meth:`decide` answers one (checking the role).

    A restart loses them, not the runs: the engine's ``recover`` asks again for the runs that
    were waiting at their approval gate (same run id, original deadline)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: dict[tuple[str, str], ApprovalRequest] = {}
        self._decided: dict[tuple[str, str], ApprovalDecision] = {}

    def pending(self) -> list[ApprovalRequest]:
        """Requests waiting for a decision."""
        with self._cond:
            return list(self._pending.values())

    def wait_pending(self, timeout_s: float = 5.0) -> list[ApprovalRequest]:
        """Block until at least one request is pending (tests, CLIs)."""
        with self._cond:
            self._cond.wait_for(lambda: bool(self._pending), timeout=timeout_s)
            return list(self._pending.values())

    def decide(
        self,
        run_id: str,
        gate: str,
        approved: bool,
        by: str,
        role: Role | None = None,
        comment: str = "",
    ) -> None:
        """Approve or reject. With ``role``, a holder below the gate's role is refused
        (``PermissionError``); ``KeyError`` when nothing is pending for that run and gate."""
        key = (run_id, gate)
        with self._cond:
            req = self._pending.get(key)
            if req is None:
                raise KeyError(f"no pending approval for run {run_id} at {gate!r}")
            if role is not None and not Role(role).allows(req.role):
                raise PermissionError(f"approving {req.runbook} needs role {req.role.value}")
            self._decided[key] = ApprovalDecision(
                "approved" if approved else "rejected", by=by, comment=comment
            )
            self._cond.notify_all()

    def request(self, req: ApprovalRequest, cancel: threading.Event) -> ApprovalDecision:
        """See :class:`Approvals`."""
        key = (req.run_id, req.gate)
        deadline = time.monotonic() + req.timeout_s
        with self._cond:
            self._pending[key] = req
            self._cond.notify_all()
            try:
                while key not in self._decided:
                    left = deadline - time.monotonic()
                    if cancel.is_set():
                        return ApprovalDecision("cancelled")
                    if left <= 0:
                        return ApprovalDecision("timeout")
                    self._cond.wait(timeout=min(left, 0.05))
                return self._decided.pop(key)
            finally:
                self._pending.pop(key, None)


class RecordingNotifier:
    """A :class:`Notifier` that keeps ``(receiver, message, run_id, runbook)`` tuples."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str, str]] = []

    def notify(self, receiver: str, message: str, run_id: str, runbook: str) -> None:
        """Record the message."""
        self.sent.append((receiver, message, run_id, runbook))


@runtime_checkable
class LearnActions(Protocol):
    """What ``pipeline`` and ``model`` steps do, provided by the host (the platform)."""

    def run_pipeline(
        self, name: str, params: dict, wait: bool, timeout_s: float, trigger: str
    ) -> dict:
        """Start (and with ``wait`` finish) a pipeline run; return ``{run_id, run_status}``."""
        ...

    def move_model(
        self, action: str, name: str, alias: str, version: str | None, actor: str, reason: str
    ) -> dict:
        """Promote or roll back ``name``'s ``alias``; return ``{version, previous}``."""
        ...
