"""`opsloop logs parse|analyze`: the public command-line contract."""

import csv
import io
import json
import os
import subprocess
import sys

import pytest

LINES = [
    "2026-11-28T10:00:00Z INFO Connection from 10.0.0.1 closed after 12 ms",
    "2026-11-28T10:00:01Z INFO Connection from 10.0.0.2 closed after 40 ms",
    "",
    "2026-11-28T10:00:02Z ERROR Disk /dev/sda1 is full",
    "2026-11-28T10:00:03Z INFO Connection from 10.0.0.3 closed after 7 ms",
]


def opsloop(*args, stdin: bytes = b"", cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "opsloop.cli", *args], input=stdin, capture_output=True,
        cwd=cwd, timeout=120,
    )  # fmt: skip


def test_parse_jsonl_one_object_per_line_in_order(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("\n".join(LINES) + "\n")
    r = opsloop("logs", "parse", str(log))
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert [x["line"] for x in rows] == [1, 2, 4, 5]  # the empty line is skipped
    assert rows[0]["template_id"] == rows[1]["template_id"] == rows[3]["template_id"]
    assert rows[3]["template"] == "Connection from <*> closed after <*> ms"
    assert rows[3]["params"] == ["10.0.0.3", "7"]
    assert rows[2]["template_id"] != rows[0]["template_id"]


def test_parse_stdin_csv_and_custom_format():
    data = b"web|login ok for user 1\nweb|login ok for user 2\ndb|slow query 300 ms\n"
    r = opsloop(
        "logs", "parse", "-", "--format", r"<App>\|<Content>", "--output", "csv", stdin=data
    )
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout.decode())))
    assert [x["line"] for x in rows] == ["1", "2", "3"]
    assert rows[1]["template"] == "login ok for user <*>"
    assert json.loads(rows[1]["params"]) == ["2"]


def test_parse_summary_and_bad_input():
    data = b"caf\xe9 \xff\xfe broken bytes\n" + b"x" * 100_000 + b"\nok\n"
    r = opsloop("logs", "parse", "-", "--output", "none", stdin=data)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert out.startswith("lines: 3 ") and "templates:" in out and "lines/s" in out


def test_parse_missing_file_is_one_line_error(tmp_path):
    r = opsloop("logs", "parse", str(tmp_path / "nope.log"))
    assert r.returncode == 2
    assert r.stderr.decode().strip().startswith("error: cannot read")


def test_analyze_json_report_with_sessions():
    lines = []
    for i in range(300):
        lines.append(f"2026-11-28T10:{i // 60:02d}:{i % 60:02d}Z INFO open req-{i}")
        lines.append(f"2026-11-28T10:{i // 60:02d}:{i % 60:02d}Z INFO read 4096 bytes req-{i}")
        if i != 123:  # one request never closes
            lines.append(f"2026-11-28T10:{i // 60:02d}:{i % 60:02d}Z INFO close req-{i}")
    lines.append("2026-11-28T10:05:00Z ERROR kernel panic on cpu 3 req-999")
    data = ("\n".join(lines) + "\n").encode()
    r = opsloop("logs", "analyze", "-", "--session-key", r"req-\d+", "--json", stdin=data)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["lines"] == len(lines)
    assert report["time_base"] == "event time"
    assert [t["count"] for t in report["templates"][:3]] == [300, 300, 299]
    assert any("kernel panic" in t["template"] for t in report["rare"])
    flagged = [s["key"] for s in report["anomalous_sessions"]]
    assert "req-123" in flagged and "req-999" in flagged
    assert report["sessions_total"] == 301
    assert len(flagged) <= 5


def test_analyze_terminal_report():
    r = opsloop("logs", "analyze", "-", stdin=("\n".join(LINES) + "\n").encode())
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "Templates (most frequent)" in out and "Connection from <*> closed after <*> ms" in out


@pytest.mark.slow
def test_parse_memory_does_not_grow_with_lines(tmp_path):
    """Peak RSS for 400k lines stays close to that for 40k lines (bounded by templates)."""
    script = (
        "import resource, subprocess, sys\n"
        "n = int(sys.argv[1])\n"
        "p = subprocess.Popen([sys.executable, '-m', 'opsloop.cli', 'logs', 'parse', '-', "
        "'--output', 'none'], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)\n"
        "chunk = b''.join(b'user %d logged in from 10.1.%d.%d port %d\\n' % (i, i % 250, i % 7, i)"
        " for i in range(10000))\n"
        "for _ in range(n // 10000):\n    p.stdin.write(chunk)\n"
        "p.stdin.close(); p.wait()\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    rss = {}
    for n in (40_000, 400_000):
        out = subprocess.run(
            [sys.executable, "-c", script, str(n)], capture_output=True, text=True, check=True,
            env={**os.environ}, timeout=300,
        )  # fmt: skip
        rss[n] = int(out.stdout.strip())
    assert rss[400_000] < rss[40_000] * 1.25 + 8_000, rss  # KiB
