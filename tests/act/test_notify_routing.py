"""The routing tree: matchers, severity minimum, continue, inheritance and config errors."""

from __future__ import annotations

import tomllib

import pytest

from opsloop.act.incidents.matchers import Matcher
from opsloop.act.notify.routing import Route, RoutingError, load_route

TOML = """
[notify.route]
receiver = "ops-mail"

[[notify.route.routes]]
matchers = ['service=~"db|cache"']
severity = "critical"
receiver = "pager"
continue = true

[[notify.route.routes]]
matchers = ['team="ml"']
receiver = "ml-slack"

  [[notify.route.routes.routes]]
  matchers = ['env!="prod"']
  receiver = "ml-dev-hook"

  [[notify.route.routes.routes]]
  matchers = ['model!~"exp-.*"']

[[notify.route.routes]]
matchers = ['service="db"']
receiver = "db-team"
"""

RECEIVERS = {"ops-mail", "pager", "ml-slack", "ml-dev-hook", "db-team"}


@pytest.fixture
def tree() -> Route:
    return load_route(tomllib.loads(TOML)["notify"]["route"], receivers=RECEIVERS)


@pytest.mark.parametrize(
    ("labels", "severity", "expected"),
    [
        ({}, "info", ["ops-mail"]),  # nothing matches: the root's receiver
        ({"service": "db"}, "critical", ["pager", "db-team"]),  # continue, then next sibling
        ({"service": "db"}, "warning", ["db-team"]),  # below pager's minimum severity
        ({"service": "cache"}, "critical", ["pager"]),  # a continued match still counts
        ({"service": "database"}, "critical", ["ops-mail"]),  # regexes are anchored
        ({"team": "ml", "env": "dev"}, "info", ["ml-dev-hook"]),  # first child wins
        ({"team": "ml", "env": "prod", "model": "churn"}, "info", ["ml-slack"]),  # inherited
        ({"team": "ml", "env": "prod", "model": "exp-7"}, "info", ["ml-slack"]),  # parent's own
        ({"team": "ml"}, "info", ["ml-dev-hook"]),  # missing env is "" which != "prod"
        ({"team": "ml", "service": "db"}, "critical", ["pager", "ml-dev-hook"]),  # stops at ml
    ],
)
def test_route(tree, labels, severity, expected):
    assert tree.route(labels, severity) == expected


def test_receivers_are_listed_once():
    tree = load_route(
        {
            "receiver": "a",
            "routes": [
                {"matchers": ["x=1"], "receiver": "b", "continue": True},
                {"matchers": ["y=1"], "receiver": "b", "continue": True},
                {"receiver": "c"},
            ],
        }
    )
    assert tree.route({"x": "1", "y": "1"}, "info") == ["b", "c"]
    assert tree.receivers() == {"a", "b", "c"}


def test_unknown_severity_is_an_error_not_a_silent_miss(tree):
    with pytest.raises(ValueError, match="unknown severity 'page'"):
        tree.route({}, "page")


@pytest.mark.parametrize(
    ("config", "path", "message"),
    [
        ([], "route", "must be a table"),
        ({}, "route.receiver", "must name a receiver"),
        ({"receiver": "a", "matchers": []}, "route.matchers", "not allowed on the root"),
        ({"receiver": "a", "continue": True}, "route.continue", "not allowed on the root"),
        ({"receiver": ""}, "route.receiver", "non-empty string"),
        ({"receiver": 3}, "route.receiver", "non-empty string"),
        ({"receiver": "nope"}, "route.receiver", "unknown receiver 'nope'"),
        ({"receiver": "a", "routes": {}}, "route.routes", "list of route tables"),
        ({"receiver": "a", "routes": ["x"]}, "route.routes[0]", "must be a table"),
        (
            {"receiver": "a", "routes": [{}, {"matchers": 'a="b"'}]},
            "route.routes[1].matchers",
            "list of strings",
        ),
        (
            {"receiver": "a", "routes": [{"matchers": ['a="b"', "a=~[", "c=d"]}]},
            "route.routes[0].matchers[1]",
            "bad regular expression",
        ),
        (
            {"receiver": "a", "routes": [{"matchers": ["a~b"]}]},
            "route.routes[0].matchers[0]",
            "expected one of =, !=, =~, !~",
        ),
        (
            {"receiver": "a", "routes": [{"matchers": [{"a": "b"}]}]},
            "route.routes[0].matchers[0]",
            "a matcher is a string",
        ),
        (
            {"receiver": "a", "routes": [{"matchers": ['a="b']}]},
            "route.routes[0].matchers[0]",
            "unterminated",
        ),
        (
            {"receiver": "a", "routes": [{"severity": "page"}]},
            "route.routes[0].severity",
            "unknown severity 'page'",
        ),
        (
            {"receiver": "a", "routes": [{"continue": "yes"}]},
            "route.routes[0].continue",
            "true or false",
        ),
        (
            {"receiver": "a", "routes": [{"routes": [{"receiver": "zzz"}]}]},
            "route.routes[0].routes[0].receiver",
            "unknown receiver 'zzz' (known: a, b)",
        ),
        (
            {"receiver": "a", "routes": [{"match": {"a": "b"}}]},
            "route.routes[0].match",
            "unknown key",
        ),
    ],
)
def test_config_errors_name_the_path(config, path, message):
    with pytest.raises(RoutingError) as info:
        load_route(config, receivers={"a", "b"})
    assert info.value.path == path
    assert message in info.value.message
    assert str(info.value).startswith(f"{path}: ")


def test_too_deep_is_refused():
    config: dict = {"receiver": "a"}
    node = config
    for _ in range(20):
        child: dict = {}
        node["routes"] = [child]
        node = child
    with pytest.raises(RoutingError, match="deeper than"):
        load_route(config)


def test_receiver_check_is_optional():
    assert load_route({"receiver": "anything"}).route({}, "info") == ["anything"]


@pytest.mark.parametrize(
    ("text", "labels", "hit"),
    [
        ('a="x y"', {"a": "x y"}, True),
        ('a="say \\"hi\\""', {"a": 'say "hi"'}, True),
        ('a="two\\nlines"', {"a": "two\nlines"}, True),
        ("a=~x|y", {"a": "y"}, True),
        ("a=~x|y", {"a": "xy"}, False),
        ("a!~x.*", {"a": "xyz"}, False),
        ("a!~x.*", {}, True),
        ("a=~.+", {}, False),
        ("a!=", {"a": "set"}, True),
    ],
)
def test_matcher(text, labels, hit):
    assert Matcher.parse(text).matches(labels) is hit


def test_matcher_round_trips_through_str():
    for text in ['a="x \\"q\\" \\\\ \\n"', "b!~c|d", "c=~.*", "d!=e"]:
        m = Matcher.parse(text)
        assert Matcher.parse(str(m)) == m
