"""One pass over a log stream → a report a person reads: templates, new/rare, bursts, sessions.

Memory is bounded by what is learned (templates, per-template counters, open sessions), not by
the number of lines.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from opsloop.detect.anomaly import Anomaly
from opsloop.detect.logs.count_rules import CountRuleModel
from opsloop.detect.logs.frequency import FrequencyDetector
from opsloop.detect.logs.sessions import Session, SessionGrouper
from opsloop.detect.templates import Match, TemplateMiner
from opsloop.observe.event_time import event_time
from opsloop.observe.logformat import LogParser, detect_format

LINES_PER_PSEUDO_WINDOW = 1000
MAX_SESSIONS_KEPT = 200_000


SNIFF_LINES = 200


def sniff(lines: Iterable[bytes | str], fmt: str) -> tuple[LogParser, Iterator[bytes | str]]:
    """A parser for ``fmt``; for ``auto``, the built-in format most of the first lines match.

    Deciding once from a sample keeps per-line cost flat (trying every format on every line is
    several times slower). The returned iterator still yields every line, sample included.
    """
    it = iter(lines)
    if fmt != "auto":
        return LogParser(fmt), it
    sample = list(itertools.islice(it, SNIFF_LINES))
    return LogParser(detect_format(sample)), itertools.chain(sample, it)


def parse_stream(
    lines: Iterable[bytes | str], fmt: str = "auto", miner: TemplateMiner | None = None
) -> Iterator[tuple[int, Match, dict[str, str]]]:
    """Yield ``(line number, match, header fields)`` per non-empty line, in order."""
    parser, lines = sniff(lines, fmt)
    miner = TemplateMiner() if miner is None else miner
    for n, raw in enumerate(lines, 1):
        parsed = parser.parse(raw)
        if not parsed.content.strip():
            continue
        yield n, miner.learn_one(parsed.content), parsed.fields


@dataclass
class TemplateRow:
    """A template's line in the report."""

    id: int
    template: str
    count: int
    first_line: int
    last_line: int
    example: str


@dataclass
class LogReport:
    """Everything ``opsloop logs analyze`` shows."""

    lines: int = 0
    parsed_lines: int = 0
    seconds: float = 0.0
    time_base: str = "line"
    first_time: float | None = None
    last_time: float | None = None
    templates: list[TemplateRow] = field(default_factory=list)
    rare: list[TemplateRow] = field(default_factory=list)
    bursts: list[dict[str, Any]] = field(default_factory=list)
    sessions_total: int = 0
    anomalous_sessions: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict."""
        from dataclasses import asdict

        return asdict(self)


class LogAnalyzer:
    """Streaming analysis; call :meth:`add` per line, then :meth:`report`."""

    def __init__(self, fmt: str = "auto", session_key: str | None = None) -> None:
        self.format = fmt
        self.parser = LogParser(fmt)
        self.miner = TemplateMiner()
        self.lines = 0
        self.parsed = 0
        self._counts: dict[int, list[Any]] = {}  # id -> [count, first line, last line, example]
        self._time_base: str | None = None
        self._first_t: float | None = None
        self._last_t: float | None = None
        self._freq: FrequencyDetector | None = None
        self._bursts: list[Anomaly] = []
        self._grouper = SessionGrouper(session_key) if session_key else None
        self._sessions: list[Session] = []
        self._sessions_dropped = 0
        self._started = time.perf_counter()

    def feed(self, lines: Iterable[bytes | str]) -> None:
        """Learn every line of ``lines`` (sniffing the format first when it is ``auto``)."""
        self.parser, it = sniff(lines, self.format)
        for raw in it:
            self.add(raw)

    def add(self, raw: bytes | str) -> None:
        """Learn one input line."""
        self.lines += 1
        parsed = self.parser.parse(raw)
        if not parsed.content.strip():
            return
        self.parsed += 1
        match = self.miner.learn_one(parsed.content)
        entry = self._counts.get(match.template_id)
        if entry is None:
            self._counts[match.template_id] = [1, self.lines, self.lines, parsed.content[:300]]
        else:
            entry[0] += 1
            entry[2] = self.lines
        t = self._time_of(parsed.fields)
        assert self._freq is not None
        self._bursts += self._freq.learn_one(str(match.template_id), t)
        if self._grouper is not None:
            self._keep(self._grouper.add(str(match.template_id), t, parsed.content))

    def _time_of(self, fields: dict[str, str]) -> float:
        if self._time_base is None:
            first = event_time(fields)
            self._time_base = "event time" if first is not None else "line"
            window = 60.0 if first is not None else float(LINES_PER_PSEUDO_WINDOW)
            self._freq = FrequencyDetector(window=window)
        t = event_time(fields) if self._time_base == "event time" else None
        if t is None:
            t = self._last_t if self._time_base == "event time" and self._last_t else self.lines
        t = float(t)
        self._first_t = t if self._first_t is None else min(self._first_t, t)
        self._last_t = t if self._last_t is None else max(self._last_t, t)
        return t

    def _keep(self, sessions: list[Session]) -> None:
        for s in sessions:
            if len(self._sessions) < MAX_SESSIONS_KEPT:
                self._sessions.append(s)
            else:
                self._sessions_dropped += 1

    def report(self, top: int = 30) -> LogReport:
        """Finish the pass and build the report."""
        rows: dict[int, TemplateRow] = {}
        for tid, (count, first, last, example) in self._counts.items():
            live = self.miner.resolve(tid)
            row = rows.get(live)
            if row is None:
                rows[live] = TemplateRow(
                    live, self.miner.template(live), count, first, last, example
                )
            else:
                row.count += count
                row.first_line = min(row.first_line, first)
                row.last_line = max(row.last_line, last)
        ordered = sorted(rows.values(), key=lambda r: (-r.count, r.id))
        rare_limit = max(1, int(0.0005 * self.parsed))
        rare = sorted(
            (r for r in ordered if r.count <= rare_limit), key=lambda r: (r.count, -r.first_line)
        )
        bursts = []
        for a in self._bursts:
            tid = int(a.key)
            bursts.append(
                {
                    "kind": a.kind, "time": a.time, "template_id": self.miner.resolve(tid),
                    "template": self.miner.template(tid), "score": round(a.score, 2),
                    "evidence": a.evidence,
                }
            )  # fmt: skip
        bursts.sort(key=lambda b: -b["score"])
        report = LogReport(
            lines=self.lines,
            parsed_lines=self.parsed,
            seconds=time.perf_counter() - self._started,
            time_base=self._time_base or "line",
            first_time=self._first_t,
            last_time=self._last_t,
            templates=ordered[:top],
            rare=rare[:top],
            bursts=bursts[:top],
        )
        if self._grouper is not None:
            self._keep(self._grouper.flush())
            model = CountRuleModel()
            for s in self._sessions:
                model.learn_one(s.events)
            found = []
            for s in self._sessions:
                a = model.anomaly(s.key, s.events, s.end)
                if a is not None:
                    found.append({"key": s.key, "score": round(a.score, 2), "events": len(s.events),
                                  "evidence": a.evidence[:5]})  # fmt: skip
            found.sort(key=lambda x: -x["score"])
            report.sessions_total = len(self._sessions) + self._sessions_dropped
            report.anomalous_sessions = found[:top]
        return report
