"""Runbook files: validation with file:line:column errors, loading a folder, triggers, cron."""

from __future__ import annotations

import doctest
from datetime import datetime
from pathlib import Path

import pytest

from opsloop.act.incidents.alert import Alert, Severity
from opsloop.act.runbooks import (
    EXAMPLES_DIR,
    Cron,
    CronError,
    Parameter,
    ParameterError,
    RunbookValidationError,
    TriggerEvent,
    load_runbook,
    load_runbooks,
    matching_trigger,
    parse_runbook,
    scheduled_runbooks,
)
from opsloop.act.runbooks import admission as admission_mod
from opsloop.act.runbooks import cron as cron_mod
from opsloop.act.runbooks import loader as loader_mod
from opsloop.act.runbooks import parameters as parameters_mod
from opsloop.act.runbooks import records as records_mod
from opsloop.act.runbooks import triggers as triggers_mod
from opsloop.detect.anomaly import Anomaly


@pytest.mark.parametrize(
    "module", [loader_mod, parameters_mod, cron_mod, triggers_mod, records_mod, admission_mod]
)
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0


def errors_of(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(RunbookValidationError) as ei:
        parse_runbook(text, file="rb.yaml")
    assert str(ei.value).startswith("rb.yaml")
    return [(e.line, e.path, e.message) for e in ei.value.errors]


def one_error(text: str) -> tuple[int | None, str, str]:
    errs = errors_of(text)
    assert len(errs) == 1, errs
    return errs[0]


# -- valid files ---------------------------------------------------------------------------------


def test_minimal_runbook_defaults():
    rb = parse_runbook("name: hello\nsteps:\n  - shell: {argv: [echo, hi, 3]}\n")
    assert rb.steps[0].shell.argv == ["echo", "hi", "3"]  # numbers become arguments
    assert [t.kind for t in rb.triggers] == ["manual"]
    assert rb.policies.max_concurrent == 1
    assert rb.policies.requires_approval is None
    assert rb.steps[0].type == "shell"
    assert rb.steps[0].label(0) == "#1 shell"


def test_full_runbook_parses():
    rb = parse_runbook(
        """
name: full
description: everything
triggers:
  - alert: {matchers: '{alertname="A", host=~"db.*"}', severity: warn}
  - anomaly: {source: metrics.forecast, kind: exhaustion_forecast}
  - schedule: {cron: "*/5 * * * *"}
  - manual:
conditions: ["event.kind == 'manual' or event.labels.env == 'prod'"]
parameters:
  dir: {type: path, default: /var/tmp, under: [/var/tmp]}
  days: {type: int, default: 7, min: 1}
  mode: {type: string, default: fast, choices: [fast, slow]}
  force: {type: bool, default: false}
  ratio: {type: float, default: 0.5}
  host: {type: string, default: "${event.labels.host}"}
policies:
  timeout_s: 60
  cooldown_s: 600
  max_concurrent: 2
  requires_approval: true
  retries: 1
  backoff_s: 0.5
steps:
  - id: list
    shell: {argv: [ls, "${params.dir}"], cwd: /, env: {TOKEN: "${secret:TOKEN}"}}
  - id: call
    http:
      method: post
      url: "https://example.invalid/${params.host}"
      headers: {Authorization: "Bearer ${secret:TOKEN}"}
      json: {n: "${params.days}", out: "${steps.list.stdout}"}
      expected_status: 202
  - python: {entrypoint: "pkg.mod:fn", args: {a: "${steps.call.json.x}"}}
    when: "steps.call.status_code == 202 and not params.force"
  - wait: {seconds: 1}
  - approve: {role: operator, timeout_s: 60, message: "go on with ${params.host}?"}
  - notify: {receiver: oncall, message: "done ${run.id}"}
on_failure:
  - notify: {receiver: oncall, message: "${failure.step} failed: ${failure.error}"}
""",
        "full.yaml",
    )
    assert [t.kind for t in rb.triggers] == ["alert", "anomaly", "schedule", "manual"]
    assert rb.triggers[0].alert.severity is Severity.WARNING
    assert rb.policies.requires_approval.role.value == "admin"
    assert rb.steps[1].http.method == "POST"
    assert rb.steps[1].http.expected_status == [202]
    assert rb.parameters["days"].default == 7
    assert rb.parameters["dir"].default == "/var/tmp"
    assert rb.source == "full.yaml"


def test_examples_validate():
    runbooks, errors = load_runbooks(EXAMPLES_DIR)
    assert errors == []
    names = {rb.name for rb in runbooks}
    assert names == {
        "restart-crashlooping-unit",
        "clean-old-files",
        "scale-service",
        "collect-diagnostics",
    }
    restart = next(rb for rb in runbooks if rb.name == "restart-crashlooping-unit")
    assert restart.policies.requires_approval is not None
    argv = next(s.shell.argv for s in restart.steps if s.id == "restart")
    assert argv == ["systemctl", "restart", "--", "${params.unit}"]
    clean = next(rb for rb in runbooks if rb.name == "clean-old-files")
    delete = next(s.shell.argv for s in clean.steps if s.id == "delete")
    assert delete[0] == "find" and "-delete" in delete and "+${params.days}" in delete


# -- errors with line numbers --------------------------------------------------------------------


def test_string_argv_is_an_error_with_line():
    line, path, msg = one_error(
        "name: x\nsteps:\n  - id: a\n    shell:\n      argv: systemctl restart nginx\n"
    )
    assert (line, path) == (5, "steps[0].shell.argv")
    assert "list of arguments, not a string" in msg


def test_unknown_key_points_at_the_key_and_suggests():
    line, path, msg = one_error(
        "name: x\nsteps:\n  - shell:\n      argv: [/bin/true]\n      timout_s: 5\n"
    )
    assert (line, path) == (5, "steps[0].shell.timout_s")
    assert msg == "unknown key 'timout_s' (did you mean 'timeout_s'?)"


def test_unknown_top_level_key_lists_allowed():
    line, path, msg = one_error("name: x\nstepz: []\nsteps: [{wait: {seconds: 1}}]\n")
    assert (line, path) == (2, "stepz")
    assert "did you mean 'steps'" in msg


def test_missing_key_and_wrong_type():
    errs = errors_of("name: x\nsteps:\n  - notify: {receiver: r}\n  - wait: {seconds: soon}\n")
    assert (3, "steps[0].notify", "missing required key 'message'") in errs
    line, path, msg = errs[1]
    assert (line, path) == (4, "steps[1].wait.seconds")
    assert "number" in msg and "'soon'" in msg


def test_step_needs_exactly_one_type():
    errs = errors_of(
        "name: x\nsteps:\n  - id: a\n"
        "  - wait: {seconds: 1}\n    notify: {receiver: r, message: m}\n"
    )
    assert errs[0][:2] == (3, "steps[0]") and "found none" in errs[0][2]
    assert errs[1][:2] == (4, "steps[1]") and "found wait, notify" in errs[1][2]


def test_broken_yaml_is_a_clear_error():
    line, _, msg = one_error("name: x\nsteps: [\n  - a\n")
    assert msg.startswith("not valid YAML")
    assert line is not None
    line, _, msg = one_error("name: x\n  bad: indent\n")
    assert line == 2 and msg.startswith("not valid YAML")
    assert one_error("- a\n- b\n")[2].startswith("a runbook is a mapping")
    assert "found 2" in one_error("name: a\n---\nname: b\n")[2]


def test_duplicate_keys_are_errors():
    line, path, msg = one_error(
        "name: x\nsteps:\n  - shell: {argv: [echo]}\n    shell: {argv: [rm]}\n"
    )
    assert (line, path, msg) == (4, "steps[0].shell", "duplicate key 'shell'")


def test_many_errors_are_reported_sorted():
    errs = errors_of(
        """name: Bad Name
triggers:
  - alert: {matchers: '{a=~"("}', severity: bogus}
  - schedule: {cron: '61 * * * *'}
parameters:
  days: {type: int, default: abc}
steps:
  - wait: {seconds: 1}
    when: "event.labels.x =="
    retries: -1
policies: {requires_approval: {role: god}}
"""
    )
    lines = [e[0] for e in errs]
    assert lines == sorted(lines)
    by_path = {e[1]: e[2] for e in errs}
    assert "lower-case" in by_path["name"]
    assert "bad regular expression" in by_path["triggers[0].alert.matchers"]
    assert "unknown severity" in by_path["triggers[0].alert.severity"]
    assert "minute: 61 is outside 0-59" in by_path["triggers[1].schedule.cron"]
    assert "expected an integer" in by_path["parameters.days"]
    assert "expected a value" in by_path["steps[0].when"]
    assert "greater than or equal to 0" in by_path["steps[0].retries"]
    assert "'god'" in by_path["policies.requires_approval.role"]


@pytest.mark.parametrize(
    ("step", "path", "needle"),
    [
        ("shell: {argv: [echo, '${params.nope}']}", "steps[0].shell.argv[1]", "unknown parameter"),
        ("shell: {argv: ['${params.p}']}", "steps[0].shell.argv[0]", "must be literal"),
        ("shell: {argv: [echo, '${secret:T}']}", "steps[0].shell.argv[1]", "through env"),
        ("shell: {argv: [echo, '${steps.b.stdout}']}", "steps[0].shell.argv[1]", "runs later"),
        ("shell: {argv: [echo, '${steps.zz.stdout}']}", "steps[0].shell.argv[1]", "no earlier"),
        ("shell: {argv: [echo, '${event.nope}']}", "steps[0].shell.argv[1]", "event fields"),
        ("shell: {argv: [echo, '${nope.x}']}", "steps[0].shell.argv[1]", "unknown root"),
        ("shell: {argv: [echo, '${params.p']}", "steps[0].shell.argv[1]", "unclosed"),
        ("shell: {argv: [echo], cwd: '${event.labels.d}'}", "steps[0].shell.cwd", "not available"),
        ("shell: {argv: [sh, -c, '${params.p}']}", "steps[0].shell.argv[2]", "must be literal"),
        ("shell: {argv: [sudo, bash, -ec, 'x ${params.p}']}", "steps[0].shell.argv[3]", "literal"),
        ("shell: {argv: [python3, -c, '${params.p}']}", "steps[0].shell.argv[2]", "literal"),
        ("shell: {argv: [echo, '${failure.error}']}", "steps[0].shell.argv[1]", "not available"),
        ("http: {url: '${event.labels.u}/x'}", "steps[0].http.url", "only from params"),
        ("http: {url: 'ftp://x'}", "steps[0].http.url", "http:// or https://"),
        ("notify: {receiver: r, message: '${secret:T}'}", "steps[0].notify.message", "secrets"),
        ("python: {entrypoint: 'os.system'}", "steps[0].python.entrypoint", "module:function"),
        ("wait: {seconds: 1}\n    when: 'foo == 1'", "steps[0].when", "unknown name 'foo'"),
    ],
)
def test_reference_and_safety_checks(step, path, needle):
    text = (
        "name: x\nparameters:\n  p: {type: string, default: a}\nsteps:\n"
        f"  - {step}\n  - id: b\n    shell: {{argv: [echo]}}\n"
    )
    errs = errors_of(text)
    assert any(e[1] == path and needle in e[2] and e[0] in (5, 6) for e in errs), errs


def test_positional_arguments_to_sh_c_are_allowed():
    rb = parse_runbook(
        "name: x\nsteps:\n  - shell: {argv: [sh, -c, 'echo \"$1\"', sh, '${event.labels.x}']}\n"
    )
    assert rb.steps[0].shell.argv[-1] == "${event.labels.x}"


def test_duplicate_step_ids_and_step_output_names():
    errs = errors_of(
        "name: x\nsteps:\n  - id: a\n    wait: {seconds: 0}\n  - id: a\n    wait: {seconds: 0}\n"
        "  - notify: {receiver: r, message: '${steps.a.stdout}'}\n"
    )
    assert (5, "steps[1].id", "duplicate step id 'a'") in errs
    assert any(e[1] == "steps[2].notify.message" and "outputs are" in e[2] for e in errs)


def test_on_failure_may_use_failure_and_any_main_step():
    rb = parse_runbook(
        "name: x\nsteps:\n  - id: a\n    shell: {argv: [echo]}\n"
        "on_failure:\n  - notify: {receiver: r, message: '${failure.error} ${steps.a.stderr}'}\n"
    )
    assert rb.on_failure[0].notify.message.startswith("${failure")


def test_conditions_cannot_read_steps_or_secrets():
    errs = errors_of(
        "name: x\nconditions: ['steps.a.status == 1', \"'${secret:T}' == 'x'\"]\n"
        "steps:\n  - id: a\n    wait: {seconds: 0}\n"
    )
    assert [e[1] for e in errs] == ["conditions[0]", "conditions[1]"]
    assert all(e[0] == 2 for e in errs)


def test_parameter_definitions_are_checked():
    errs = errors_of(
        "name: x\nparameters:\n"
        "  a: {type: int, under: [/x]}\n"
        "  b: {type: path, default: relative/path}\n"
        "  c: {type: string, choices: [x, y], default: z}\n"
        "  d: {type: str}\n"
        "steps: [{wait: {seconds: 0}}]\n"
    )
    by_line = {e[0]: e[2] for e in errs}
    assert "'under' applies to type: path" in by_line[3]
    assert "not an absolute path" in by_line[4]
    assert "not one of" in by_line[5]
    assert "'string'" in by_line[6]
    # references are checked once the structure is valid
    line, path, msg = one_error(
        "name: x\nparameters:\n  e: {type: string, default: '${steps.s.stdout}'}\n"
        "steps: [{wait: {seconds: 0}}]\n"
    )
    assert (line, path) == (3, "parameters.e.default") and "not available here" in msg


# -- load_runbooks -------------------------------------------------------------------------------


def test_load_runbooks_never_crashes_on_a_bad_file(tmp_path: Path):
    (tmp_path / "a.yaml").write_text("name: a\nsteps: [{wait: {seconds: 0}}]\n")
    (tmp_path / "b.yml").write_text("name: b\nsteps: [\n")
    (tmp_path / "c.yaml").write_text("name: a\nsteps: [{wait: {seconds: 0}}]\n")  # same name
    (tmp_path / "d.yaml").write_bytes(b"\xff\xfe bad utf-8")
    (tmp_path / "notes.txt").write_text("ignored")
    runbooks, errors = load_runbooks(tmp_path)
    assert [rb.name for rb in runbooks] == ["a"]
    files = sorted(Path(e.file).name for e in errors)
    assert files == ["b.yml", "c.yaml", "d.yaml"]
    dup = next(e for e in errors if e.file.endswith("c.yaml"))
    assert "also defined in" in dup.message
    _, errs = load_runbooks(tmp_path / "missing")
    assert errs[0].message == "not a directory"


def test_load_runbook_reports_file_name(tmp_path: Path):
    p = tmp_path / "r.yaml"
    p.write_text("name: r\nsteps:\n  - shell: {argv: [echo], bogus: 1}\n")
    with pytest.raises(RunbookValidationError) as ei:
        load_runbook(p)
    assert str(ei.value).startswith(f"{p}:3:")


# -- parameters ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        ({"type": "int"}, "42", 42),
        ({"type": "int"}, 7.0, 7),
        ({"type": "float"}, "2.5", 2.5),
        ({"type": "bool"}, "yes", True),
        ({"type": "bool"}, False, False),
        ({"type": "string"}, 5, "5"),
        ({"type": "path"}, "/var//log/", "/var/log"),
        ({"type": "path", "under": ["/var/log"]}, "/var/log/app", "/var/log/app"),
        ({"type": "string", "choices": ["a", "b"]}, "b", "b"),
    ],
)
def test_parameter_coercion(spec, value, expected):
    assert Parameter(**spec).coerce("p", value) == expected


@pytest.mark.parametrize(
    ("spec", "value", "needle"),
    [
        ({"type": "int"}, "4.5", "expected an integer"),
        ({"type": "int"}, True, "expected an integer"),
        ({"type": "int", "max": 10}, 11, "above the maximum"),
        ({"type": "float"}, "nan", "finite"),
        ({"type": "bool"}, "maybe", "true or false"),
        ({"type": "path"}, "var/log", "not an absolute path"),
        ({"type": "path"}, "/var/log/../../etc", "'..'"),
        ({"type": "path"}, "/tmp/a\nb", "newlines"),
        ({"type": "path", "under": ["/var/log"]}, "/var/logs", "not under"),
        ({"type": "string", "pattern": "[a-z]+"}, "abc; rm", "does not match"),
        ({"type": "string"}, "a\x00b", "NUL"),
        ({"type": "string", "choices": ["a"]}, "b", "not one of"),
    ],
)
def test_parameter_rejections(spec, value, needle):
    with pytest.raises(ParameterError, match="parameter 'p'") as ei:
        Parameter(**spec).coerce("p", value)
    assert needle in str(ei.value)


# -- triggers ------------------------------------------------------------------------------------

TRIGGERS = """
name: t
triggers:
  - alert: {matchers: '{alertname="UnitCrashLoop", unit=~".+"}', severity: error}
  - anomaly:
      {source: metrics.forecast, kind: exhaustion_forecast, matchers: '{metric=~"host_disk.*"}'}
  - schedule: {cron: "0 3 * * *"}
steps: [{wait: {seconds: 0}}]
"""


def test_alert_trigger_matchers_and_minimum_severity():
    rb = parse_runbook(TRIGGERS)
    hit = TriggerEvent.from_alert(Alert("UnitCrashLoop", Severity.CRITICAL, 0.0, {"unit": "x"}))
    assert matching_trigger(rb, hit).kind == "alert"
    low = TriggerEvent.from_alert(Alert("UnitCrashLoop", Severity.WARNING, 0.0, {"unit": "x"}))
    assert matching_trigger(rb, low) is None
    other = TriggerEvent.from_alert(Alert("UnitCrashLoop", Severity.ERROR, 0.0, {}))
    assert matching_trigger(rb, other) is None  # unit=~".+" needs the label
    assert matching_trigger(rb, TriggerEvent.manual()) is None  # no manual trigger


def test_anomaly_trigger_source_kind_and_labels():
    rb = parse_runbook(TRIGGERS)
    details = {"name": "host_disk_percent", "labels": {"mount": "/"}}
    a = Anomaly("metrics.forecast", "exhaustion_forecast", 0.8, 100.0, "k", [], details)
    ev = TriggerEvent.from_anomaly(a)
    assert ev.labels["mount"] == "/" and ev.labels["metric"] == "host_disk_percent"
    assert matching_trigger(rb, ev).kind == "anomaly"
    b = Anomaly("metrics.forecast", "exhaustion_forecast", 0.8, 100.0, "k", [], {"name": "cpu"})
    assert matching_trigger(rb, TriggerEvent.from_anomaly(b)) is None
    c = Anomaly("logs.frequency", "exhaustion_forecast", 0.8, 100.0, "k", [], details)
    assert matching_trigger(rb, TriggerEvent.from_anomaly(c)) is None


def test_schedule_triggers_and_disabled_runbooks():
    rb = parse_runbook(TRIGGERS)
    due = scheduled_runbooks([rb], datetime(2024, 1, 2, 3, 0))
    assert [(r.name, e.kind, e.key) for r, e in due] == [("t", "schedule", "0 3 * * *")]
    assert matching_trigger(rb, due[0][1]).kind == "schedule"
    assert scheduled_runbooks([rb], datetime(2024, 1, 2, 3, 1)) == []
    off = parse_runbook(TRIGGERS + "enabled: false\n")
    assert scheduled_runbooks([off], datetime(2024, 1, 2, 3, 0)) == []
    assert matching_trigger(off, due[0][1]) is None


# -- cron ----------------------------------------------------------------------------------------


def test_cron_fields_and_next():
    c = Cron.parse("*/20 1,13 1-7 * mon")
    assert sorted(c.minutes) == [0, 20, 40] and sorted(c.hours) == [1, 13]
    # either day-of-month 1-7 or Monday (Vixie semantics)
    assert c.matches(datetime(2024, 1, 3, 1, 20))  # the 3rd, a Wednesday
    assert c.matches(datetime(2024, 1, 15, 13, 40))  # a Monday
    assert not c.matches(datetime(2024, 1, 16, 13, 40))
    assert Cron.parse("0 0 29 2 *").next_after(datetime(2024, 3, 1)) == datetime(2028, 2, 29)
    assert Cron.parse("0 0 * * 7").next_after(datetime(2024, 1, 1)) == datetime(2024, 1, 7)


@pytest.mark.parametrize("text", ["* * * *", "*/0 * * * *", "5-1 * * * *", "x * * * *"])
def test_cron_errors(text):
    with pytest.raises(CronError):
        Cron.parse(text)
