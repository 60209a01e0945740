"""Doctests and small helpers: sessions, time parsing, redaction, roles, home."""

import doctest
import logging
import os
import stat

import pytest

import opsloop.api.sessions
import opsloop.logsetup
import opsloop.observe.event_time
import opsloop.roles
import opsloop.store.telemetry.metrics
import opsloop.timeparse


@pytest.mark.parametrize(
    "module",
    [opsloop.api.sessions, opsloop.timeparse, opsloop.logsetup, opsloop.roles,
     opsloop.observe.event_time,
     opsloop.store.telemetry.metrics],
)  # fmt: skip
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_tampered_session_is_refused():
    from opsloop.api.sessions import make_session, verify_session

    key = os.urandom(32)
    value = make_session("abc123", key, 60)
    assert verify_session(value, key) == "abc123"
    token_id, expiry, sig = value.split(".")
    assert verify_session(f"zzz.{expiry}.{sig}", key) is None
    assert verify_session(f"{token_id}.{int(expiry) + 999}.{sig}", key) is None
    assert verify_session(value, os.urandom(32)) is None
    assert verify_session("garbage", key) is None


def test_logs_never_show_tokens(capsys):
    from opsloop.logsetup import configure_logging

    configure_logging("info", "json")
    token = "opl_0123456789ab_" + "x" * 43
    logging.getLogger("opsloop.test").info("got %s and Bearer %s", token, "abc.def")
    logging.getLogger("opsloop.test").info("dsn postgresql://u:hunter2@db/x password=hunter2")
    err = capsys.readouterr().err
    assert token not in err and "abc.def" not in err and "hunter2" not in err
    assert "opl_***" in err


def test_home_is_private_and_unwritable_home_is_an_error(tmp_path):
    from opsloop.home import HomeError, prepare_home, write_private

    home = prepare_home(tmp_path / "h")
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    write_private(home / "secret", "x")
    assert stat.S_IMODE((home / "secret").stat().st_mode) == 0o600
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(HomeError, match=r"not a directory|cannot create"):
        prepare_home(blocker / "sub")


def test_host_collector_samples_the_machine():
    from opsloop.observe.host import HostCollector

    c = HostCollector(host="test")
    first = {s.name for s in c.sample(now=1000.0)}
    assert {"host_cpu_percent", "host_memory_percent", "host_load1", "host_processes",
            "host_swap_percent", "host_disk_percent"} <= first  # fmt: skip
    second = c.sample(now=1010.0)
    names = {s.name for s in second}
    assert "host_network_receive_bytes_per_s" in names
    assert all(s.labels["host"] == "test" and s.is_finite() for s in second)
    mem = next(s for s in second if s.name == "host_memory_percent")
    assert 0 < mem.value <= 100
