"""Runbook automation: YAML runbooks run safely for alerts, anomalies, schedules and people.

* :mod:`~opsloop.act.runbooks.schema`, :mod:`~opsloop.act.runbooks.parameters`,
  :mod:`~opsloop.act.runbooks.checks` - the file format and its validation;
* :mod:`~opsloop.act.runbooks.loader` - :func:`load_runbooks` with *file:line:column* errors;
* :mod:`~opsloop.act.runbooks.template`, :mod:`~opsloop.act.runbooks.expression` -
  ``${...}`` placeholders and the ``when:`` language (no ``eval``, no shell);
* :mod:`~opsloop.act.runbooks.secrets` - ``${secret:NAME}`` and the :class:`Redactor`;
* :mod:`~opsloop.act.runbooks.triggers`, :mod:`~opsloop.act.runbooks.cron` - events and which
  runbook they fire;
* :mod:`~opsloop.act.runbooks.steps` - shell/HTTP/Python/wait executors;
* :mod:`~opsloop.act.runbooks.engine` - :class:`RunbookEngine` (approvals, cooldown,
  concurrency, kill switch, retries, timeouts, dry run, ``on_failure``);
* :mod:`~opsloop.act.runbooks.records`, :mod:`~opsloop.act.runbooks.host` - what the host
  provides and receives: :class:`RunStore`, :class:`Notifier`, :class:`Approvals`; at start-up
  :meth:`RunbookEngine.recover` resumes queued runs and runs waiting for approval.

``EXAMPLES_DIR`` holds built-in example runbooks.
"""

from pathlib import Path

from opsloop.act.runbooks.admission import Admission
from opsloop.act.runbooks.cron import Cron, CronError
from opsloop.act.runbooks.engine import Recovery, RunbookEngine, StepError, backoff_delays
from opsloop.act.runbooks.expression import (
    Expression,
    ExpressionError,
    compile_expression,
    evaluate_condition,
)
from opsloop.act.runbooks.host import (
    ApprovalDecision,
    ApprovalRequest,
    Approvals,
    InMemoryApprovals,
    Notifier,
    RecordingNotifier,
)
from opsloop.act.runbooks.loader import (
    RunbookError,
    RunbookValidationError,
    load_runbook,
    load_runbooks,
    parse_runbook,
)
from opsloop.act.runbooks.parameters import Parameter, ParameterError
from opsloop.act.runbooks.records import (
    InMemoryRunStore,
    RunRecord,
    RunStatus,
    RunStore,
    StepRecord,
    StepStatus,
    mark_interrupted,
    resumable,
)
from opsloop.act.runbooks.schema import Runbook, Step, Trigger
from opsloop.act.runbooks.secrets import Redactor, SecretError, SecretResolver
from opsloop.act.runbooks.template import Context, TemplateError, render_str, render_value
from opsloop.act.runbooks.triggers import TriggerEvent, matching_trigger, scheduled_runbooks

EXAMPLES_DIR = Path(__file__).parent / "examples"

__all__ = [
    "EXAMPLES_DIR",
    "Admission",
    "ApprovalDecision",
    "ApprovalRequest",
    "Approvals",
    "Context",
    "Cron",
    "CronError",
    "Expression",
    "ExpressionError",
    "InMemoryApprovals",
    "InMemoryRunStore",
    "Notifier",
    "Parameter",
    "ParameterError",
    "RecordingNotifier",
    "Recovery",
    "Redactor",
    "RunRecord",
    "RunStatus",
    "RunStore",
    "Runbook",
    "RunbookEngine",
    "RunbookError",
    "RunbookValidationError",
    "SecretError",
    "SecretResolver",
    "Step",
    "StepError",
    "StepRecord",
    "StepStatus",
    "TemplateError",
    "Trigger",
    "TriggerEvent",
    "backoff_delays",
    "compile_expression",
    "evaluate_condition",
    "load_runbook",
    "load_runbooks",
    "mark_interrupted",
    "matching_trigger",
    "parse_runbook",
    "render_str",
    "render_value",
    "resumable",
    "scheduled_runbooks",
]
