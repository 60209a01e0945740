"""The generated reference documents match the code (settings, CLI, HTTP API)."""

from __future__ import annotations

import importlib.util
import json
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_reference.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("gen_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gen():
    return _load_script()


@pytest.fixture(scope="module")
def rendered(gen):
    return gen.render_all()


def test_committed_references_are_up_to_date(gen, rendered):
    stale = gen.stale(rendered, ROOT)
    assert not stale, (
        f"out of date: {', '.join(stale)}; regenerate with `{gen.COMMAND}` "
        "(from the repository root) and commit the result"
    )


def test_defaults_block_loads_as_the_defaults(rendered, tmp_path):
    from opsloop.config import Settings, load_settings

    text = rendered["docs/reference/configuration.md"]
    block = re.search(r"## Every setting at its default\n\n```toml\n(.*?)```", text, re.S)
    assert block, "the configuration reference lost its defaults block"
    path = tmp_path / "opsloop.toml"
    path.write_text(block.group(1))
    tomllib.loads(block.group(1))
    assert load_settings(path) == Settings()


def test_every_setting_and_section_is_documented(rendered):
    from opsloop.config import Settings

    text = rendered["docs/reference/configuration.md"]
    for name, field in Settings.model_fields.items():
        sub = getattr(field.annotation, "model_fields", None)
        if sub is None:
            assert f"`OPSLOOP_{name.upper()}`" in text
            continue
        assert f"## `[{name}]`" in text
        for key in sub:
            assert f"`OPSLOOP_{name.upper()}__{key.upper()}`" in text


def test_every_v1_route_shows_its_role(rendered):
    spec = json.loads(rendered["docs/reference/openapi.json"])
    table = rendered["docs/reference/http-api.md"]
    for path, ops in spec["paths"].items():
        for method in ops:
            row = re.search(
                rf"^\| {method.upper()} \| `{re.escape(path)}` \| (\w+|\?) \|", table, re.M
            )
            assert row, (method, path)
            roles = {"viewer", "operator", "admin"}
            expected = roles if path.startswith("/api/v1") else {*roles, "none"}
            assert row.group(1) in expected, (method, path, row.group(1))


def test_every_cli_command_is_documented(rendered):
    import typer

    from opsloop.cli import app

    text = rendered["docs/reference/cli.md"]

    def walk(cmd, path):
        commands = getattr(cmd, "commands", None)
        if isinstance(commands, dict):
            for name, sub in commands.items():
                yield from walk(sub, [*path, name])
        else:
            yield " ".join(path)

    names = list(walk(typer.main.get_command(app), ["opsloop"]))
    assert "opsloop up" in names
    for name in names:
        assert f"### `{name}`" in text, name
