"""Detectors as models: metric alarm settings per series family, tuned on operators' verdicts.

One family (``queue_depth``) has true incidents (a spike every 600 points) each followed by two
flapping aftershocks (120 and 200 points later) that operators call noise; every incident is
higher than the last and its aftershocks overshoot it (a height never reached before: the
detector's familiar-move floor does not apply, timing alone separates them); the default settings
(alarm_p 1e-3, refractory 100) re-arm in time to alarm on the first aftershock. The pipeline
must find settings that keep the incidents and drop the aftershocks, register and promote them,
not promote the same result twice, and the watcher must put them into a running MetricIngest.
"""

from __future__ import annotations

import doctest
import random
import time

import pytest

from opsloop.learn.detectors import metric_data, metric_settings
from opsloop.learn.detectors.bindings import TelemetrySource
from opsloop.learn.detectors.metric_data import (
    alarm_times,
    calibrated_scores,
    default_settings,
    label_events,
)
from opsloop.learn.detectors.metric_settings import ACTOR, MODEL_NAME, run_metric_settings
from opsloop.learn.mlflow_env import MlflowEnv
from opsloop.learn.registry import ModelRegistry
from opsloop.services.detector_models import MetricSettingsWatcher
from opsloop.services.metric_ingest import MetricIngest
from opsloop.store.telemetry import MetricSample, TelemetryStore
from opsloop.store.telemetry.logs import LogTable

FAMILY = "queue_depth"
DT = 60.0
PERIOD, FIRST, AFTERSHOCKS = 600, 400, (120, 200)
T0 = time.time() - 3 * 86400.0  # inside the pipeline's default 7-day range


def kind(i: int) -> str:
    """``"spike"`` (a true incident), ``"aftershock"`` (noise) or ``""`` at point ``i``."""
    if i < FIRST:
        return ""
    phase = (i - FIRST) % PERIOD
    return "spike" if phase == 0 else "aftershock" if phase in AFTERSHOCKS else ""


def bump(i: int) -> float:
    """The height added at point ``i``: 40 at the first spike, 20 more at each later one, its
    aftershocks 5 and 10 above it."""
    if not kind(i):
        return 0.0
    cycle, phase = divmod(i - FIRST, PERIOD)
    return 40.0 + 20.0 * cycle + (5.0 * (1 + AFTERSHOCKS.index(phase)) if phase else 0.0)


def samples(host: str, start: int, stop: int, seed: int, name: str = FAMILY) -> list[MetricSample]:
    """Points ``start..stop-1`` of one series: N(10, 1), plus :func:`bump` at spikes and
    aftershocks (only in ``FAMILY``)."""
    rng = random.Random(seed)
    out = []
    for i in range(stop):
        x = 10.0 + rng.gauss(0.0, 1.0) + (bump(i) if name == FAMILY else 0.0)
        if i >= start:
            out.append(MetricSample(name, x, T0 + DT * i, {"host": host}))
    return out


def feed(ingest: MetricIngest, batch: list[MetricSample], size: int = 50) -> list:
    """Ingest in batches; the metric anomalies raised, in order."""
    found = []
    for k in range(0, len(batch), size):
        found += ingest.ingest(batch[k : k + size]).anomalies
    return [a for a in found if a.kind == "metric_anomaly"]


def index(a) -> int:
    """The point index of an anomaly."""
    return round((a.time - T0) / DT)


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    """First pass with the defaults, verdicts through the incident service, two runs."""
    from opsloop.config import IncidentSettings
    from opsloop.services.incidents import IncidentService
    from opsloop.store.state import open_state

    tmp = tmp_path_factory.mktemp("metric-settings")
    env = MlflowEnv(tmp / "mlflow")
    env.ensure()
    state = open_state(f"sqlite:///{tmp / 'state.db'}")
    incidents = IncidentService(state, IncidentSettings())
    store = TelemetryStore(tmp / "t.duckdb")
    ingest = MetricIngest(store, tmp / "metric_state.json")
    verdicts: list[tuple[str, int, str]] = []
    incident_ids = set()

    def judge(anomalies):  # an operator judges each alert, then closes its incident
        anomalies = [a for a in anomalies if a.kind == "metric_anomaly"]
        anomalies = [a for a in anomalies if a.details["name"] == FAMILY]
        for a, r in zip(anomalies, incidents.intake_anomalies(anomalies), strict=True):
            label = {"spike": "true_problem", "aftershock": "noise"}.get(kind(index(a)))
            if label is None:
                continue  # an alarm on plain noise nobody judged
            incidents.feedback(r["incident_id"], "alice", label, fingerprint=r["fingerprint"])
            incidents.resolve(r["incident_id"], "alice")
            incident_ids.add(r["incident_id"])
            verdicts.append((a.details["labels"]["host"], index(a), label))

    ingest.on_anomalies = judge
    # host a: two incidents with their aftershocks; host b: only up to its first incident (it
    # goes on live below); "latency": another family nobody judged
    first = feed(ingest, samples("a", 0, 1300, seed=1))
    first += feed(ingest, samples("b", 0, 450, seed=2))
    feed(ingest, samples("x", 0, 600, seed=3, name="latency"))
    registry = ModelRegistry(env)
    source = TelemetrySource(LogTable(store), state)
    runs = [run_metric_settings(env, telemetry=source, registry=registry) for _ in range(2)]
    yield {"env": env, "store": store, "state": state, "ingest": ingest, "first": first,
           "verdicts": verdicts, "incidents": incident_ids, "registry": registry,
           "source": source, "runs": runs}  # fmt: skip
    store.close()
    state.close()


def test_first_pass_alarms_on_aftershocks_and_operators_judge_them(flow):
    labels = [label for _host, _i, label in flow["verdicts"]]
    assert labels.count("true_problem") >= 3 and labels.count("noise") >= 2
    assert len(flow["incidents"]) == len(flow["verdicts"])  # one incident per judged alarm


def test_verdicts_map_to_anomaly_times(flow):
    reader = metric_data.MetricTelemetry(flow["store"], flow["state"])
    rows = reader.verdicts()
    events = label_events(rows, reader.anomalies(T0 - 1, time.time()),
                          reader.windows(r["incident_id"] for r in rows))  # fmt: skip
    got = sorted((labels["host"], round((t - T0) / DT), y) for _f, labels, t, y in events)
    want = sorted((h, i, int(label == "true_problem")) for h, i, label in flow["verdicts"])
    assert got == want
    assert {f for f, *_ in events} == {FAMILY}


def test_replay_matches_the_live_detector_alarm_for_alarm():
    batch = samples("a", 0, 1300, seed=1)
    ts, xs = [s.ts for s in batch], [s.value for s in batch]
    cal = calibrated_scores(ts, xs)
    for settings in ({"alarm_p": 1e-3, "refractory": 100}, {"alarm_p": 1e-2, "refractory": 50}):
        from opsloop.detect.metrics import DefaultMetricDetector

        det, live = DefaultMetricDetector(**settings), []
        for t, x in zip(ts, xs, strict=True):
            det.score_one(t, x)
            det.learn_one(t, x)
            if det.last_alarm:
                live.append(t)
        assert alarm_times(ts, cal, settings) == live


def test_first_run_picks_stricter_settings_registers_and_promotes(flow):
    run = flow["runs"][0]
    assert run.ok, run.error
    assert (run.version, run.alias, run.promoted) == ("1", "champion", True)
    assert "built-in defaults" in run.reason
    report = run.report
    assert set(report["families"]) == {FAMILY}  # "latency" has no verdicts: not tuned
    fam = report["families"][FAMILY]
    new, base = fam["challenger"], fam["champion"]
    assert base["settings"] == default_settings()
    assert base["false_alarms"] > 0  # the defaults alarm on judged aftershocks
    assert new["false_alarms"] == 0 and new["hits"] >= base["hits"]
    assert new["score"] > base["score"]
    chosen = new["settings"]
    assert chosen["alarm_p"] < 1e-3 or chosen["refractory"] > 100  # stricter
    assert report["challenger"]["normalised"] > report["champion"]["normalised"] + 0.01
    registry = flow["registry"]
    v1 = next(v for v in registry.versions(MODEL_NAME) if v["version"] == "1")
    tags = v1["tags"]
    assert tags["opsloop.pipeline_run_id"] == run.record.id
    assert tags["opsloop.data_hash"]
    assert tags["opsloop.champion.version"] == ""
    assert float(tags["opsloop.eval.score"]) == pytest.approx(report["challenger"]["normalised"])
    document = metric_settings.load_settings(flow["env"], MODEL_NAME, "1")
    assert document["settings"] == {FAMILY: chosen}
    history = registry.show(MODEL_NAME)
    assert ACTOR in str(history)


def test_second_run_same_data_is_only_a_challenger(flow):
    first, second = flow["runs"]
    assert second.ok, second.error
    assert (second.version, second.alias, second.promoted) == ("2", "challenger", False)
    assert "champion v1" in second.reason
    assert flow["registry"].resolve(MODEL_NAME, "champion") == "1"
    fam = second.report["families"][FAMILY]
    assert fam["champion"]["settings"] == first.report["families"][FAMILY]["challenger"]["settings"]


def test_registered_version_loads_as_pyfunc(flow):
    import mlflow.pyfunc

    flow["env"].activate()
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/1")
    out = model.predict([FAMILY, "latency"])
    assert out[0].tuned and not out[1].tuned
    assert out[1].alarm_p == 1e-3 and out[1].refractory == 100


def test_watcher_applies_champion_live_and_aftershocks_stop_alarming(flow, tmp_path):
    ingest, store = flow["ingest"], flow["store"]
    control = MetricIngest(TelemetryStore(tmp_path / "control.duckdb"), None)
    feed(control, samples("b", 0, 450, seed=2))  # the same history as the live host b
    watcher = MetricSettingsWatcher(flow["registry"], ingest, reload_interval_s=3600)
    assert watcher.check_now() == "1"
    chosen = flow["runs"][0].report["families"][FAMILY]["challenger"]["settings"]
    assert ingest.settings_version == "1"
    assert ingest.settings_by_family == {FAMILY: chosen}
    live_b = ingest.detectors['queue_depth{"host":"b"}']
    assert (live_b.alarm_p, live_b.refractory) == (chosen["alarm_p"], chosen["refractory"])
    assert live_b.alarm.on == 1.0 - chosen["alarm_p"]
    assert ingest.detectors['latency{"host":"x"}'].alarm_p == 1e-3  # untuned family
    status = watcher.status()
    assert status["live_version"] == "1" and status["families"] == {FAMILY: chosen}
    ingest.on_anomalies = None
    # host b goes on: the defaults alarm on its aftershocks, the champion's settings do not
    rest = samples("b", 450, 1300, seed=2)
    before = [kind(index(a)) for a in feed(control, rest)]
    after = [kind(index(a)) for a in feed(ingest, rest)]
    assert "aftershock" in before
    assert "aftershock" not in after and "spike" in after
    # a series born after the change starts with its family's settings
    fresh = feed(ingest, samples("c", 0, 700, seed=4))
    assert [kind(index(a)) for a in fresh] == ["spike"]
    assert ingest.detectors['queue_depth{"host":"c"}'].refractory == chosen["refractory"]
    # the version survives a restart through the snapshot; a second check changes nothing
    assert ingest.snapshot()
    again = MetricIngest(store, ingest.state_path)
    assert again.settings_version == "1" and again.settings_by_family == {FAMILY: chosen}
    assert watcher.check_now() == "1" and watcher.loaded == "1"
    control.store.close()


def test_watcher_skips_settings_the_engine_refuses(flow, tmp_path):
    ingest = MetricIngest(TelemetryStore(tmp_path / "t.duckdb"), None)
    bad = {"settings": {FAMILY: {"alarm_p": 0.5}}}
    watcher = MetricSettingsWatcher(flow["registry"], ingest, loader=lambda v: bad)
    assert watcher.check_now() == "1"
    assert ingest.settings_version is None and "1" in watcher.skipped
    ingest.store.close()


def test_builtin_is_in_the_catalogue():
    from opsloop.learn.detectors import register_builtins

    names = []
    register_builtins(lambda name, factory, description: names.append(name))
    assert "detector-metric-settings" in names


def test_doctests():
    from opsloop.services import metric_ingest

    for module in (metric_data, metric_settings, metric_ingest):
        assert doctest.testmod(module).failed == 0, module.__name__
