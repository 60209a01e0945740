"""Cross-reference checks a schema cannot express, each with the path of the offending value.

* ``${params.x}`` names a declared parameter; ``${steps.a.stdout}`` an *earlier* step with
  ``id: a`` and an output that step type has; ``${event.x}``, ``${run.x}``, ``${runbook.x}``
  and ``${failure.x}`` name known fields (``failure`` only inside ``on_failure``);
* each place allows only some sources. Notably, for safety by construction:

  - ``argv[0]`` (the program) is literal - an event can never choose what runs;
  - the code argument of a shell or interpreter (``sh -c CODE``, ``bash -ec CODE``,
    ``python -c CODE``, ``perl -e CODE``, also after ``sudo``/``env``) is literal: values go in
    as positional arguments (``[sh, -c, 'echo "$1"', sh, "${event.labels.x}"]``), never into
    code;
  - secrets are not allowed in ``argv`` (other users can read a process's arguments): pass
    them through ``env``, HTTP headers/body or Python args;
  - ``cwd`` comes from parameters only (path-typed ones are checked), never from the event;
  - a placeholder at the very start of an HTTP ``url`` (the scheme and host) must be a
    parameter; later ones are percent-encoded when rendered;

* step ids are unique across ``steps`` and ``on_failure``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from opsloop.act.runbooks.expression import compile_expression
from opsloop.act.runbooks.schema import Runbook, Step
from opsloop.act.runbooks.template import Ref, TemplateError, iter_strings, parse_template

__all__ = [
    "EVENT_FIELDS",
    "FAILURE_FIELDS",
    "RUNBOOK_FIELDS",
    "RUN_FIELDS",
    "STEP_OUTPUTS",
    "Problem",
    "check_runbook",
]

Path = tuple[str | int, ...]
Problem = tuple[Path, str]

EVENT_FIELDS = frozenset(
    {"kind", "key", "labels", "annotations", "severity", "source", "time", "data", "name"}
)
RUN_FIELDS = frozenset({"id", "trigger", "dry_run", "requested_by"})
RUNBOOK_FIELDS = frozenset({"name", "description"})
FAILURE_FIELDS = frozenset({"step", "error", "status"})
_COMMON_OUTPUTS = {"status", "attempts", "error"}
STEP_OUTPUTS: dict[str, frozenset[str]] = {
    "shell": frozenset(_COMMON_OUTPUTS | {"stdout", "stderr", "exit_code"}),
    "http": frozenset(_COMMON_OUTPUTS | {"status_code", "body", "json"}),
    "python": frozenset(_COMMON_OUTPUTS | {"result"}),
    "wait": frozenset(_COMMON_OUTPUTS),
    "notify": frozenset(_COMMON_OUTPUTS),
    "approve": frozenset(_COMMON_OUTPUTS | {"approver"}),
    "pipeline": frozenset(_COMMON_OUTPUTS | {"run_id", "run_status"}),
    "model": frozenset(_COMMON_OUTPUTS | {"version", "previous"}),
}
_NESTED_OUTPUTS = {"json", "result"}  # may be followed by more path segments

_SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "csh", "tcsh", "busybox"}
_SHELL_CODE_FLAG = re.compile(r"-[A-Za-z]*c[A-Za-z]*\Z")
_INTERPRETERS = {
    re.compile(r"python[0-9.]*\Z"): {"-c"},
    re.compile(r"pypy[0-9.]*\Z"): {"-c"},
    re.compile(r"perl[0-9.]*\Z"): {"-e", "-E"},
    re.compile(r"ruby[0-9.]*\Z"): {"-e"},
    re.compile(r"node(js)?\Z"): {"-e", "--eval", "-p", "--print"},
    re.compile(r"php[0-9.]*\Z"): {"-r"},
    re.compile(r"osascript\Z"): {"-e"},
}

ALL = frozenset({"params", "event", "steps", "secret", "run", "runbook"})


def check_runbook(rb: Runbook) -> list[Problem]:
    """Every cross-reference problem in ``rb`` (empty when it is consistent)."""
    problems: list[Problem] = []
    ids: dict[str, Path] = {}
    for phase in ("steps", "on_failure"):
        for i, step in enumerate(getattr(rb, phase)):
            if step.id is None:
                continue
            if step.id in ids:
                problems.append(((phase, i, "id"), f"duplicate step id {step.id!r}"))
            else:
                ids[step.id] = (phase, i)
    base = ALL - {"steps", "secret"}

    for name, p in rb.parameters.items():
        if isinstance(p.default, str):
            problems += _refs(
                rb, p.default, ("parameters", name, "default"), {"event", "run", "runbook"}, {}
            )
    for i, cond in enumerate(rb.conditions):
        problems += _expr_refs(rb, cond, ("conditions", i), base, {})

    main_types = {s.id: s.type for s in rb.steps if s.id}
    earlier: dict[str, str] = {}
    for i, step in enumerate(rb.steps):
        problems += _step(rb, step, ("steps", i), earlier, failure=False)
        if step.id:
            earlier[step.id] = step.type
    earlier = dict(main_types)
    for i, step in enumerate(rb.on_failure):
        problems += _step(rb, step, ("on_failure", i), earlier, failure=True)
        if step.id:
            earlier[step.id] = step.type
    return problems


def _step(
    rb: Runbook, step: Step, at: Path, steps: dict[str, str], *, failure: bool
) -> list[Problem]:
    out: list[Problem] = []
    extra = {"failure"} if failure else set()
    anything = (ALL | extra) - {"secret"}
    with_secrets = ALL | extra
    if step.when is not None:
        out += _expr_refs(rb, step.when, (*at, "when"), anything, steps)
    t = step.type
    where = (*at, t)
    for path, text, allowed in _templated(step):
        out += _refs(rb, text, (*where, *path), allowed & with_secrets, steps)
    if t == "shell" and step.shell is not None:
        if step.shell.argv and _placeholders(step.shell.argv[0]):
            out.append(
                ((*where, "argv", 0), "the program (argv[0]) must be literal, not a placeholder")
            )
        for j in _code_arguments(step.shell.argv):
            out.append(
                (
                    (*where, "argv", j),
                    "code run by a shell or interpreter must be literal; pass values as "
                    "positional arguments after it (e.g. [sh, -c, 'echo \"$1\"', sh, VALUE])",
                )
            )
    if t == "http" and step.http is not None:
        parsed = _safe_parse(step.http.url)
        if parsed and isinstance(parsed[0], Ref) and parsed[0].root != "params":
            out.append(
                (
                    (*where, "url"),
                    f"a url may start with a placeholder only from params (got {parsed[0]})",
                )
            )
    return out


def _code_arguments(argv: Sequence[str]) -> list[int]:
    """Indexes of templated arguments that a shell/interpreter in ``argv`` would run as code."""
    out: list[int] = []
    for k, prog in enumerate(argv):
        if _placeholders(prog):
            continue
        base = prog.rsplit("/", 1)[-1]
        if base in _SHELLS:
            is_flag = _SHELL_CODE_FLAG.match
        else:
            flags = next((f for rx, f in _INTERPRETERS.items() if rx.match(base)), None)
            if flags is None:
                continue
            is_flag = flags.__contains__  # type: ignore[assignment]
        for m in range(k + 1, len(argv) - 1):
            if not _placeholders(argv[m]) and is_flag(argv[m]) and _placeholders(argv[m + 1]):
                out.append(m + 1)
    return sorted(set(out))


def _templated(step: Step) -> Iterator[tuple[Path, str, frozenset[str] | set[str]]]:
    """``(path inside the spec, template, allowed roots)`` for every templated string."""
    no_secret = (ALL | {"failure"}) - {"secret"}
    everything = ALL | {"failure"}
    if step.shell is not None:
        for j, a in enumerate(step.shell.argv):
            yield ("argv", j), a, no_secret
        if step.shell.cwd is not None:
            yield ("cwd",), step.shell.cwd, {"params", "runbook", "run"}
        for k, v in step.shell.env.items():
            yield ("env", k), v, everything
    elif step.http is not None:
        yield ("url",), step.http.url, everything
        for k, v in step.http.headers.items():
            yield ("headers", k), v, everything
        for p, v in iter_strings(step.http.body):
            yield ("json", *p), v, everything
    elif step.python is not None:
        for p, v in iter_strings(step.python.args):
            yield ("args", *p), v, everything
    elif step.notify is not None:
        yield ("receiver",), step.notify.receiver, no_secret
        yield ("message",), step.notify.message, no_secret
    elif step.approve is not None:
        yield ("message",), step.approve.message, no_secret


def _safe_parse(text: str) -> list[str | Ref]:
    try:
        return parse_template(text)
    except TemplateError:
        return []


def _placeholders(text: str) -> list[Ref]:
    return [p for p in _safe_parse(text) if isinstance(p, Ref)]


def _refs(rb: Runbook, text: str, at: Path, allowed: Any, steps: dict[str, str]) -> list[Problem]:
    return [
        (at, msg) for ref in _placeholders(text) if (msg := _check_ref(rb, ref, allowed, steps))
    ]


def _expr_refs(
    rb: Runbook, text: str, at: Path, allowed: Any, steps: dict[str, str]
) -> list[Problem]:
    refs = compile_expression(text).refs  # the schema has already checked the syntax
    return [(at, msg) for ref in refs if (msg := _check_ref(rb, ref, allowed, steps))]


def _check_ref(rb: Runbook, ref: Ref, allowed: Any, steps: dict[str, str]) -> str | None:
    if ref.root not in allowed:
        if ref.root == "secret":
            return (
                f"{ref}: secrets are not allowed here"
                " (pass them to programs through env:, not argv)"
            )
        return f"{ref}: {ref.root} is not available here (allowed: {', '.join(sorted(allowed))})"
    p = ref.path
    if ref.root == "params":
        if not p:
            return f"{ref}: name a parameter, e.g. ${{params.x}}"
        if p[0] not in rb.parameters:
            known = ", ".join(sorted(rb.parameters)) or "none declared"
            return f"{ref}: unknown parameter {p[0]!r} (parameters: {known})"
    elif ref.root == "steps":
        if not p:
            return f"{ref}: name a step, e.g. ${{steps.<id>.stdout}}"
        if p[0] not in steps:
            if rb.step_by_id(p[0]) is not None:
                return f"{ref}: step {p[0]!r} runs later; only earlier steps' outputs exist"
            known = ", ".join(sorted(steps)) or "none with an id"
            return f"{ref}: no earlier step with id {p[0]!r} (earlier steps: {known})"
        outputs = STEP_OUTPUTS[steps[p[0]]]
        if len(p) < 2 or p[1] not in outputs:
            return f"{ref}: a {steps[p[0]]} step's outputs are {', '.join(sorted(outputs))}"
        if len(p) > 2 and p[1] not in _NESTED_OUTPUTS:
            return f"{ref}: {p[1]} has no fields"
    elif ref.root in ("event", "run", "runbook", "failure"):
        fields = {
            "event": EVENT_FIELDS,
            "run": RUN_FIELDS,
            "runbook": RUNBOOK_FIELDS,
            "failure": FAILURE_FIELDS,
        }[ref.root]
        if not p or p[0] not in fields:
            return f"{ref}: {ref.root} fields are {', '.join(sorted(fields))}"
    return None
