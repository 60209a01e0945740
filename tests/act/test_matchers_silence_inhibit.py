"""Label matchers, silences and inhibition with Alertmanager semantics."""

from __future__ import annotations

import doctest
import json

import pytest

from opsloop.act.incidents import inhibit as inhibit_mod
from opsloop.act.incidents import matchers as matchers_mod
from opsloop.act.incidents import silence as silence_mod
from opsloop.act.incidents.alert import Alert, Severity
from opsloop.act.incidents.inhibit import DEFAULT_RULES, InhibitRule, inhibited, inhibited_by
from opsloop.act.incidents.matchers import (
    Matcher,
    MatcherError,
    MatchType,
    matches_all,
    parse_matcher,
    parse_matchers,
)
from opsloop.act.incidents.silence import Silence, is_silenced, silenced_by


def alert(name="A", severity=Severity.WARNING, t=0.0, ends_at=None, **labels) -> Alert:
    return Alert(name=name, severity=severity, starts_at=t, ends_at=ends_at, labels=labels)


@pytest.mark.parametrize("module", [matchers_mod, silence_mod, inhibit_mod])
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0


# -- matchers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "value", "labels", "expected"),
    [
        ("=", "api", {"service": "api"}, True),
        ("=", "api", {"service": "web"}, False),
        ("=", "", {}, True),  # missing label equals ""
        ("!=", "api", {}, True),
        ("!=", "", {}, False),
        ("=~", "api|web", {"service": "web"}, True),
        ("=~", "api", {"service": "api-gw"}, False),  # fully anchored
        ("=~", "api", {"service": "my-api"}, False),
        ("=~", "api.*", {"service": "api-gw"}, True),
        ("=~", ".*", {}, True),
        ("=~", ".+", {}, False),
        ("!~", "db.*", {"service": "db1"}, False),
        ("!~", "db.*", {}, True),
        ("!~", "", {}, False),
        ("=~", "(?i)API", {"service": "api"}, True),
    ],
)
def test_matcher_semantics(op, value, labels, expected):
    assert Matcher("service", MatchType(op), value).matches(labels) is expected


def test_parse_list_forms():
    want = [Matcher("a", MatchType.EQ, "b"), Matcher("c", MatchType.NE, "d")]
    assert parse_matchers('{a="b",c!="d"}') == want
    assert parse_matchers('  { a = "b" , c != "d" , }  ') == want
    assert parse_matchers("a=b, c!=d") == want
    assert parse_matchers("") == [] and parse_matchers(" { } ") == []


def test_parse_values_quotes_and_names():
    m = parse_matcher(r'msg="say \"hi\"\\now\n"')
    assert m.value == 'say "hi"\\now\n'
    assert parse_matcher(str(m)) == m  # str() re-quotes and escapes
    assert parse_matcher('"odd name"=x').name == "odd name"
    assert parse_matcher("job=~node|push_gw").value == "node|push_gw"
    assert parse_matcher('alertname="Disk, full"').value == "Disk, full"
    assert parse_matcher("alertname = Disk full").value == "Disk full"
    assert parse_matcher("host.name=x").name == "host.name"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a", "expected one of =, !=, =~, !~"),
        ("=b", "expected a label name"),
        ('a="b', "unterminated"),
        ('{a="b"', "missing closing"),
        ('a="b"}', "unexpected '}'"),
        ('a="b" c="d"', "after the value"),
        (r'a="\q"', "bad escape"),
        ('a=~"(unclosed"', "bad regular expression"),
        ('{a="b"} x', "unexpected 'x'"),
        ("a=b=c", "after the value"),
    ],
)
def test_parse_errors(text, fragment):
    with pytest.raises(MatcherError) as e:
        parse_matchers(text)
    assert fragment in str(e.value)
    assert e.value.text == text and e.value.pos is not None


def test_parse_matcher_wants_exactly_one():
    with pytest.raises(MatcherError, match="expected one matcher, found 2"):
        parse_matcher("a=b,c=d")
    with pytest.raises(MatcherError, match="found 0"):
        parse_matcher("{}")


def test_matches_all_and_regex_compiled_once():
    ms = parse_matchers('{service=~"api|web", env!="dev"}')
    assert matches_all(ms, {"service": "api", "env": "prod"})
    assert not matches_all(ms, {"service": "api", "env": "dev"})
    assert ms[0] == Matcher(
        "service", MatchType.RE, "api|web"
    )  # the compiled regex is not compared


def test_matcher_needs_a_name():
    with pytest.raises(MatcherError):
        Matcher("", MatchType.EQ, "x")


# -- silences -------------------------------------------------------------------------------------


def test_regex_silence_mutes_only_matching_alerts_while_active():
    s = Silence.create("s1", '{service=~"api|web", env="prod"}', 100.0, 200.0, "ana", "deploy")
    web = alert(service="web", env="prod")
    gw = alert(service="api-gw", env="prod")
    dev = alert(service="api", env="dev")
    assert is_silenced(web, [s], now=150.0)
    assert not is_silenced(gw, [s], now=150.0)  # anchored regex
    assert not is_silenced(dev, [s], now=150.0)
    assert not is_silenced(web, [s], now=99.9)  # pending
    assert is_silenced(web, [s], now=100.0)
    assert not is_silenced(web, [s], now=200.0)  # ends_at excluded
    assert s.state(50.0) == "pending" and s.state(150.0) == "active" and s.state(250.0) == "expired"


def test_silence_on_severity_uses_match_labels():
    s = Silence.create("s", 'severity=~"info|warning", host="db1"', 0.0, 10.0, "ops")
    assert is_silenced(alert(severity=Severity.INFO, host="db1"), [s], 5.0)
    assert not is_silenced(alert(severity=Severity.CRITICAL, host="db1"), [s], 5.0)


def test_silenced_by_lists_active_matching_silences():
    a = alert(host="db1", service="pg")
    s1 = Silence.create("s1", "host=db1", 0.0, 100.0, "a")
    s2 = Silence.create("s2", 'service=~"p.*"', 0.0, 100.0, "b")
    s3 = Silence.create("s3", "host=db2", 0.0, 100.0, "c")
    s4 = Silence.create("s4", "host=db1", 500.0, 600.0, "d")
    assert [s.id for s in silenced_by(a, [s1, s2, s3, s4], now=50.0)] == ["s1", "s2"]
    assert not is_silenced(a, [], now=50.0)


def test_silence_expire():
    s = Silence.create("s", "host=db1", 100.0, 200.0, "a")
    assert s.expire(150.0).ends_at == 150.0
    assert s.expire(150.0).state(150.0) == "expired"
    assert s.expire(50.0).ends_at == 100.0  # a pending silence ends where it starts
    assert s.expire(300.0) is s


@pytest.mark.parametrize(
    "matchers",
    ['team=""', "team=~.*", 'team!~".+"', "{}"],
)
def test_silence_that_would_match_everything_is_rejected(matchers):
    with pytest.raises(ValueError, match="does not match the empty string"):
        Silence.create("s", matchers, 0.0, 1.0, "a")


def test_silence_time_validation():
    with pytest.raises(ValueError, match="before it starts"):
        Silence.create("s", "a=b", 10.0, 5.0, "a")
    with pytest.raises(ValueError, match="finite"):
        Silence.create("s", "a=b", 0.0, float("inf"), "a")


def test_silence_round_trip_json():
    s = Silence.create("s", r'{msg=~"a\"b|c", host!="x"}', 0.0, 9.0, "me", "why")
    assert Silence.from_dict(json.loads(json.dumps(s.to_dict()))) == s


# -- inhibition -----------------------------------------------------------------------------------


def test_default_rule_critical_inhibits_warning_and_info_on_same_host_and_service():
    crit = alert("Down", Severity.CRITICAL, host="db1", service="pg")
    warn = alert("SlowQueries", Severity.WARNING, host="db1", service="pg")
    info = alert("Vacuum", Severity.INFO, host="db1", service="pg")
    err = alert("Replication", Severity.ERROR, host="db1", service="pg")
    reason = inhibited(warn, [crit])
    assert reason is not None
    assert "Down (critical)" in reason and "host=db1, service=pg" in reason
    assert inhibited(info, [crit]) is not None
    assert inhibited(err, [crit]) is None  # errors stay visible
    assert inhibited(crit, [warn, info, err]) is None


def test_default_rule_needs_equal_labels():
    crit = alert("Down", Severity.CRITICAL, host="db1", service="pg")
    assert inhibited(alert("W", host="db2", service="pg"), [crit]) is None
    assert inhibited(alert("W", host="db1", service="redis"), [crit]) is None
    assert inhibited(alert("W", host="db1"), [crit]) is None  # service "" != "pg"


def test_default_rule_requires_the_equal_labels_to_be_present():
    crit = alert("GlobalOutage", Severity.CRITICAL)
    assert inhibited(alert("W"), [crit]) is None


def test_alertmanager_semantics_missing_equal_labels_are_equal():
    rule = InhibitRule.from_dict(
        {
            "source_matchers": ['severity="critical"'],
            "target_matchers": ['severity="warning"'],
            "equal": ["cluster"],
        }
    )
    crit = alert("GlobalOutage", Severity.CRITICAL)
    assert inhibited(alert("W"), [crit], [rule]) is not None


def test_only_firing_sources_inhibit():
    crit = alert("Down", Severity.CRITICAL, ends_at=10.0, host="db1", service="pg")
    assert inhibited(alert("W", host="db1", service="pg"), [crit]) is None


def test_no_self_or_peer_inhibition():
    rule = InhibitRule.from_dict(
        {"source_matchers": ["alertname=Flap"], "target_matchers": ["alertname=Flap"]}
    )
    a = alert("Flap", host="a")
    b = alert("Flap", host="b")
    assert inhibited(a, [a, b], [rule]) is None


def test_custom_rule_and_reason_names_the_rule():
    rule = InhibitRule.from_dict(
        {
            "name": "node-down-mutes-node",
            "source_matchers": ["alertname=NodeDown"],
            "target_matchers": ['alertname=~"Disk.*|CPU.*"'],
            "equal": ["host"],
        }
    )
    down = alert("NodeDown", Severity.ERROR, host="n1")
    disk = alert("DiskFull", Severity.CRITICAL, host="n1")
    reason = inhibited(disk, [down], [rule])
    assert reason == "inhibited by NodeDown (error) with equal host=n1 [rule node-down-mutes-node]"
    found = inhibited_by(disk, [down], [rule])
    assert found is not None and found[0] is down and found[1] is rule
    assert inhibited(alert("Mem", host="n1"), [down], [rule]) is None


def test_rule_round_trip_and_defaults():
    for rule in DEFAULT_RULES:
        assert InhibitRule.from_dict(rule.to_dict()) == rule
    assert inhibited(alert("W", host="h", service="s"), [], DEFAULT_RULES) is None
    assert inhibited(alert("W"), [alert("C", Severity.CRITICAL)], []) is None
