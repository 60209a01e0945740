"""Placeholders, the when: expression language (no eval), secrets and redaction."""

from __future__ import annotations

import doctest
import json
import os
from pathlib import Path

import pytest

from opsloop.act.runbooks import expression as expression_mod
from opsloop.act.runbooks import secrets as secrets_mod
from opsloop.act.runbooks import template as template_mod
from opsloop.act.runbooks.expression import (
    ExpressionError,
    compile_expression,
    evaluate_condition,
)
from opsloop.act.runbooks.secrets import Redactor, SecretError, SecretResolver, load_secrets_file
from opsloop.act.runbooks.template import (
    Context,
    Ref,
    TemplateError,
    parse_template,
    references,
    render_str,
    render_value,
)


@pytest.mark.parametrize("module", [template_mod, expression_mod, secrets_mod])
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0


def ctx(**extra) -> Context:
    data = {
        "params": {"n": 3, "dir": "/var/tmp", "force": False, "ratio": 0.5},
        "event": {
            "kind": "alert",
            "labels": {"host": "db1", "env": "prod", "pct": "93.5", "weird": "${params.n}"},
            "severity": "error",
        },
        "steps": {"a": {"stdout": "10", "exit_code": 0, "json": {"items": [{"id": 7}]}}},
        "run": {"id": "r1"},
    }
    data.update(extra)
    return Context(data)


# -- templates -----------------------------------------------------------------------------------


def test_render_basics():
    c = ctx()
    assert render_str("host=${event.labels.host} n=${params.n}", c) == "host=db1 n=3"
    assert render_str("${params.force} ${params.ratio}", c) == "false 0.5"
    assert render_str("${steps.a.json.items.0.id}", c) == "7"
    assert render_str("cost $$5 and $${literal}", c) == "cost $$5 and ${literal}"
    assert render_str("no placeholders", c) == "no placeholders"


def test_values_are_not_re_rendered():
    assert render_str("${event.labels.weird}", ctx()) == "${params.n}"


def test_render_value_keeps_types_for_whole_placeholders():
    c = ctx()
    body = {"replicas": "${params.n}", "msg": "n=${params.n}", "list": ["${params.force}", 1]}
    assert render_value(body, c) == {"replicas": 3, "msg": "n=3", "list": [False, 1]}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("${event.labels.nope}", "no key 'nope' in event.labels (keys: env, host, pct, weird)"),
        ("${params.n.x}", "params.n is a int, not a mapping"),
        ("${steps.a.json.items.5}", "index 5 out of range"),
        ("${failure.error}", "'failure' is not available here"),
        ("${secret:X}", "secrets are not available here"),
        ("${params.__class__}", "no key '__class__'"),
    ],
)
def test_missing_keys_are_errors(text, needle):
    with pytest.raises(TemplateError) as ei:
        render_str(text, ctx())
    assert needle in str(ei.value)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("${params.x", "unclosed"),
        ("${}", "empty placeholder"),
        ("${os.system}", "unknown root 'os'"),
        ("${params.a b}", "bad path segment"),
        ("${secret:a-b}", "secret name"),
    ],
)
def test_bad_templates(text, needle):
    with pytest.raises(TemplateError, match=needle):
        parse_template(text)


def test_references_and_secret_refs():
    refs = references("a ${params.x} ${secret:TOKEN} ${steps.s.stdout}")
    assert [r.dotted for r in refs] == ["params.x", "secret:TOKEN", "steps.s.stdout"]
    assert refs[1] == Ref("secret", ("TOKEN",))
    c = Context({"params": {}}, secret=lambda name: f"<{name}>")
    assert render_str("Bearer ${secret:TOKEN}", c) == "Bearer <TOKEN>"


# -- expressions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("event.labels.env == 'prod'", True),
        ('event.labels.env != "prod"', False),
        ("event.labels.pct > 90", True),
        ("event.labels.pct >= 93.5 and event.labels.pct < 94", True),
        ("steps.a.stdout > '9'", True),  # two numeric strings compare as numbers
        ("'b' > 'a'", True),
        ("event.labels.host in ['db1', 'db2']", True),
        ("event.labels.host not in ['db1', 'db2']", False),
        ("'env' in event.labels", True),
        ("'team' in event.labels", False),
        ("'db' in event.labels.host", True),
        ("not params.force", True),
        ("params.force or params.n == 3", True),
        ("params.n == 3.0", True),
        ("params.n == '3'", True),
        ("params.force == 'false'", True),
        ("true and not (false or null)", True),
        ("not not 'yes'", True),
        ("'no'", False),
        ("steps.a.exit_code == 0 and event.severity in ['error', 'critical']", True),
        ("'${event.labels.host}-x' == 'db1-x'", True),
        ("${event.labels.env} == 'prod'", True),
        ("params.ratio < 1", True),
        ("event.labels.env == 'prod' or event.labels.nope == 'x'", True),  # short-circuit
    ],
)
def test_expressions(expr, expected):
    assert evaluate_condition(expr, ctx()) is expected


@pytest.mark.parametrize(
    ("expr", "needle"),
    [
        ("", "empty expression"),
        ("event.labels.env ==", "expected a value"),
        ("(params.n == 3", "expected ')'"),
        ("params.n = 3", "unexpected '='"),
        ("__import__('os')", "unknown name '__import__'"),
        ("__import__('os').system('id')", "unexpected '.'"),
        ("open('/etc/passwd')", "unknown name 'open'"),
        ("params.n + 1", "unexpected '+'"),
        ("params.n == 3 3", "unexpected 3"),
        ("'unterminated", "unexpected"),
        ("'bad \\q escape'", "bad escape"),
        ("[1, 2", "expected ',' or ']'"),
        ("(" * 40 + "true" + ")" * 40, "nested too deeply"),
        ("x" * 3000, "longer than"),
    ],
)
def test_expression_syntax_errors(expr, needle):
    with pytest.raises(ExpressionError) as ei:
        compile_expression(expr)
    assert needle in str(ei.value)


@pytest.mark.parametrize(
    ("expr", "needle"),
    [
        ("event.labels.nope == 'x'", "no key 'nope'"),
        ("event.labels.host > 3", "not numbers"),
        ("params.n in params.n", "cannot test"),
        ("[1] < [2]", "cannot compare"),
    ],
)
def test_expression_evaluation_errors(expr, needle):
    with pytest.raises(ExpressionError) as ei:
        evaluate_condition(expr, ctx())
    assert needle in str(ei.value)


def test_values_cannot_change_the_expression():
    hostile = {"env": "x' or '1' == '1", "host": "') or true or ('"}
    c = ctx(event={"labels": hostile})
    assert evaluate_condition("event.labels.env == 'prod'", c) is False
    assert evaluate_condition("'${event.labels.env}' == 'prod'", c) is False
    assert evaluate_condition("${event.labels.host} == 'db1'", c) is False


def test_expression_refs():
    e = compile_expression("steps.a.exit_code == 0 and '${params.n}' in [event.labels.x]")
    assert sorted(r.dotted for r in e.refs) == ["event.labels.x", "params.n", "steps.a.exit_code"]


def test_no_eval_anywhere():
    src = Path(expression_mod.__file__).read_text() + Path(template_mod.__file__).read_text()
    assert "eval(" not in src.replace("_eval(", "").replace(".evaluate(", "")
    assert "exec(" not in src


# -- secrets -------------------------------------------------------------------------------------


def test_secret_from_environment_registers_with_redactor():
    r = SecretResolver(environ={"OPSLOOP_SECRET_API_TOKEN": "tok-123456"})
    assert r("API_TOKEN") == "tok-123456"
    assert r.redactor.redact("x tok-123456 y") == "x [secret:API_TOKEN] y"
    with pytest.raises(SecretError, match="OPSLOOP_SECRET_OTHER"):
        r("OTHER")
    assert r.exists("API_TOKEN") and not r.exists("OTHER")


def test_lowercase_secret_name_reads_uppercase_env():
    r = SecretResolver(environ={"OPSLOOP_SECRET_DB_PW": "pw-abcdef"})
    assert r("db_pw") == "pw-abcdef"


def test_secrets_file_toml_and_json(tmp_path: Path):
    toml = tmp_path / "secrets.toml"
    toml.write_text('[secrets]\nDB_PASSWORD = "p@ss w0rd"\nPORT = 5432\n')
    os.chmod(toml, 0o600)
    r = SecretResolver(toml, environ={})
    assert r("DB_PASSWORD") == "p@ss w0rd"
    assert r("PORT") == "5432"
    js = tmp_path / "secrets.json"
    js.write_text(json.dumps({"TOKEN": "abc-def-ghi"}))
    os.chmod(js, 0o400)
    assert load_secrets_file(js) == {"TOKEN": "abc-def-ghi"}
    env_wins = SecretResolver(js, environ={"OPSLOOP_SECRET_TOKEN": "from-env"})
    assert env_wins("TOKEN") == "from-env"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_secrets_file_with_open_mode_is_refused(tmp_path: Path, mode):
    p = tmp_path / "secrets.toml"
    p.write_text('A = "b"\n')
    os.chmod(p, mode)
    with pytest.raises(SecretError, match=r"chmod 600"):
        SecretResolver(p, environ={})("A")


def test_secrets_file_errors(tmp_path: Path):
    with pytest.raises(SecretError, match="cannot read"):
        load_secrets_file(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("not = [toml")
    os.chmod(bad, 0o600)
    with pytest.raises(SecretError, match="not valid"):
        load_secrets_file(bad)
    nested = tmp_path / "nested.json"
    nested.write_text('{"A": {"b": 1}}')
    os.chmod(nested, 0o600)
    with pytest.raises(SecretError, match="must be a string"):
        load_secrets_file(nested)


def test_redactor_masks_encoded_forms_and_truncated_tails():
    r = Redactor()
    r.add("PW", 'pa"ss/wörd&1')
    text = 'raw pa"ss/wörd&1 url pa%22ss%2Fw%C3%B6rd%261 json pa\\"ss/wörd&1'
    out = r.redact(text)
    assert "ss/w" not in out and "ss%2F" not in out
    assert out.count("[secret:PW]") == 3
    assert r.redact('... tail pa"ss/w', truncated=True).endswith("[secret:PW]")
    assert r.redact('... tail pa"ss/w') == '... tail pa"ss/w'  # only when truncated
    r.add("EMPTY", "")
    assert r.redact("nothing") == "nothing"


def test_redactor_prefers_longest_secret():
    r = Redactor()
    r.add("SHORT", "abcd")
    r.add("LONG", "abcdefgh")
    assert r.redact("abcdefgh abcd") == "[secret:LONG] [secret:SHORT]"
