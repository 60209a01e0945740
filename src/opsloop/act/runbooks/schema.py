"""The runbook file format, validated with pydantic (unknown keys are errors).

::

    name: restart-crashlooping-unit
    description: Restart a systemd unit that keeps crashing.
    triggers:
      - alert: {matchers: '{alertname="UnitCrashLoop", unit=~".+"}', severity: warning}
      - anomaly: {source: metrics.forecast, kind: exhaustion_forecast, matchers: '{}'}
      - schedule: {cron: "*/5 * * * *"}
      - manual: {}
    conditions: ["event.labels.env == 'prod'"]
    parameters:
      unit: {type: string, default: "${event.labels.unit}", pattern: '[A-Za-z0-9@._-]+'}
    policies: {timeout_s: 300, cooldown_s: 1800, max_concurrent: 1, retries: 0,
               requires_approval: {role: admin, timeout_s: 3600}}
    steps:
      - id: restart
        shell: {argv: [systemctl, restart, "${params.unit}"], timeout_s: 60}
        retries: 2
        backoff_s: 5
      - notify: {receiver: oncall, message: "restarted ${params.unit}"}
        when: "steps.restart.exit_code == 0"
    on_failure:
      - notify: {receiver: oncall, message: "restart failed: ${failure.error}"}

A step is a mapping with exactly one of ``shell``, ``http``, ``python``, ``wait``, ``notify``,
``approve``, ``pipeline`` (start a pipeline run), ``model`` (roll back or promote a model)
plus the common keys ``id``, ``name``, ``when``, ``retries``, ``backoff_s``, ``allow_failure``.
Shell commands are argv lists only - a string command is an error, because splitting it would
need a shell. Cross-references (``${params.x}`` names a parameter,
``${steps.a...}`` an earlier step) are checked by :mod:`~opsloop.act.runbooks.checks`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from opsloop.act.incidents.alert import Severity
from opsloop.act.incidents.matchers import Matcher, MatcherError, parse_matchers
from opsloop.act.runbooks.cron import Cron, CronError
from opsloop.act.runbooks.expression import ExpressionError, compile_expression
from opsloop.act.runbooks.parameters import Parameter
from opsloop.act.runbooks.template import TemplateError, iter_strings, parse_template
from opsloop.roles import Role

__all__ = [
    "STEP_TYPES",
    "AlertTrigger",
    "AnomalyTrigger",
    "ApprovalPolicy",
    "ApproveSpec",
    "HttpSpec",
    "ManualTrigger",
    "NotifySpec",
    "Policies",
    "PythonSpec",
    "Runbook",
    "ScheduleTrigger",
    "ShellSpec",
    "Step",
    "Trigger",
    "WaitSpec",
]

STEP_TYPES = ("shell", "http", "python", "wait", "notify", "approve", "pipeline", "model")
TRIGGER_KINDS = ("alert", "anomaly", "schedule", "manual")
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,127}\Z")
_STEP_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
_ENTRYPOINT = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*\Z")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
MAX_OUTPUT_CAP = 16 * 1024 * 1024


def _template(v: str) -> str:
    try:
        parse_template(v)
    except TemplateError as e:
        raise ValueError(str(e)) from None
    return v


def _templates_in(v: Any) -> Any:
    for _, s in iter_strings(v):
        _template(s)
    return v


def _expression(v: str) -> str:
    try:
        compile_expression(v)
    except ExpressionError as e:
        raise ValueError(str(e)) from None
    return v


def _argv_item(v: Any) -> Any:
    # numbers are written as arguments ([sleep, 30]); booleans/null/mappings are mistakes
    if isinstance(v, int | float) and not isinstance(v, bool):
        return str(v)
    return v


def _argv_list(v: Any) -> Any:
    if isinstance(v, str):
        raise ValueError(
            "argv must be a list of arguments, not a string: splitting a string needs a shell, "
            f"and runbooks never use one (write e.g. {v.split()[:3]!r})"
        )
    return v


def _severity(v: Any) -> Severity:
    if isinstance(v, Severity):
        return v
    if not isinstance(v, str):
        raise ValueError("severity is one of critical, error, warning, info")
    return Severity.parse(v)


def _matchers(v: Any) -> Any:
    texts = [v] if isinstance(v, str) else v
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise ValueError('matchers is a string such as \'{alertname="X", host=~"db.*"}\'')
    for t in texts:
        try:
            parse_matchers(t)
        except MatcherError as e:
            raise ValueError(str(e)) from None
    return "{" + ", ".join(t.strip().removeprefix("{").removesuffix("}") for t in texts) + "}"


def _cron(v: str) -> str:
    try:
        Cron.parse(v)
    except CronError as e:
        raise ValueError(str(e)) from None
    return v


Template = Annotated[str, AfterValidator(_template)]
Expr = Annotated[str, AfterValidator(_expression)]
ArgvItem = Annotated[str, BeforeValidator(_argv_item), AfterValidator(_template)]
Matchers = Annotated[str, BeforeValidator(_matchers)]
Seconds = Annotated[float, Field(gt=0, le=7 * 86400)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# -- triggers --------------------------------------------------------------------------------


class AlertTrigger(_Model):
    """Fires on an alert whose labels match and whose severity is at least ``severity``."""

    matchers: Matchers = "{}"
    severity: Annotated[Severity, BeforeValidator(_severity)] | None = None

    @property
    def parsed(self) -> list[Matcher]:
        """The label matchers."""
        return parse_matchers(self.matchers)


class AnomalyTrigger(_Model):
    """Fires on an anomaly from ``source`` of ``kind`` (each optional) whose labels match."""

    source: str | None = None
    kind: str | None = None
    matchers: Matchers = "{}"

    @property
    def parsed(self) -> list[Matcher]:
        """The label matchers."""
        return parse_matchers(self.matchers)


class ScheduleTrigger(_Model):
    """Fires at the minutes a five-field cron expression selects."""

    cron: Annotated[str, AfterValidator(_cron)]

    @property
    def parsed(self) -> Cron:
        """The parsed expression."""
        return Cron.parse(self.cron)


class ManualTrigger(_Model):
    """Runs when someone asks for it (API, CLI, dashboard)."""


class Trigger(_Model):
    """Exactly one of ``alert``, ``anomaly``, ``schedule``, ``manual``."""

    alert: AlertTrigger | None = None
    anomaly: AnomalyTrigger | None = None
    schedule: ScheduleTrigger | None = None
    manual: ManualTrigger | None = None

    @model_validator(mode="before")
    @classmethod
    def _manual_null(cls, data: Any) -> Any:
        if isinstance(data, dict) and "manual" in data and data["manual"] is None:
            data = {**data, "manual": {}}
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> Trigger:
        found = [k for k in TRIGGER_KINDS if getattr(self, k) is not None]
        if len(found) != 1:
            raise ValueError(
                f"a trigger needs exactly one of {', '.join(TRIGGER_KINDS)} "
                f"(found {', '.join(found) or 'none'})"
            )
        return self

    @property
    def kind(self) -> str:
        """``alert``, ``anomaly``, ``schedule`` or ``manual``."""
        return next(k for k in TRIGGER_KINDS if getattr(self, k) is not None)

    @property
    def spec(self) -> AlertTrigger | AnomalyTrigger | ScheduleTrigger | ManualTrigger:
        """The trigger's settings."""
        return getattr(self, self.kind)


# -- steps -----------------------------------------------------------------------------------


class ShellSpec(_Model):
    """Run a program: ``argv`` is passed to ``execve`` as is - no shell, no splitting."""

    argv: Annotated[list[ArgvItem], BeforeValidator(_argv_list), Field(min_length=1)]
    cwd: Template | None = None
    env: dict[str, Template] = Field(default_factory=dict)
    timeout_s: Seconds = 60.0
    max_output_bytes: Annotated[int, Field(ge=256, le=MAX_OUTPUT_CAP)] = 64 * 1024

    @field_validator("env")
    @classmethod
    def _env_names(cls, v: dict[str, str]) -> dict[str, str]:
        for k in v:
            if not _ENV_NAME.match(k):
                raise ValueError(f"bad environment variable name {k!r}")
        return v


class HttpSpec(_Model):
    """An HTTP request with httpx; any ``expected_status`` (default: any 2xx) succeeds."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    url: Template
    headers: dict[str, Template] = Field(default_factory=dict)
    body: Annotated[Any, AfterValidator(_templates_in)] = Field(default=None, alias="json")
    expected_status: list[Annotated[int, Field(ge=100, le=599)]] | None = None
    timeout_s: Seconds = 30.0
    max_output_bytes: Annotated[int, Field(ge=256, le=MAX_OUTPUT_CAP)] = 64 * 1024

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    @field_validator("expected_status", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not (v.startswith(("http://", "https://", "${"))):
            raise ValueError(f"url must start with http:// or https:// (got {v!r})")
        return v


class PythonSpec(_Model):
    """Call ``module:function(**args)`` in a worker thread (it cannot be force-killed)."""

    entrypoint: str
    args: Annotated[dict[str, Any], AfterValidator(_templates_in)] = Field(default_factory=dict)
    timeout_s: Seconds = 60.0

    @field_validator("entrypoint")
    @classmethod
    def _format(cls, v: str) -> str:
        if not _ENTRYPOINT.match(v):
            raise ValueError(f"entrypoint is 'package.module:function', got {v!r}")
        return v


class WaitSpec(_Model):
    """Sleep (cancellable); counts towards the run's timeout."""

    seconds: Annotated[float, Field(ge=0, le=86400)]


class NotifySpec(_Model):
    """Send ``message`` to a notification receiver through the host's :class:`Notifier`."""

    receiver: Template
    message: Template


class ApproveSpec(_Model):
    """Pause until someone with ``role`` approves (rejection or timeout fail the run)."""

    role: Role = Role.operator
    timeout_s: Seconds = 3600.0
    message: Template = ""


class PipelineSpec(_Model):
    """Start a data/training pipeline (e.g. retrain a model); ``wait`` for it to finish."""

    name: Template
    params: Annotated[dict[str, Any], AfterValidator(_templates_in)] = Field(default_factory=dict)
    wait: bool = False
    timeout_s: Seconds = 3600.0


class ModelSpec(_Model):
    """Move a registered model's alias: ``rollback`` to the previous version, or ``promote``."""

    action: Literal["rollback", "promote"]
    name: Template
    alias: str = "champion"
    version: Template | None = None
    reason: Template = ""

    @model_validator(mode="after")
    def _version(self) -> ModelSpec:
        if self.action == "promote" and not self.version:
            raise ValueError("promote needs a version")
        return self


class Step(_Model):
    """One step: exactly one type key plus the common keys."""

    id: str | None = None
    name: str | None = None
    when: Expr | None = None
    retries: Annotated[int, Field(ge=0, le=20)] | None = None
    backoff_s: Annotated[float, Field(ge=0, le=3600)] | None = None
    allow_failure: bool = False
    shell: ShellSpec | None = None
    http: HttpSpec | None = None
    python: PythonSpec | None = None
    wait: WaitSpec | None = None
    notify: NotifySpec | None = None
    approve: ApproveSpec | None = None
    pipeline: PipelineSpec | None = None
    model: ModelSpec | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, v: str | None) -> str | None:
        if v is not None and not _STEP_ID.match(v):
            raise ValueError(f"a step id is letters, digits and '_' (got {v!r})")
        return v

    @model_validator(mode="after")
    def _exactly_one(self) -> Step:
        found = [k for k in STEP_TYPES if getattr(self, k) is not None]
        if len(found) != 1:
            raise ValueError(
                f"a step needs exactly one of {', '.join(STEP_TYPES)} "
                f"(found {', '.join(found) or 'none'})"
            )
        return self

    @property
    def type(self) -> str:
        """``shell``, ``http``, ``python``, ``wait``, ``notify`` or ``approve``."""
        return next(k for k in STEP_TYPES if getattr(self, k) is not None)

    @property
    def spec(
        self,
    ) -> (
        ShellSpec
        | HttpSpec
        | PythonSpec
        | WaitSpec
        | NotifySpec
        | ApproveSpec
        | PipelineSpec
        | ModelSpec
    ):
        """The type-specific settings."""
        return getattr(self, self.type)

    def label(self, index: int) -> str:
        """``id``, else ``name``, else ``#<index> <type>`` - how records and errors name it."""
        return self.id or self.name or f"#{index + 1} {self.type}"


# -- policies and the runbook ----------------------------------------------------------------


class ApprovalPolicy(_Model):
    """Who must approve each run before its first step, and how long to wait."""

    role: Role = Role.admin
    timeout_s: Seconds = 3600.0


class Policies(_Model):
    """Limits on every run of the runbook."""

    timeout_s: Seconds = 900.0
    cooldown_s: Annotated[float, Field(ge=0, le=30 * 86400)] = 0.0
    max_concurrent: Annotated[int, Field(ge=1, le=100)] = 1
    on_busy: Literal["queue", "skip"] = "queue"
    max_queued: Annotated[int, Field(ge=1, le=1000)] = 10
    requires_approval: ApprovalPolicy | None = None
    retries: Annotated[int, Field(ge=0, le=20)] = 0
    backoff_s: Annotated[float, Field(ge=0, le=3600)] = 1.0

    @field_validator("requires_approval", mode="before")
    @classmethod
    def _bool(cls, v: Any) -> Any:
        if v is True:
            return {}
        if v is False:
            return None
        return v


class Runbook(_Model):
    """A validated runbook; ``source`` is the file it came from (set by the loader)."""

    name: str
    description: str = ""
    enabled: bool = True
    triggers: list[Trigger] = Field(default_factory=lambda: [Trigger(manual=ManualTrigger())])
    conditions: list[Expr] = Field(default_factory=list)
    parameters: dict[str, Parameter] = Field(default_factory=dict)
    steps: Annotated[list[Step], Field(min_length=1)]
    on_failure: list[Step] = Field(default_factory=list)
    policies: Policies = Field(default_factory=Policies)
    _source: str | None = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(
                f"a runbook name is lower-case letters, digits, '.', '_' and '-' (got {v!r})"
            )
        return v

    @field_validator("parameters")
    @classmethod
    def _param_names(cls, v: dict[str, Parameter]) -> dict[str, Parameter]:
        for k in v:
            if not _STEP_ID.match(k):
                raise ValueError(f"a parameter name is letters, digits and '_' (got {k!r})")
        return v

    @property
    def source(self) -> str | None:
        """The file this runbook was loaded from, if any."""
        return self._source

    def step_by_id(self, step_id: str) -> Step | None:
        """The main or on_failure step with this id."""
        return next((s for s in (*self.steps, *self.on_failure) if s.id == step_id), None)
