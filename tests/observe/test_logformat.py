"""Tests of the log header-format parser (inline samples only, no shared data)."""

from __future__ import annotations

import doctest

import pytest

from opsloop.observe import logformat
from opsloop.observe.logformat import (
    MAX_LINE_CHARS,
    TRUNCATION_MARKER,
    LogParser,
    clean_line,
    compile_format,
    detect_format,
    parse_lines,
)

MAC = r"<Month>  <Date> <Time> <User> <Component>\[<PID>\]( \(<Address>\))?: <Content>"
LINUX = r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>"
HADOOP = r"<Date> <Time> <Level> \[<Process>\] <Component>: <Content>"


def test_doctests():
    result = doctest.testmod(logformat)
    assert result.attempted > 0
    assert result.failed == 0


def test_compile_format_lazy_groups_whitespace_and_anchors():
    rx = compile_format("<A> <B>: <Content>")
    assert rx.pattern == r"^(?P<A>.*?)\s+(?P<B>.*?):\s+(?P<Content>.*?)$"
    m = rx.match("x\t\ty: rest: with colon")
    assert m is not None
    assert m.group("A") == "x"
    assert m.group("Content") == "rest: with colon"
    assert rx.match("no separator here") is None


def test_logpai_formats_with_optional_groups():
    p = LogParser(MAC)
    rec = p.parse("Jul  1 09:00:55 host-1 kernel[0]: ARPT: 620651.021206: wl0: up")
    assert rec.matched
    assert rec.fields["Component"] == "kernel"
    assert rec.fields["Address"] == ""
    assert rec.content == "ARPT: 620651.021206: wl0: up"
    rec = p.parse("Jul  1 09:01:05 host-1 QQ[10018] (0x7f): FA||Url||taskID[2019352994] dealloc")
    assert rec.fields["Address"] == "0x7f"
    assert rec.content == "FA||Url||taskID[2019352994] dealloc"
    lin = LogParser(LINUX)
    assert lin.parse("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass").content == (
        "check pass"
    )
    assert lin.parse("Jun 14 15:16:01 combo kernel: Linux version 2.6").fields["PID"] == ""
    had = LogParser(HADOOP).parse(
        "2015-10-18 18:01:47,978 INFO [main] org.apache.App: Created MRAppMaster \r\n"
    )
    assert had.fields == {
        "Date": "2015-10-18",
        "Time": "18:01:47,978",
        "Level": "INFO",
        "Process": "main",
        "Component": "org.apache.App",
    }
    assert had.content == "Created MRAppMaster"


def test_unmatched_lines_are_kept_whole():
    rec = LogParser(HADOOP).parse("  a continuation line of a stack trace")
    assert not rec.matched
    assert rec.content == "a continuation line of a stack trace"
    assert rec.fields == {}


def test_invalid_utf8_truncation_and_empty_lines():
    assert clean_line(b"bad \xff\xfe bytes\n") == "bad \ufffd\ufffd bytes"
    long = "y" * (MAX_LINE_CHARS + 10)
    cut = clean_line(long)
    assert cut.endswith(TRUNCATION_MARKER)
    assert len(cut) == MAX_LINE_CHARS + len(TRUNCATION_MARKER)
    assert clean_line(cut) == cut  # idempotent
    out = list(parse_lines([b"k: v1", b"", b"   \r\n", b"\xffk: v2", "k: v3"], "<K>: <Content>"))
    assert [p.content for p in out] == ["v1", "v2", "v3"]
    assert out[1].fields["K"] == "\ufffdk"


SAMPLES = {
    "syslog-rfc5424": "<34>1 2003-10-11T22:14:15.003Z host.example su - ID47 - 'su root' failed",
    "syslog-rfc3164": "<13>Feb  5 17:32:18 10.0.0.99 myapp[123]: Use the BFG!",
    "apache-combined": (
        '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 2326 '
        '"http://example.com/" "Mozilla/4.08"'
    ),
    "iso8601-level": "2024-01-02T03:04:05.678Z ERROR [main] db - connection refused",
    "json": '{"ts": 1, "level": "warn", "message": "disk almost full", "pct": 93}',
}
CONTENT = {
    "syslog-rfc5424": "'su root' failed",
    "syslog-rfc3164": "Use the BFG!",
    "apache-combined": "GET /a.gif HTTP/1.0",
    "iso8601-level": "[main] db - connection refused",
    "json": "disk almost full",
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_builtin_formats_detect_and_parse(name):
    line = SAMPLES[name]
    assert detect_format([line, line]) == name
    for fmt in (name, "auto"):
        rec = LogParser(fmt).parse(line)
        assert rec.matched
        assert rec.format == name
        assert rec.content == CONTENT[name]


def test_json_fields_and_non_message_json():
    rec = LogParser("json").parse(SAMPLES["json"])
    assert rec.fields == {"ts": "1", "level": "warn", "pct": "93"}
    other = LogParser("auto").parse('{"no": "message key"}')
    assert not other.matched
    assert other.content == '{"no": "message key"}'
    assert not LogParser("json").parse("{broken json").matched


def test_detect_format_falls_back_to_raw():
    assert detect_format([]) == "raw"
    assert detect_format(["", "   "]) == "raw"
    assert detect_format(["free text", "more free text", SAMPLES["json"]]) == "raw"
    assert LogParser("raw").parse("anything").matched
