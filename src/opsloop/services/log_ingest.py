"""Log ingest: raw lines → header format → template miner → anomaly detectors → store.

One :class:`LogIngest` per platform, shared by every source (HTTP, files, syslog). It is
thread-safe: a lock serialises learning so template ids are assigned in one order.

Durability: :meth:`LogIngest.ingest` returns only after the lines are committed to the telemetry
store, so an acknowledged line survives ``kill -9``. The learned state (miner + detectors) is
snapshotted to ``<home>/log_state.json`` with the ``seq`` of the last line it has seen; on start
the lines stored after that ``seq`` are replayed through the miner, which is deterministic, so
template ids come out the same as before the crash.

Session model: until a registered champion is loaded (:meth:`LogIngest.use_session_model`, done
by :class:`~opsloop.services.detector_models.ChampionWatcher`), sessions are judged by the
built-in online model, which learns every closed session. A registered model is frozen (see
:mod:`opsloop.services.detector_models` for why); a challenger can score the same sessions in
shadow (:meth:`LogIngest.use_shadow_model`), emitting nothing, its verdicts counted against the
live ones (:meth:`LogIngest.shadow_stats`). The snapshot keeps the online model, not the frozen
one: after a restart the watcher loads the champion again from the registry.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop.detect.anomaly import Anomaly
from opsloop.detect.logs.count_rules import CountRuleModel
from opsloop.detect.logs.frequency import FrequencyDetector
from opsloop.detect.logs.novelty import NoveltyScorer
from opsloop.detect.logs.sessions import Session, SessionGrouper
from opsloop.detect.templates import TemplateMiner
from opsloop.observe.event_time import event_time
from opsloop.observe.logformat import LogParser, detect_format
from opsloop.observe.record import RawLine
from opsloop.services.detector_models import ShadowCounts
from opsloop.services.state_file import load_state, save_state, set_aside
from opsloop.store.telemetry.logs import LogRecord, LogTable

if TYPE_CHECKING:
    from opsloop.learn.detectors.event_map import EventMap

log = logging.getLogger("opsloop.logs")
STATE_VERSION = 1
SNIFF_LINES = 200
MAX_SOURCES = 10_000  # sniffed parsers kept; beyond that each batch sniffs again
MAX_SAMPLES = 20_000  # one message per template id, to map templates into a model's vocabulary
_LEVEL_FIELDS = ("level", "Level", "severity", "Severity", "loglevel")


@dataclass
class IngestResult:
    """What happened to one batch."""

    accepted: int = 0
    skipped_empty: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    new_templates: list[int] = field(default_factory=list)
    anomalies: int = 0


class LogIngest:
    """The log pipeline shared by all log sources of one platform."""

    def __init__(
        self,
        table: LogTable,
        state_path: Path | None,
        fmt: str = "auto",
        session_key: str | None = None,
        session_idle_s: float = 300.0,
        session_min_train: int = 200,
    ) -> None:
        self.table = table
        self.state_path = state_path
        self.format = fmt
        self._parsers: dict[str, LogParser] = {}
        self._lock = threading.Lock()
        self.miner = TemplateMiner()
        self.novelty = NoveltyScorer()
        self.frequency = FrequencyDetector()
        self.session_key = session_key
        self.session_idle_s = session_idle_s
        self.session_min_train = session_min_train
        self.sessions = SessionGrouper(session_key, idle_timeout=session_idle_s)
        self.session_model = CountRuleModel()
        self.session_model_version: str | None = None  # None: the built-in online model
        self._session_map: EventMap | None = None
        self._shadow: tuple[CountRuleModel, str, EventMap] | None = None
        self._shadow_counts = ShadowCounts()
        self._samples: dict[str, str] = {}  # template id (as ingested) -> one of its messages
        self.on_anomalies: Callable[[list[Anomaly]], None] | None = None
        self._where: dict[str, tuple[str | None, str]] = {}  # template -> last (host, source)
        self._snap_seq = 0
        # (newest event time seen, when it arrived): the stream's clock for tick()
        self._event_clock: tuple[float, float] | None = None
        self._load()
        self._online_model = self.session_model
        self._seq = max(self.table.max_seq(), self._snap_seq)
        replayed = self._replay()
        if replayed:
            log.info("replayed log lines", extra={"fields": {"lines": replayed}})
        self._dirty = replayed > 0

    # -- state -------------------------------------------------------------------------------
    def _load(self) -> None:
        state = load_state(self.state_path, STATE_VERSION)
        if state is None:
            return
        try:
            miner = TemplateMiner.from_dict(state["miner"])
            novelty = NoveltyScorer.from_dict(state["novelty"])
            frequency = FrequencyDetector.from_dict(state["frequency"])
            if state.get("session_key") == self.session_key and "sessions" in state:
                self.sessions = SessionGrouper.from_dict(state["sessions"])
                self.session_model = CountRuleModel.from_dict(state["session_model"])
            self._samples = {str(k): str(v) for k, v in state.get("template_samples", {}).items()}
            self._snap_seq = int(state["seq"])
            clock = state.get("event_clock")  # (absent from older snapshots)
            if clock is not None:
                self._event_clock = (float(clock[0]), float(clock[1]))
        except (ValueError, KeyError, TypeError) as exc:
            assert self.state_path is not None
            set_aside(self.state_path, exc)
            return
        self.miner, self.novelty, self.frequency = miner, novelty, frequency

    def _replay(self) -> int:
        n = 0
        for rec in self.table.since_seq(self._snap_seq):
            self.miner.learn_one(rec.message)
            self.novelty.learn_one(str(self.miner.resolve(rec.template_id)), rec.ts)
            n += 1
        return n

    def snapshot(self) -> bool:
        """Write the learned state if it changed; returns whether it wrote."""
        if self.state_path is None:
            return False
        with self._lock:
            if not self._dirty:
                return False
            state = {
                "version": STATE_VERSION,
                "seq": self._seq,
                "saved_at": time.time(),
                "miner": self.miner.to_dict(),
                "novelty": self.novelty.to_dict(),
                "frequency": self.frequency.to_dict(),
                "session_key": self.session_key,
                "sessions": self.sessions.to_dict(),
                "session_model": self._online_model.to_dict(),
                "session_model_version": self.session_model_version,
                "template_samples": dict(self._samples),
                "event_clock": list(self._event_clock) if self._event_clock else None,
            }
            self._dirty = False
        save_state(self.state_path, state)
        return True

    # -- ingest ------------------------------------------------------------------------------
    def ingest(self, lines: Sequence[RawLine]) -> IngestResult:
        """Parse, learn and store ``lines``; durable when this returns."""
        result = IngestResult()
        records: list[LogRecord] = []
        anomalies: list[Anomaly] = []
        with self._lock:
            known_max = max(self.miner.templates, default=-1)
            for line in lines:
                if not line.text.strip():
                    result.skipped_empty += 1
                    continue
                parsed = self._parser_for(line, lines).parse(line.text)
                content = parsed.content if parsed.content.strip() else line.text.strip()
                fields = {**line.fields, **parsed.fields}
                fields.pop("Content", None)
                ts = line.timestamp
                if ts is None:
                    ts = event_time(fields)
                if ts is None or ts > line.received_at + 86400:
                    ts = line.received_at
                self._see(ts, line.received_at)
                level = line.level or next(
                    (str(fields[k]) for k in _LEVEL_FIELDS if fields.get(k)), None
                )
                match = self.miner.learn_one(content)
                self._seq += 1
                records.append(
                    LogRecord(
                        seq=self._seq, ts=ts, received_at=line.received_at, source=line.source,
                        message=content, template_id=match.template_id, params=match.params,
                        host=line.host, level=level.lower() if level else None, fields=fields,
                    )
                )  # fmt: skip
                key = str(match.template_id)
                self._where[key] = (line.host, line.source)
                found = self.novelty.learn_one(key, ts)
                if found is not None:
                    anomalies.append(_with_template(found, match.template))
                anomalies += self.frequency.learn_one(key, ts)
                if self.session_key:
                    if key not in self._samples and len(self._samples) < MAX_SAMPLES:
                        self._samples[key] = content
                    closed = self.sessions.add(key, ts, content)
                    anomalies += self._judge_sessions(closed)
            result.new_templates = sorted(i for i in self.miner.templates if i > known_max)
            self.table.append(records)
            if anomalies:
                anomalies = [self._located(a) for a in anomalies]
                self.table.append_anomalies(anomalies)
            self._dirty = self._dirty or bool(records)
        if anomalies and self.on_anomalies is not None:
            self.on_anomalies(anomalies)
        result.accepted = len(records)
        result.anomalies = len(anomalies)
        if records:
            result.first_seq, result.last_seq = records[0].seq, records[-1].seq
        return result

    def _located(self, a: Anomaly) -> Anomaly:
        """Add the host and source of the template's latest line to a template anomaly."""
        where = self._where.get(a.key)
        if where is None or "host" in a.details:
            return a
        host, source = where
        extra = {"source": source, **({"host": host} if host else {})}
        return Anomaly(a.source, a.kind, a.score, a.time, a.key, a.evidence, {**a.details, **extra})

    def _parser_for(self, line: RawLine, batch: Sequence[RawLine]) -> LogParser:
        """The parser of a line's source; for ``auto``, sniffed once from that source's lines."""
        parser = self._parsers.get(line.source)
        if parser is None:
            if self.format == "auto":
                sample = [x.text for x in batch if x.source == line.source][:SNIFF_LINES]
                parser = LogParser(detect_format(sample))
            else:
                parser = LogParser(self.format)
            if len(self._parsers) < MAX_SOURCES:
                self._parsers[line.source] = parser
        return parser

    def _judge_sessions(self, closed: list[Session]) -> list[Anomaly]:
        """Score each closed session; the online model then learns it, a registered one not."""
        out = []
        for s in closed:
            found = None
            if self._session_map is None:
                if self.session_model.n_sessions >= self.session_min_train:
                    found = self.session_model.anomaly(s.key, s.events, s.end)
                self.session_model.learn_one(s.events)
            else:
                events = self._session_map.events(s.events, self.miner.resolve, self._samples.get)
                found = self.session_model.anomaly(s.key, events, s.end)
                if found is not None:
                    details = {**found.details, "model_version": self.session_model_version}
                    found = Anomaly(found.source, found.kind, found.score, found.time, found.key,
                                    found.evidence, details)  # fmt: skip
            if found is not None:
                out.append(found)
            if self._shadow is not None:
                model, _version, mapper = self._shadow
                events = mapper.events(s.events, self.miner.resolve, self._samples.get)
                score = model.score_one(events)
                would = score >= model.threshold - 1e-9
                self._shadow_counts.add(s.key, s.end, found is not None, would, score)
        return out

    # -- registered models ---------------------------------------------------------------------
    def use_session_model(
        self, model: CountRuleModel | None, version: str | None, event_map: EventMap | None = None
    ) -> None:
        """Judge sessions with a registered ``model`` (frozen) from now on; atomic.

        ``event_map`` translates the engine's session events into the model's vocabulary.
        ``model=None`` goes back to the built-in online model. Shadow counts restart.
        """
        if model is not None and event_map is None:
            raise ValueError("a registered session model needs its event map")
        if model is not None:
            model.rules()  # mine the rules now, outside the ingest lock's critical path
        with self._lock:
            if model is None:
                self.session_model, self.session_model_version = self._online_model, None
                self._session_map = None
            else:
                self.session_model, self.session_model_version = model, version
                self._session_map = event_map
            self._restart_shadow_counts()

    def use_shadow_model(
        self, model: CountRuleModel | None, version: str | None, event_map: EventMap | None = None
    ) -> None:
        """Also score each closed session with ``model`` (no alarms); ``None`` stops it."""
        if model is not None and event_map is None:
            raise ValueError("a shadow session model needs its event map")
        if model is None:
            event_map = None
        else:
            model.rules()
        with self._lock:
            self._shadow = (model, str(version), event_map) if event_map is not None else None
            self._restart_shadow_counts()

    def _restart_shadow_counts(self) -> None:
        shadow = self._shadow[1] if self._shadow is not None else None
        self._shadow_counts = ShadowCounts(self.session_model_version, shadow)

    def shadow_stats(self) -> dict[str, Any]:
        """Live vs shadow verdicts since the last model change (empty counts without shadow)."""
        with self._lock:
            out = self._shadow_counts.to_dict()
            out["active"] = self._shadow is not None
            return out

    def _see(self, ts: float, received_at: float) -> None:
        seen = min(ts, received_at)  # a clock ahead of ours does not move time forward
        if self._event_clock is None or seen > self._event_clock[0]:
            self._event_clock = (seen, received_at)

    def event_now(self, now: float) -> float:
        """The stream's event time at wall-clock ``now``: the newest event time seen plus the
        wall time since it arrived (``now`` before any line). A live stream's is ``now``; a
        replay or backfill of old lines is not pushed past what it has sent, so its windows
        close on its own timestamps and its lines are not late."""
        if self._event_clock is None:
            return now
        seen, arrived = self._event_clock
        return seen + max(0.0, now - arrived)

    def tick(self, now: float | None = None) -> list[Anomaly]:
        """Close time windows with no traffic (silences) and idle sessions; store findings.

        Time is the stream's (:meth:`event_now`), not the wall clock's."""
        with self._lock:
            now = self.event_now(time.time() if now is None else now)
            found = self.frequency.advance(now)
            if self.session_key:
                found += self._judge_sessions(self.sessions.expire(now))
            found = [self._located(a) for a in found]
            if found:
                self.table.append_anomalies(found)
                self._dirty = True
        if found and self.on_anomalies is not None:
            self.on_anomalies(found)
        return found

    # -- reads -------------------------------------------------------------------------------
    def templates(self) -> dict[int, str]:
        """Live template ids and their text."""
        with self._lock:
            return self.miner.templates

    def resolve(self, template_id: int) -> int:
        """The live id a (possibly merged) template id now belongs to."""
        with self._lock:
            return self.miner.resolve(template_id)

    def ids_for(self, template_id: int) -> list[int]:
        """Every stored id that resolves to ``template_id`` (itself and merged ones)."""
        with self._lock:
            live = self.miner.resolve(template_id)
            return [live] + [old for old in self.miner.aliases if self.miner.resolve(old) == live]

    def novelty_score(self, template_id: int) -> float:
        """How new/rare a template is now, in [0, 1]."""
        with self._lock:
            return self.novelty.score_one(str(template_id))


def _with_template(a: Anomaly, template: str) -> Anomaly:
    return Anomaly(
        a.source, a.kind, a.score, a.time, a.key,
        [*a.evidence, f"template: {template}"], {**a.details, "template": template},
    )  # fmt: skip
