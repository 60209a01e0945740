"""RFC 5424 / RFC 3164 parsing: fields, timestamps, year inference, malformed input."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from opsloop.observe.syslog_parse import (
    infer_year,
    parse_priority,
    parse_structured_data,
    parse_syslog,
)


def epoch(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


NOW = epoch(2024, 6, 15, 12, 0, 0)


def test_rfc5424_full_message():
    line = (
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 1234 ID47 "
        '[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'
        '[examplePriority@32473 class="high"] \ufeffAn application event log entry'
    )
    r = parse_syslog(line, received_at=5.0, source="syslog:test")
    assert r.text == "An application event log entry"
    assert r.timestamp == pytest.approx(epoch(2003, 10, 11, 22, 14, 15) + 0.003)
    assert r.host == "mymachine.example.com"
    assert r.level == "notice"
    assert r.received_at == 5.0 and r.source == "syslog:test"
    assert r.fields["facility"] == "local4" and r.fields["severity"] == 5
    assert r.fields["appname"] == "evntslog"
    assert r.fields["procid"] == "1234"
    assert r.fields["msgid"] == "ID47"
    assert r.fields["syslog_format"] == "rfc5424"
    assert r.fields["structured_data"] == {
        "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
        "examplePriority@32473": {"class": "high"},
    }


def test_rfc5424_nil_values_and_offsets():
    r = parse_syslog("<34>1 2003-08-24T05:14:15.000003-07:00 - - - - - 'su root' failed")
    assert r.text == "'su root' failed"
    assert r.level == "critical" and r.fields["facility"] == "auth"
    assert r.timestamp == pytest.approx(epoch(2003, 8, 24, 12, 14, 15) + 0.000003)
    assert r.host is None
    for key in ("appname", "procid", "msgid", "structured_data"):
        assert key not in r.fields
    bare = parse_syslog("<14>1 - host app - - -")
    assert bare.text == "" and bare.timestamp is None and bare.host == "host"


def test_structured_data_escapes():
    sd, rest = parse_structured_data(r'[a@1 q="say \"hi\"" b="back\\slash" c="]\]"] msg')
    assert sd == {"a@1": {"q": 'say "hi"', "b": "back\\slash", "c": "]]"}}
    assert rest == " msg"
    assert parse_structured_data('[a@1 q="unterminated') is None
    assert parse_structured_data("[a@1 novalue]") is None


def test_rfc3164_with_host_tag_and_pid():
    r = parse_syslog("<38>Jun 14 10:20:30 web-1 sshd[4242]: Accepted key for bob", now=NOW, tz=UTC)
    assert r.text == "Accepted key for bob"
    assert r.timestamp == epoch(2024, 6, 14, 10, 20, 30)
    assert r.host == "web-1"
    assert r.level == "info" and r.fields["facility"] == "auth"
    assert r.fields["appname"] == "sshd" and r.fields["procid"] == "4242"
    assert r.fields["syslog_format"] == "rfc3164"


def test_rfc3164_variants():
    no_host = parse_syslog("<13>Jun  5 01:02:03 cron: ran job", now=NOW, tz=UTC)
    assert no_host.host is None and no_host.fields["appname"] == "cron"
    assert no_host.text == "ran job"
    assert no_host.timestamp == epoch(2024, 6, 5, 1, 2, 3)
    no_tag = parse_syslog("<13>Jun  5 01:02:03 host just a message", now=NOW, tz=UTC)
    assert no_tag.host == "host" and no_tag.text == "just a message"
    assert "appname" not in no_tag.fields
    frac = parse_syslog("<13>Jun  5 01:02:03.250 host app: m", now=NOW, tz=UTC)
    assert frac.timestamp == epoch(2024, 6, 5, 1, 2, 3) + 0.25
    iso = parse_syslog("<13>2024-01-05T10:00:00Z host app[1]: m", now=NOW)
    assert iso.timestamp == epoch(2024, 1, 5, 10) and iso.fields["procid"] == "1"
    no_pri = parse_syslog("Jun  5 01:02:03 host app: m", now=NOW, tz=UTC)
    assert no_pri.level is None and no_pri.host == "host" and no_pri.text == "m"


@pytest.mark.parametrize(
    ("now", "month", "day", "expected_year"),
    [
        (epoch(2024, 6, 15), 6, 14, 2024),  # normal
        (epoch(2024, 6, 15), 6, 15, 2024),  # same day, hours later: clock skew, not a year ago
        (epoch(2024, 6, 15), 8, 1, 2023),  # in the future → last year
        (epoch(2025, 1, 1, 0, 5), 12, 31, 2024),  # December line read in January
        (epoch(2024, 12, 31, 23, 59), 1, 1, 2025),  # sender's clock already in the new year
        (epoch(2025, 3, 1), 2, 29, 2024),  # 29 Feb only exists in a leap year
    ],
)
def test_year_inference(now, month, day, expected_year):
    ts = infer_year(month, day, 18, 0, 0, now=now, tz=UTC)
    assert ts is not None
    assert datetime.fromtimestamp(ts, UTC).year == expected_year


def test_invalid_date_is_not_a_timestamp():
    assert infer_year(2, 30, 0, 0, 0, now=NOW, tz=UTC) is None
    r = parse_syslog("<13>Feb 30 00:00:00 host app: m", now=NOW, tz=UTC)
    assert r.timestamp is None and r.text == "Feb 30 00:00:00 host app: m"


@pytest.mark.parametrize(
    ("pri", "facility", "level"),
    [
        (0, "kern", "emergency"),
        (11, "user", "error"),
        (36, "auth", "warning"),
        (191, "local7", "debug"),
    ],
)
def test_priority(pri, facility, level):
    assert parse_priority(pri) == (facility, level)
    assert parse_syslog(f"<{pri}>x").level == level


@pytest.mark.parametrize(
    "line",
    [
        "plain text, no header",
        "<192>too big a priority",
        "<013>leading zero",
        "<13",
        "<>",
        "",
        "[not] <13> a header",
    ],
)
def test_malformed_kept_whole(line):
    r = parse_syslog(line)
    assert r.text == line
    assert r.level is None and r.timestamp is None and r.host is None
    assert r.fields["syslog_format"] == "none"


def test_bad_header_after_valid_pri_keeps_rest_as_message():
    for rest in ["1 2003-10-11T22:14:15Z h a p m [broken sd", "garbage here", "1 2003 x"]:
        r = parse_syslog(f"<13>{rest}")
        assert r.text == rest
        assert r.level == "notice" and r.fields["syslog_format"] == "pri-only"


def test_fuzz_never_raises():
    rng = random.Random(7)
    alphabet = '<>[]="\\ -:0123456789TZabcJanFeb\ufeff\n'
    seeds = ["<13>1 ", "<34>Jan  1 ", '<1>1 - h a - - [x@1 a="', ""]
    for _ in range(3000):
        line = rng.choice(seeds) + "".join(rng.choice(alphabet) for _ in range(rng.randrange(40)))
        r = parse_syslog(line, now=NOW, tz=UTC)
        assert isinstance(r.text, str)
