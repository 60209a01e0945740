"""The log pipeline: per-source format sniffing, sessions, silences, corrupt state."""

from opsloop.observe.record import RawLine
from opsloop.services.log_ingest import LogIngest
from opsloop.store.telemetry import TelemetryStore
from opsloop.store.telemetry.logs import LogTable


def make(tmp_path, **kw):
    store = TelemetryStore(tmp_path / "t.duckdb")
    return store, LogIngest(LogTable(store), tmp_path / "state.json", **kw)


def test_formats_are_sniffed_per_source(tmp_path):
    store, ingest = make(tmp_path)
    now = 1795860100.0
    json_lines = [RawLine(f'{{"message": "user {i} logged in", "level": "warn"}}', "app", now)
                  for i in range(5)]  # fmt: skip
    iso_lines = [RawLine(f"2026-11-28T10:00:0{i}Z ERROR cache {i} evicted", "svc", now)
                 for i in range(5)]  # fmt: skip
    ingest.ingest(json_lines + iso_lines)
    rows = LogTable(store).search(limit=20)
    by_source = {r.source: r for r in rows}
    assert by_source["app"].message.startswith("user ") and by_source["app"].level == "warn"
    assert by_source["svc"].message.startswith("cache ") and by_source["svc"].level == "error"
    assert by_source["svc"].ts == 1795860000.0  # event time from the header (oldest row kept)
    store.close()


def test_anomalous_sessions_are_reported_after_training(tmp_path):
    store, ingest = make(tmp_path, session_key=r"req-\d+", session_idle_s=5, session_min_train=50)
    t = 0.0
    for i in range(120):
        for step in ("open", "read 10 bytes", "close"):
            ingest.ingest([RawLine(f"{step} req-{i}", "app", t, timestamp=t)])
        t += 1
    ingest.ingest([RawLine("open req-999", "app", t, timestamp=t)])
    ingest.ingest([RawLine("panic in handler req-999", "app", t, timestamp=t)])
    found = ingest.tick(now=t + 100)
    sessions = [a for a in found if a.kind == "session"]
    assert [a.key for a in sessions] == ["req-999"]
    assert any("never seen" in e or "count(" in e for e in sessions[0].evidence)
    stored = LogTable(store).anomalies(source_prefix="logs.sessions")
    assert [a["key"] for a in stored] == ["req-999"]
    store.close()


def test_corrupt_state_is_set_aside_and_relearned(tmp_path):
    store, ingest = make(tmp_path)
    ingest.ingest([RawLine("job 1 done", "a", 1.0), RawLine("job 2 done", "a", 2.0)])
    ingest.snapshot()
    ids = ingest.templates()
    (tmp_path / "state.json").write_text("{not json")
    again = LogIngest(LogTable(store), tmp_path / "state.json")
    assert again.templates() == ids  # replayed from the stored lines
    assert (tmp_path / "state.corrupt").exists()
    store.close()


def test_a_replay_of_old_lines_is_judged_on_its_own_clock(tmp_path):
    # A simulator (or `tail` of an old file) sends 45 minutes of lines in 45 seconds while the
    # server ticks on the wall clock: windows close on the lines' timestamps, so nothing is
    # late and no window gets the whole backlog (that was a storm of false bursts).
    store, ingest = make(tmp_path)
    wall0 = 1795864234.0
    t0 = wall0 - 2700.0
    found = []
    for s in range(45):  # one wall second sends one simulated minute: 20 lines
        wall = wall0 + s
        batch = [RawLine(f"GET /item/{i} 200", "web", wall, timestamp=t0 + 60.0 * s + 3.0 * i)
                 for i in range(20)]  # fmt: skip
        ingest.ingest(batch)
        found += ingest.tick(now=wall + 0.5)
    assert ingest.frequency.late == 0
    assert [a for a in found if a.kind == "burst"] == []
    assert ingest.event_now(wall0 + 44.5) < t0 + 45 * 60.0
    store.close()


def test_a_live_stream_that_stops_is_reported_silent(tmp_path):
    store, ingest = make(tmp_path)
    t = 1795860000.0
    for s in range(30 * 60):  # a heartbeat every 10 s for 30 minutes, live
        if s % 10 == 0:
            ingest.ingest([RawLine("heartbeat ok", "agent", t + s, timestamp=t + s)])
    found = ingest.tick(now=t + 30 * 60 + 180)  # then nothing for three minutes
    assert [a.kind for a in found] == ["silence"]
    ingest.snapshot()
    again = LogIngest(LogTable(store), tmp_path / "state.json")
    assert again.event_now(t + 30 * 60 + 200) == ingest.event_now(t + 30 * 60 + 200)
    store.close()
