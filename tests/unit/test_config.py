from pathlib import Path

import pytest

from opsloop.config import ConfigError, load_settings


def test_defaults_bind_loopback_and_use_local_home():
    s = load_settings()
    assert s.host == "127.0.0.1"
    assert s.port == 8700
    assert s.home == Path(".opsloop")
    assert s.effective_state_url.startswith("sqlite:///")
    assert s.effective_state_url.endswith("/.opsloop/state.db")


def test_file_then_env_then_overrides(tmp_path: Path, monkeypatch):
    cfg = tmp_path / "opsloop.toml"
    cfg.write_text('port = 9000\nhome = "/srv/x"\n[collector]\ninterval_s = 5\n')
    s = load_settings(cfg)
    assert (s.port, s.collector.interval_s, s.home) == (9000, 5.0, Path("/srv/x"))
    monkeypatch.setenv("OPSLOOP_PORT", "9100")
    monkeypatch.setenv("OPSLOOP_COLLECTOR__INTERVAL_S", "3")
    s = load_settings(cfg)
    assert (s.port, s.collector.interval_s) == (9100, 3.0)
    assert s.collector.enabled is True  # sections merge, not replace
    assert load_settings(cfg, port=9200).port == 9200
    assert load_settings(cfg, port=None).port == 9100


def test_opsloop_toml_in_cwd_is_read(tmp_path: Path):
    (tmp_path / "opsloop.toml").write_text("port = 9300\n")
    assert load_settings().port == 9300


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("portt = 1\n", "unknown setting 'portt'"),
        ("[collector]\nintervall = 3\n", "unknown setting 'collector.intervall'"),
        ("collector = 3\n", "'collector' must be a table"),
        ("port = [\n", "malformed TOML"),
        ('port = "high"\n', "'port'"),
        ("port = 70000\n", "'port'"),
        ('log_level = "loud"\n', "'log_level'"),
    ],
)
def test_bad_config_is_a_one_line_error(tmp_path: Path, text: str, expected: str):
    cfg = tmp_path / "opsloop.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    message = str(err.value)
    assert expected in message
    assert "\n" not in message


def test_explicit_missing_config_is_an_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")


def test_bad_env_value_is_an_error(monkeypatch):
    monkeypatch.setenv("OPSLOOP_PORT", "not-a-port")
    with pytest.raises(ConfigError, match="port"):
        load_settings()
