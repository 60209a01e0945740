"""Prometheus 0.0.4 / OpenMetrics 1.0 text parsing: real pages, every type, escapes, errors."""

from __future__ import annotations

import doctest
import math

import pytest

from opsloop.observe import counter_rate, prom_text, sample_check, scrape
from opsloop.observe.prom_text import (
    PromParseError,
    detect_openmetrics,
    iter_samples,
    parse,
    parse_value,
)

NODE_EXPORTER = r"""# HELP go_gc_duration_seconds A summary of the pause duration of GC cycles.
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 2.1331e-05
go_gc_duration_seconds{quantile="0.25"} 3.5912e-05
go_gc_duration_seconds{quantile="0.5"} 4.2871e-05
go_gc_duration_seconds{quantile="1"} 0.000311872
go_gc_duration_seconds_sum 0.118356743
go_gc_duration_seconds_count 2561
# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 8
# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds_total counter
node_cpu_seconds_total{cpu="0",mode="idle"} 1.0523684e+06
node_cpu_seconds_total{cpu="0",mode="iowait"} 1023.19
node_cpu_seconds_total{cpu="1",mode="idle"} 1.05230178e+06
# HELP node_filesystem_avail_bytes Filesystem space available to non-root users in bytes.
# TYPE node_filesystem_avail_bytes gauge
node_filesystem_avail_bytes{device="/dev/sda1",fstype="ext4",mountpoint="/"} 4.4543188e+10
node_filesystem_avail_bytes{device="tmpfs",fstype="tmpfs",mountpoint="/run"} 8.28850176e+08
# HELP node_network_receive_bytes_total Network device statistic receive_bytes.
# TYPE node_network_receive_bytes_total counter
node_network_receive_bytes_total{device="eth0"} 9.87654321e+09
node_network_receive_bytes_total{device="lo"} 1.23456e+06
# HELP node_load1 1m load average.
# TYPE node_load1 gauge
node_load1 0.21
# HELP prometheus_http_request_duration_seconds Histogram of latencies for HTTP requests.
# TYPE prometheus_http_request_duration_seconds histogram
prometheus_http_request_duration_seconds_bucket{handler="/metrics",le="0.1"} 1
prometheus_http_request_duration_seconds_bucket{handler="/metrics",le="0.2"} 1
prometheus_http_request_duration_seconds_bucket{handler="/metrics",le="+Inf"} 2
prometheus_http_request_duration_seconds_sum{handler="/metrics"} 0.347
prometheus_http_request_duration_seconds_count{handler="/metrics"} 2
# HELP node_scrape_collector_success node_exporter: Whether a collector succeeded.
# TYPE node_scrape_collector_success gauge
node_scrape_collector_success{collector="arp"} 1
node_scrape_collector_success{collector="bcache"} 1
# HELP node_uname_info Labeled system information as provided by the uname system call.
# TYPE node_uname_info gauge
node_uname_info{machine="x86_64",nodename="h1",version="#1 SMP PREEMPT_DYNAMIC (2024-02-01)"} 1
"""

OPENMETRICS = r"""# TYPE acme_http_router_request_seconds summary
# UNIT acme_http_router_request_seconds seconds
# HELP acme_http_router_request_seconds Latency though all of ACME's HTTP request router.
acme_http_router_request_seconds_sum{path="/api/v1",method="GET"} 9036.32
acme_http_router_request_seconds_count{path="/api/v1",method="GET"} 807283.0
acme_http_router_request_seconds_created{path="/api/v1",method="GET"} 1605281325.0
# TYPE go_goroutines gauge
# HELP go_goroutines Number of goroutines that currently exist.
go_goroutines 69
# TYPE process_cpu_seconds counter
# UNIT process_cpu_seconds seconds
# HELP process_cpu_seconds Total user and system CPU time spent in seconds.
process_cpu_seconds_total 4.20072246e+06 1605281326.5
process_cpu_seconds_created 1605281320.0
# TYPE foo histogram
foo_bucket{le="0.01"} 0
foo_bucket{le="0.1"} 8 # {trace_id="KOO5S4vxi0o"} 0.067
foo_bucket{le="1.0"} 11 # {trace_id="oHg5SJYRHA0"} 0.7 1605281325.123
foo_bucket{le="+Inf"} 17
foo_count 17
foo_sum 324789.3
foo_created 1520430000.123
# TYPE queue gaugehistogram
queue_bucket{le="0.5"} 3
queue_bucket{le="+Inf"} 5
queue_gcount 5
queue_gsum 2.1
# TYPE build info
build_info{version="1.2.3",revision="abc"} 1
# TYPE feature stateset
feature{feature="a"} 1
feature{feature="b"} 0
# TYPE mystery unknown
mystery 42
# EOF
"""


def by_name(result, name):
    return [s for s in result.samples if s.name == name]


def test_node_exporter_page():
    r = parse(NODE_EXPORTER)
    assert r.errors == []
    assert not r.openmetrics
    assert [f.name for f in r.families] == [
        "go_gc_duration_seconds",
        "go_goroutines",
        "node_cpu_seconds_total",
        "node_filesystem_avail_bytes",
        "node_network_receive_bytes_total",
        "node_load1",
        "prometheus_http_request_duration_seconds",
        "node_scrape_collector_success",
        "node_uname_info",
    ]
    assert len(r.samples) == 23
    gc = r.family("go_gc_duration_seconds")
    assert gc.type == "summary" and len(gc.samples) == 6
    assert gc.help == "A summary of the pause duration of GC cycles."
    assert gc.samples[1].labels == {"quantile": "0.25"} and gc.samples[1].value == 3.5912e-05
    assert gc.samples[-1].name == "go_gc_duration_seconds_count" and gc.samples[-1].value == 2561
    cpu = r.family("node_cpu_seconds_total")
    assert cpu.type == "counter"
    assert cpu.samples[0].labels == {"cpu": "0", "mode": "idle"}
    assert cpu.samples[0].value == 1.0523684e06
    assert all(s.family_type == "counter" for s in cpu.samples)
    hist = r.family("prometheus_http_request_duration_seconds")
    assert hist.type == "histogram"
    assert [s.name.rsplit("_", 1)[1] for s in hist.samples] == [
        "bucket",
        "bucket",
        "bucket",
        "sum",
        "count",
    ]
    assert hist.samples[2].labels == {"handler": "/metrics", "le": "+Inf"}
    uname = by_name(r, "node_uname_info")[0]
    assert uname.labels["version"] == "#1 SMP PREEMPT_DYNAMIC (2024-02-01)"
    assert all(s.timestamp_s is None for s in r.samples)


def test_openmetrics_page_every_type_and_exemplars():
    r = parse(OPENMETRICS)
    assert r.openmetrics and detect_openmetrics(OPENMETRICS)
    assert r.errors == []
    types = {f.name: f.type for f in r.families}
    assert types == {
        "acme_http_router_request_seconds": "summary",
        "go_goroutines": "gauge",
        "process_cpu_seconds": "counter",
        "foo": "histogram",
        "queue": "gaugehistogram",
        "build": "info",
        "feature": "stateset",
        "mystery": "unknown",
    }
    acme = r.family("acme_http_router_request_seconds")
    assert acme.unit == "seconds"
    assert acme.help == "Latency though all of ACME's HTTP request router."
    assert [s.name for s in acme.samples][-1] == "acme_http_router_request_seconds_created"
    cpu = r.family("process_cpu_seconds")
    total, created = cpu.samples
    assert total.name == "process_cpu_seconds_total" and total.family == "process_cpu_seconds"
    assert total.timestamp_s == 1605281326.5  # OpenMetrics timestamps are seconds
    assert created.value == 1605281320.0 and created.family_type == "counter"
    foo = r.family("foo")
    assert [s.value for s in foo.samples[:4]] == [0, 8, 11, 17]
    assert foo.samples[1].labels == {"le": "0.1"}  # exemplar dropped
    assert foo.samples[2].timestamp_s is None  # the exemplar's timestamp is not the sample's
    assert [s.name for s in r.family("queue").samples] == [
        "queue_bucket",
        "queue_bucket",
        "queue_gcount",
        "queue_gsum",
    ]
    assert by_name(r, "build_info")[0].labels == {"version": "1.2.3", "revision": "abc"}
    assert [s.labels["feature"] for s in r.family("feature").samples] == ["a", "b"]
    assert by_name(r, "mystery")[0].family_type == "unknown"


def test_prometheus_counter_without_type_is_untyped():
    r = parse('some_metric 1\nother{a="x"} 2\nsome_metric 3\n')
    assert [f.name for f in r.families] == ["some_metric", "other"]
    assert all(s.family_type == "untyped" for s in r.samples)
    assert len(r.family("some_metric").samples) == 2


def test_label_value_and_help_escapes():
    text = (
        '# HELP esc A back\\\\slash, a\\nnewline and a "quote"\n'
        "# TYPE esc gauge\n"
        'esc{path="C:\\\\dir\\\\file",msg="say \\"hi\\"\\nbye",empty=""} 1\n'
    )
    r = parse(text)
    assert r.errors == []
    fam = r.family("esc")
    assert fam.help == 'A back\\slash, a\nnewline and a "quote"'
    assert fam.samples[0].labels == {"path": "C:\\dir\\file", "msg": 'say "hi"\nbye', "empty": ""}


def test_unknown_escape_kept_in_prometheus_refused_in_openmetrics():
    assert parse('a{p="x\\ty"} 1\n').samples[0].labels == {"p": "x\\ty"}
    r = parse('a{p="x\\ty"} 1\n# EOF\n')
    assert r.samples == []
    assert r.errors[0].line_no == 1 and "invalid escape" in r.errors[0].reason


def test_label_set_forms():
    r = parse('a{} 1\nb{x="1",} 2\nc { x = "1" , y="2" } 3\nd{x="{}",y=","} 4\n')
    assert r.errors == []
    assert [s.labels for s in r.samples] == [
        {},
        {"x": "1"},
        {"x": "1", "y": "2"},
        {"x": "{}", "y": ","},
    ]


def test_timestamps():
    r = parse("a 1 1700000000123\nb 2 -5000\nc 3\n")
    assert [s.timestamp_s for s in r.samples] == [1700000000.123, -5.0, None]
    om = parse("a 1 1700000000.5\nb 2 17e8\n# EOF\n")
    assert [s.timestamp_s for s in om.samples] == [1700000000.5, 1.7e9]
    bad = parse("a 1 1.5\n")
    assert bad.samples == [] and "integer milliseconds" in bad.errors[0].reason


def test_special_values():
    r = parse("a NaN\nb +Inf\nc -Inf\nd Inf\ne nan\nf 1e-3\ng -0.5\nh .5\n")
    assert r.errors == []
    values = [s.value for s in r.samples]
    assert math.isnan(values[0]) and math.isnan(values[4])
    assert values[1] == math.inf and values[2] == -math.inf and values[3] == math.inf
    assert values[5:] == [0.001, -0.5, 0.5]
    for bad in ("1_000", " 1", "0x10", "", "one", "1.2.3"):
        with pytest.raises(ValueError):
            parse_value(bad)


def test_malformed_lines_reported_with_line_numbers_and_good_lines_kept():
    text = "\n".join(
        [
            "# TYPE good gauge",  # 1
            "good 1",  # 2
            "bad-name 1",  # 3
            'lab{x="1" 2',  # 4
            'lab{x="1",x="2"} 2',  # 5
            "novalue",  # 6
            "val abc",  # 7
            'unterminated{x="abc} 1',  # 8
            "fields 1 2 3",  # 9
            "# TYPE weird sometype",  # 10
            "good 2",  # 11
            "# TYPE good counter",  # 12
            'glued{a="b"}1',  # 13
            "",
        ]
    )
    r = parse(text)
    assert [s.value for s in r.samples] == [1, 2]
    reasons = {e.line_no: e.reason for e in r.errors}
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8, 9, 10, 12, 13]
    assert "invalid character '-'" in reasons[3]
    assert "expected ',' or '}'" in reasons[4]
    assert "duplicate label name 'x'" in reasons[5]
    assert "missing value" in reasons[6]
    assert "invalid value 'abc'" in reasons[7]
    assert "unterminated label value" in reasons[8]
    assert "unexpected text after the timestamp" in reasons[9]
    assert "unknown metric type 'sometype'" in reasons[10]
    assert "second TYPE" in reasons[12]
    assert "blank before the value" in reasons[13]
    err = r.errors[0]
    assert str(err) == f"line 3: {err.reason}" and err.line == "bad-name 1"


def test_strict_raises_on_first_error():
    with pytest.raises(PromParseError) as info:
        parse("ok 1\nok 2\nbroken{ 3\nalso broken\n", strict=True)
    assert info.value.line_no == 3 and "line 3" in str(info.value)
    with pytest.raises(PromParseError):
        list(iter_samples("x 1\n", openmetrics=True, strict=True))  # no # EOF


def test_family_semantics_checked():
    text = (
        "# TYPE h histogram\n"
        "h_bucket 1\n"  # no le
        'h_bucket{le="abc"} 1\n'
        'h_bucket{le="1"} 1\n'
        "# TYPE s summary\n"
        "s 1\n"  # no quantile
        "s_sum 3\n"
        "# TYPE st stateset\n"
        'st{other="a"} 1\n'
        "h_count 4\n"
        "h 5\n"  # doesn't fit a histogram
    )
    r = parse(text)
    assert [(s.name, s.family) for s in r.samples] == [
        ("h_bucket", "h"),
        ("s_sum", "s"),
        ("h_count", "h"),
    ]
    reasons = {e.line_no: e.reason for e in r.errors}
    assert sorted(reasons) == [2, 3, 6, 9, 11]
    assert "no 'le' label" in reasons[2] and "non-numeric le='abc'" in reasons[3]
    assert "no 'quantile' label" in reasons[6]
    assert "no 'st' label" in reasons[9]
    assert "does not fit the histogram h" in reasons[11]


def test_type_after_samples_and_help_only_family():
    r = parse("x 1\n# TYPE x gauge\n# HELP lonely nothing here\n")
    assert r.errors[0].line_no == 2 and "after its samples" in r.errors[0].reason
    assert r.family("lonely").help == "nothing here" and r.family("lonely").samples == []


def test_openmetrics_structure_rules():
    text = "# TYPE a gauge\n\na 1\n# random comment\n# UNIT a_bytes seconds\n# EOF\nb 2\n"
    r = parse(text, openmetrics=True)
    assert [s.name for s in r.samples] == ["a"]
    reasons = {e.line_no: e.reason for e in r.errors}
    assert sorted(reasons) == [2, 4, 5, 7]
    assert "empty line" in reasons[2]
    assert "invalid comment" in reasons[4]
    assert "not a suffix" in reasons[5]
    assert "after # EOF" in reasons[7]
    missing = parse("a 1\n", openmetrics=True)
    assert missing.samples[0].value == 1
    assert missing.errors[0].line_no == 2 and "missing # EOF" in missing.errors[0].reason


def test_prometheus_comments_blank_lines_and_crlf():
    r = parse("# just a comment\n\n#no space\n  indented 1\r\nx 2\r\n")
    assert r.errors == []
    assert [(s.name, s.value) for s in r.samples] == [("indented", 1), ("x", 2)]


def test_bad_exemplar_reported_but_sample_kept():
    r = parse('# TYPE c counter\nc_total 3 # {trace="1"} notanumber\nc_total 4 # oops\n# EOF\n')
    assert [s.value for s in r.samples] == [3, 4]
    assert [e.line_no for e in r.errors] == [2, 3]
    assert all("invalid exemplar" in e.reason for e in r.errors)


def test_counter_with_total_in_type_name_prometheus_style():
    r = parse("# TYPE reqs_total counter\nreqs_total 5\n")
    s = r.samples[0]
    assert (s.family, s.family_type) == ("reqs_total", "counter")


@pytest.mark.parametrize(
    "line",
    [
        'a{b="1",c="x y"} 1.5 1700000000000',
        "a 1",
        "a{} -Inf",
        'a{b="1",} NaN',
        'a{b="q\\"x"} 1',
        'a{b="1",b="2"} 1',
        'a{b="1"c="2"} 1',
        "a 1 1.5",
        "a 1 2 3",
        "a x",
        'a{b="1"} 1 # {t="x"} 2',
        "a:b_c 1e3 -1",
    ],
)
@pytest.mark.parametrize("openmetrics", [False, True])
def test_fast_path_agrees_with_full_parser(line, openmetrics):
    def run(fn):
        try:
            return fn(line, openmetrics)
        except prom_text._LineError as exc:
            return ("error", str(exc))

    fast, slow = run(prom_text._parse_sample_line), run(prom_text._parse_sample_line_slow)
    assert repr(fast) == repr(slow)  # repr: NaN != NaN


@pytest.mark.parametrize("module", [prom_text, sample_check, counter_rate, scrape])
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
