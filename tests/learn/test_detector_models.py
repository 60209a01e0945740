"""Detectors as models: the built-in log-session pipeline, live champion swap, shadow counts."""

from __future__ import annotations

import csv
import doctest
import importlib
import json
import random
import time
from pathlib import Path

import pytest

from opsloop.detect.logs.count_rules import CountRuleModel
from opsloop.learn.detectors.bindings import TelemetrySource
from opsloop.learn.detectors.log_sessions import ACTOR, MODEL_NAME, run_log_sessions
from opsloop.learn.detectors.package import SessionModelPackage
from opsloop.learn.detectors.session_data import data_hash, read_sessions_csv
from opsloop.learn.mlflow_env import MlflowEnv
from opsloop.learn.registry import ModelRegistry
from opsloop.observe.record import RawLine
from opsloop.services import detector_models
from opsloop.services.detector_models import ChampionWatcher
from opsloop.services.log_ingest import LogIngest
from opsloop.store.telemetry import TelemetryStore
from opsloop.store.telemetry.logs import LogTable

BLOCK = r"blk_-?\d+"
TEMPLATES = {
    "T6": "allocateBlock <*>",
    "T16": "Receiving block <*> src: <*>",
    "T5": "blockMap updated: <*> is added to <*>",
    "T13": "PacketResponder <*> for block <*> terminating",
    "T14": "Received block <*> of size <*> from <*>",
    "T18": "Verification succeeded for <*>",
    "T10": "Exception in receiveBlock for block <*> <*>",
}
NORMAL = ["T6"] + ["T16"] * 3 + ["T5"] * 3 + ["T13", "T14"] * 3
MISSING_ACK = ["T6"] + ["T16"] * 3 + ["T5"] * 3 + ["T13", "T14"] * 2 + ["T14"]  # one T13 short
EXCEPTION = ["T6", "T16", "T16", "T10", "T5", "T5"]
NORMAL_TEMPLATES = set(NORMAL)
STEPS = {  # request sessions for the telemetry test
    "normal": ["open", "read 10 bytes", "close"],
    "crash": ["open", "read 10 bytes", "segfault in reader"],
    "retry": ["open", "read 10 bytes", "retry read after timeout", "close"],
}


def _session(rng: random.Random, kind: str) -> list[str]:
    events = list({"normal": NORMAL, "missing_ack": MISSING_ACK, "exception": EXCEPTION}[kind])
    if kind == "normal" and rng.random() < 0.5:
        events.append("T18")
    return events


def write_hdfs_like(tmp: Path, n: int = 400, seed: int = 3) -> tuple[Path, Path]:
    """Sessions CSV (12 % one acknowledgement short, 3 % with an exception) and template CSV."""
    rng = random.Random(seed)
    sessions = tmp / "sessions.csv"
    with sessions.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["BlockId", "Label", "EventSequence"])
        for i in range(n):
            r = rng.random()
            kind = "missing_ack" if r < 0.12 else "exception" if r < 0.15 else "normal"
            w.writerow([f"blk_{rng.randrange(10**12)}{i}", int(kind != "normal"),
                        " ".join(_session(rng, kind))])  # fmt: skip
    templates = tmp / "templates.csv"
    with templates.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["TemplateId", "EventTemplate"])
        w.writerows(TEMPLATES.items())
    return sessions, templates


def render(event: str, blk: str, rng: random.Random) -> str:
    """A raw log message of ``event`` for block ``blk`` (what a datanode would write)."""
    ip = f"/10.250.{rng.randrange(255)}.{rng.randrange(255)}:50010"
    return {
        "T6": f"allocateBlock {blk}",
        "T16": f"Receiving block {blk} src: {ip}",
        "T5": f"blockMap updated: {ip} is added to {blk}",
        "T13": f"PacketResponder {rng.randrange(3)} for block {blk} terminating",
        "T14": f"Received block {blk} of size {rng.randrange(10**8)} from {ip}",
        "T18": f"Verification succeeded for {blk}",
        "T10": f"Exception in receiveBlock for block {blk} java.io.IOException: reset",
    }[event]


def feed(ingest: LogIngest, sessions: list[tuple[str, list[str]]], t0: float) -> float:
    """Send each session's lines (a second apart per session), in order; returns the time."""
    rng = random.Random(11)
    t = t0
    for blk, events in sessions:
        lines = [RawLine(render(e, blk, rng), "hdfs", t, timestamp=t + k * 0.01)
                 for k, e in enumerate(events)]  # fmt: skip
        ingest.ingest(lines)
        t += 1.0
    return t


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> MlflowEnv:
    e = MlflowEnv(tmp_path_factory.mktemp("mlflow"))
    e.ensure()
    return e


@pytest.fixture(scope="module")
def csv_flow(env, tmp_path_factory):
    """Three runs on the same data: a weak first model, a better one, the same again."""
    data, templates = write_hdfs_like(tmp_path_factory.mktemp("data"))
    moves = []
    registry = ModelRegistry(env, on_change=moves.append)
    common = {"path": data, "templates_path": templates, "registry": registry, "margin": 0.01}
    weak = {"exclude_anomalous": False, "support": 0.9}
    runs = [
        run_log_sessions(env, model_params=weak, **common),
        run_log_sessions(env, **common),
        run_log_sessions(env, **common),
    ]
    return {"data": data, "templates": templates, "registry": registry, "moves": moves,
            "runs": runs}  # fmt: skip


def test_first_run_registers_and_promotes_with_lineage(env, csv_flow):
    first = csv_flow["runs"][0]
    assert first.ok, first.error
    assert (first.version, first.alias, first.promoted) == ("1", "champion", True)
    assert first.reason.startswith("no champion yet; f1 ")
    registry = csv_flow["registry"]
    v1 = next(v for v in registry.versions(MODEL_NAME) if v["version"] == "1")
    tags = v1["tags"]
    assert tags["opsloop.pipeline_run_id"] == first.record.id
    assert tags["opsloop.mlflow_run_id"] == first.record.tracker_run_id
    assert tags["opsloop.data_hash"] == data_hash(read_sessions_csv(csv_flow["data"]))
    assert json.loads(tags["opsloop.params"])["support"] == 0.9
    assert float(tags["opsloop.eval.f1"]) == pytest.approx(first.report["challenger"]["f1"])
    assert v1["run"]["metrics"]["eval_f1"] == pytest.approx(first.report["challenger"]["f1"])
    move = csv_flow["moves"][0]
    assert (move.alias, move.version, move.actor) == ("champion", "1", ACTOR)


def test_better_model_is_promoted_identical_one_becomes_challenger(csv_flow):
    weak, better, same = csv_flow["runs"]
    assert better.ok and same.ok
    assert better.report["champion"]["version"] == "1"
    assert better.report["challenger"]["f1"] > weak.report["challenger"]["f1"] + 0.01
    assert (better.version, better.alias, better.promoted) == ("2", "champion", True)
    assert better.reason.startswith("f1 ") and " > " in better.reason
    # identical data and params: same F1 as the champion, not better by the margin
    assert same.report["champion"]["version"] == "2"
    assert same.report["champion"]["f1"] == same.report["challenger"]["f1"]
    assert (same.version, same.alias, same.promoted) == ("3", "challenger", False)
    assert " <= " in same.reason
    registry = csv_flow["registry"]
    assert registry.resolve(MODEL_NAME, "champion") == "2"
    assert registry.resolve(MODEL_NAME, "challenger") == "3"
    history = registry.show(MODEL_NAME)["history"]["champion"]
    assert [h["version"] for h in history] == ["1", "2"]
    assert history[-1]["reason"] == better.reason


def test_registered_version_loads_as_pyfunc(env, csv_flow):
    import mlflow.pyfunc

    env.activate()
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/2")
    out = model.predict([" ".join(NORMAL), " ".join(MISSING_ACK), " ".join(EXCEPTION)])
    assert [s.anomaly for s in out] == [False, True, True]
    assert out[0].score == 0 and out[1].score > 0


def test_watcher_swaps_champion_live_and_shadows_challenger(env, csv_flow, tmp_path):
    registry = csv_flow["registry"]
    store = TelemetryStore(tmp_path / "t.duckdb")
    ingest = LogIngest(LogTable(store), tmp_path / "state.json", "raw", session_key=BLOCK,
                       session_idle_s=5.0)  # fmt: skip
    alarms = []
    ingest.on_anomalies = lambda found: alarms.extend(a for a in found if a.kind == "session")
    watcher = ChampionWatcher(registry, ingest, reload_interval_s=3600)
    assert ingest.session_model_version is None  # the built-in online model until a check

    assert watcher.check_now() == {"champion": "2", "challenger": "3"}
    assert ingest.session_model_version == "2"
    assert watcher.status()["loaded"] == {"champion": "2", "challenger": "3"}
    good = [(f"blk_{i}", NORMAL) for i in range(30)]
    t = feed(ingest, [*good, ("blk_900", MISSING_ACK), ("blk_901", EXCEPTION)], 1000.0)
    ingest.tick(now=t + 100)
    # no training period: the registered model judges from the first session
    assert sorted(a.key for a in alarms) == ["blk_900", "blk_901"]
    assert {a.details["model_version"] for a in alarms} == {"2"}
    stats = ingest.shadow_stats()
    assert stats["active"] and stats["challenger_version"] == "3"
    assert (stats["sessions"], stats["both"], stats["only_champion"]) == (32, 2, 0)
    assert stats["agreement"] == 1.0

    # the weak version 1 as challenger: it misses the session one acknowledgement short
    registry.promote(MODEL_NAME, "1", "challenger", actor="test", reason="compare")
    watcher.check_now()
    alarms.clear()
    t = feed(ingest, [("blk_902", MISSING_ACK), ("blk_903", NORMAL)], t + 100)
    ingest.tick(now=t + 100)
    stats = ingest.shadow_stats()
    assert (stats["challenger_version"], stats["sessions"]) == ("1", 2)
    assert (stats["only_champion"], stats["only_challenger"], stats["both"]) == (1, 0, 0)
    assert stats["recent_disagreements"][0]["key"] == "blk_902"
    assert [a.key for a in alarms] == ["blk_902"]

    # roll the champion back to version 1: live without restart, and it behaves like version 1
    registry.promote(MODEL_NAME, "1", "champion", actor="test", reason="rollback drill")
    watcher.check_now()
    assert ingest.session_model_version == "1"
    assert not ingest.shadow_stats()["active"]  # challenger == champion: nothing to shadow
    alarms.clear()
    t = feed(ingest, [("blk_904", MISSING_ACK), ("blk_905", EXCEPTION)], t + 100)
    ingest.tick(now=t + 100)
    assert [a.key for a in alarms] == ["blk_905"]
    store.close()


def test_version_the_engine_cannot_map_is_skipped(env, tmp_path):
    data, templates = write_hdfs_like(tmp_path, seed=5)
    registry = ModelRegistry(env)
    name = "opsloop-log-sessions-untabled"
    run = run_log_sessions(env, path=data, registry=registry, model_name=name)
    assert run.ok and run.promoted, run.error
    # with the template table the events mean something else: no comparison, no promotion
    again = run_log_sessions(
        env, path=data, templates_path=templates, registry=registry, model_name=name
    )
    assert again.ok and (again.alias, again.promoted) == ("challenger", False)
    assert again.reason.startswith("not comparable with the champion")
    assert again.report["champion"]["comparable"] is False
    store = TelemetryStore(tmp_path / "t.duckdb")
    ingest = LogIngest(LogTable(store), None, "raw", session_key=BLOCK)
    watcher = ChampionWatcher(registry, ingest, model_name=name)
    watcher.check_now()
    assert ingest.session_model_version is None
    assert "template table" in watcher.status()["skipped"]["1"]
    assert watcher.status()["loaded"]["challenger"] == "2"  # that one carries its table
    store.close()


class FakeRegistry:
    """Aliases in a dict; versions are packages built in the test."""

    def __init__(self):
        self.aliases: dict[str, str] = {}
        self.fail = False

    def resolve(self, name, alias="champion"):
        if self.fail:
            raise ConnectionError("registry down")
        return self.aliases.get(alias)


def _package(sessions: list[list[str]]) -> SessionModelPackage:
    model = CountRuleModel()
    for events in sessions:
        model.learn_one(events)
    return SessionModelPackage(model, "named", TEMPLATES, BLOCK)


def test_watcher_polls_keeps_last_model_and_frozen_model_does_not_learn(tmp_path):
    packages = {"1": _package([NORMAL] * 100), "2": _package([NORMAL] * 50 + [MISSING_ACK] * 50)}
    registry = FakeRegistry()
    store = TelemetryStore(tmp_path / "t.duckdb")
    ingest = LogIngest(LogTable(store), tmp_path / "state.json", "raw", session_key=BLOCK,
                       session_idle_s=5.0)  # fmt: skip
    t = feed(ingest, [(f"blk_{i}", NORMAL) for i in range(20)], 0.0)
    ingest.tick(now=t + 100)
    online_seen = ingest.session_model.n_sessions
    assert online_seen == 20

    watcher = ChampionWatcher(registry, ingest, reload_interval_s=0.05, loader=packages.__getitem__)
    registry.aliases["champion"] = "1"
    watcher.start()
    try:
        deadline = time.monotonic() + 10
        while ingest.session_model_version != "1" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ingest.session_model_version == "1"
        t = feed(ingest, [(f"blk_{i}", NORMAL) for i in range(100, 110)], t + 100)
        ingest.tick(now=t + 100)
        assert packages["1"].model.n_sessions == 100  # frozen: scored, not learnt

        registry.fail = True  # errors are recorded, the loaded model stays
        deadline = time.monotonic() + 10
        while watcher.status()["last_error"] is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "registry down" in watcher.status()["last_error"]
        assert ingest.session_model_version == "1"
        registry.fail = False
        registry.aliases = {"champion": "2"}
        deadline = time.monotonic() + 10
        while ingest.session_model_version != "2" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ingest.session_model_version == "2"
        registry.aliases = {}  # alias gone: keep the last loaded version
        time.sleep(0.2)
        assert ingest.session_model_version == "2"
    finally:
        watcher.stop()

    # the snapshot keeps the online model (not the frozen one) and the template samples
    assert ingest.snapshot()
    again = LogIngest(LogTable(store), tmp_path / "state.json", "raw", session_key=BLOCK,
                      session_idle_s=5.0)  # fmt: skip
    assert again.session_model_version is None
    assert again.session_model.n_sessions == online_seen
    assert again._samples == ingest._samples and len(again._samples) >= len(NORMAL_TEMPLATES)
    store.close()


def test_doctests():
    for name in ("bindings", "evaluation", "event_map", "package", "session_data"):
        module = importlib.import_module(f"opsloop.learn.detectors.{name}")
        assert doctest.testmod(module).failed == 0, name
    assert doctest.testmod(detector_models).failed == 0


def test_telemetry_training_uses_operator_feedback(env, tmp_path):
    from opsloop.act.incidents import from_anomaly
    from opsloop.config import IncidentSettings
    from opsloop.services.incidents import IncidentService
    from opsloop.store.state import open_state

    state = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    incidents = IncidentService(state, IncidentSettings())
    store = TelemetryStore(tmp_path / "t.duckdb")
    ingest = LogIngest(LogTable(store), None, "raw", session_key=r"req-\d+", session_idle_s=5.0,
                       session_min_train=50)  # fmt: skip
    alerted: dict[str, tuple[str, str]] = {}  # session key -> (incident, fingerprint)

    def to_incidents(anomalies):
        anomalies = [a for a in anomalies if a.kind == "session"]
        for a, r in zip(anomalies, incidents.intake_anomalies(anomalies), strict=True):
            assert r["fingerprint"] == from_anomaly(a).fingerprint
            alerted[a.key] = (r["incident_id"], r["fingerprint"])

    ingest.on_anomalies = to_incidents
    rng = random.Random(7)
    kinds = {}
    t = 5000.0
    for i in range(400):
        kind = "normal"
        if i >= 100:  # the online model alarms after its first 50 sessions
            r = rng.random()
            kind = "crash" if r < 0.02 else "retry" if r < 0.12 else "normal"
        steps = STEPS[kind]
        key = f"req-{i}"
        kinds[key] = kind
        ingest.ingest([RawLine(f"{s} {key}", "app", t, timestamp=t + k * 0.1)
                       for k, s in enumerate(steps)])  # fmt: skip
        t += 10.0  # past the idle timeout: the previous session closes
    ingest.tick(now=t + 100)
    # operators judge the alarms: crashes are true problems, retries are noise
    verdicts = {}
    for key, (incident_id, fingerprint) in alerted.items():
        label = {"crash": "true_problem", "retry": "noise"}.get(kinds[key])
        if label:
            incidents.feedback(incident_id, "alice", label, fingerprint=fingerprint)
            verdicts[key] = int(label == "true_problem")
    assert 1 in verdicts.values() and 0 in verdicts.values()

    registry = ModelRegistry(env)
    name = "opsloop-log-sessions-telemetry"
    source = TelemetrySource(LogTable(store), state, ingest.resolve)
    run = run_log_sessions(
        env, source="telemetry", telemetry=source, registry=registry, model_name=name,
        session_key=r"req-\d+", session_idle_s=5.0, model_params={"min_sessions": 50},
    )  # fmt: skip
    assert run.ok, run.error
    from opsloop.learn.detectors.log_sessions import default_runner

    runner = default_runner(env)
    sessions = runner.output(run.record, "load_sessions.sessions")
    labels = {k: y for k, _ev, y in sessions if y is not None}
    assert labels == verdicts  # every verdict labels its session, nothing else is labelled
    assert len(sessions) == 400
    split = runner.output(run.record, "split_sessions.train")
    known_bad = sum(1 for s in split if s[2] == 1)
    assert run.record.steps["train_model"].metrics["train_used"] == len(split) - known_bad
    evaluated = run.report["challenger"]
    eval_keys = {s[0] for s in runner.output(run.record, "split_sessions.eval_set")}
    assert evaluated["n"] == sum(1 for k in verdicts if k in eval_keys)
    assert (run.version, run.alias) == ("1", "champion")
    tags = next(v for v in registry.versions(name) if v["version"] == "1")["tags"]
    assert tags["opsloop.event_space"] == "template_ids"

    # the engine loads it: crashes alarm, the retries operators called noise do not
    watcher = ChampionWatcher(registry, ingest, model_name=name)
    watcher.check_now()
    assert ingest.session_model_version == "1"
    found = []
    ingest.on_anomalies = lambda new: found.extend(a for a in new if a.kind == "session")
    for key, steps in [("req-9001", STEPS["retry"]), ("req-9002", STEPS["crash"])]:
        ingest.ingest([RawLine(f"{s} {key}", "app", t, timestamp=t) for s in steps])
        t += 10.0
    ingest.tick(now=t + 100)
    assert [a.key for a in found] == ["req-9002"]
    store.close()
    state.close()


def test_builtin_pipeline_runs_from_the_platform_catalogue(platform, tmp_path):
    from opsloop.learn.detectors.bindings import DetectorServices, bind_services, unbind_services

    data, templates = write_hdfs_like(tmp_path)
    assert "detector-log-sessions" in platform.pipelines.catalog()
    bind_services("platform", DetectorServices(registry=platform.registry))
    try:
        record = platform.pipelines.run(
            "detector-log-sessions",
            params={"load_sessions": {"source": "csv", "path": str(data),
                                      "templates_path": str(templates)}},
        )  # fmt: skip
    finally:
        unbind_services("platform")
    assert record.status.value == "succeeded", record.steps
    assert platform.pipelines.runs.get(record.id) is not None
    assert platform.registry.resolve(MODEL_NAME, "champion") == "1"
    moves = [e for e in platform.audit.list() if e.action == "model.promote"]
    assert [(m.actor, m.target) for m in moves] == [(ACTOR, f"{MODEL_NAME}@champion")]
