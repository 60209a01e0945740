"""Scenario files: the estate's knobs, the pace, and the faults with their timing (YAML).

::

    name: demo                      # optional, default: the file name
    description: six faults in 40 simulated minutes
    seed: 7                         # optional, default 0
    speed: 60                       # simulated seconds per real second; "max" = no waiting
    tick: 10s                       # simulated seconds per step (1s to 5m)
    duration: 40m                   # optional, default: last fault's end + 5m
    estate:                         # optional; every key optional
      requests_per_s: 40
      access_log_sample: 0.05
      heartbeat_every: 30s
      batch_every: 15m
      predictions_per_minute: 12
      label_delay: 5m
      label_fraction: 0.5
      model: churn
    faults:
      - kind: memory_leak           # see `opsloop simulate faults`
        target: web1                # optional, the kind's default target
        start: 8m                   # offset from the start of the run
        duration: 6m                # optional, the kind's default
        intensity: 1.0              # optional, (0, 5]

Durations are numbers of seconds or text such as ``90s``, ``15m``, ``2h``. Every problem
(invalid YAML, an unknown or duplicate key, a wrong type, a fault that ends after the scenario)
is a :class:`ScenarioError` whose message starts with ``file:line:``.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from opsloop.simulate.estate import EstateConfig
from opsloop.simulate.faults import FAULT_KINDS, FaultSpec, check_fault
from opsloop.timeparse import parse_duration

BUILTIN = ("demo", "quick")
_TOP_KEYS = ("name", "description", "seed", "speed", "tick", "duration", "estate", "faults")
_FAULT_KEYS = ("kind", "target", "start", "duration", "intensity")
_ESTATE_KEYS = {  # YAML key -> (EstateConfig field, type: "duration", "number", "share", "name")
    "requests_per_s": ("requests_per_s", "number"),
    "access_log_sample": ("access_log_sample", "share"),
    "heartbeat_every": ("heartbeat_every_s", "duration"),
    "batch_every": ("batch_every_s", "duration"),
    "predictions_per_minute": ("predictions_per_minute", "number"),
    "label_delay": ("label_delay_s", "duration"),
    "label_fraction": ("label_fraction", "share"),
    "model": ("model", "name"),
}


class ScenarioError(ValueError):
    """A scenario that cannot be used; the message starts with ``origin:line:``."""


@dataclass(frozen=True)
class Scenario:
    """A validated scenario. ``speed`` is ``math.inf`` for "max"."""

    name: str
    description: str
    seed: int
    speed: float
    tick_s: float
    duration_s: float
    estate: EstateConfig
    faults: tuple[FaultSpec, ...]
    origin: str = "<scenario>"


class _Map(dict):
    """A YAML mapping that remembers its own line and each key's line."""

    line: int = 0
    key_lines: dict[str, int]


class _At(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _Loader(yaml.SafeLoader):
    """SafeLoader whose mappings keep line numbers and refuse duplicate keys."""


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    out = _Map()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise _At(line, f"keys must be text, got {key!r}")
        if key in out:
            raise _At(line, f"duplicate key {key!r}")
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = line
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)


def _check_keys(m: _Map, known: tuple[str, ...] | list[str], where: str) -> None:
    for key in m:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise _At(
                m.key_lines[key],
                f"unknown key {key!r} in {where} (known: {', '.join(known)}){hint}",
            )


def _duration(m: _Map, key: str, *, positive: bool = True) -> float:
    value = m[key]
    line = m.key_lines[key]
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _At(line, f"{key!r} must be a duration such as 90s, 15m or 2h")
    try:
        seconds = parse_duration(value) if isinstance(value, str) else float(value)
    except ValueError as exc:
        raise _At(line, f"{key!r}: {exc}") from None
    if not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
        raise _At(line, f"{key!r} must be {'> 0' if positive else '>= 0'}")
    return seconds


def _number(m: _Map, key: str, low: float, high: float) -> float:
    value = m[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _At(m.key_lines[key], f"{key!r} must be a number")
    if not (math.isfinite(value) and low <= value <= high):
        raise _At(m.key_lines[key], f"{key!r} must be between {low:g} and {high:g}")
    return float(value)


def _text(m: _Map, key: str) -> str:
    value = m[key]
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise _At(m.key_lines[key], f"{key!r} must be non-empty text (at most 200 characters)")
    return value.strip()


def _speed(m: _Map) -> float:
    value = m["speed"]
    if isinstance(value, str) and value.strip().lower() in ("max", "inf"):
        return math.inf
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise _At(m.key_lines["speed"], "'speed' must be a number > 0 or 'max'")
    return float(value)


def _estate(m: Any, line: int) -> EstateConfig:
    if not isinstance(m, _Map):
        raise _At(line, "'estate' must be a mapping")
    _check_keys(m, list(_ESTATE_KEYS), "estate")
    values: dict[str, Any] = {}
    for key, (attr, kind) in _ESTATE_KEYS.items():
        if key not in m:
            continue
        if kind == "duration":
            values[attr] = _duration(m, key)
        elif kind == "share":
            values[attr] = _number(m, key, 0.0, 1.0)
        elif kind == "number":
            values[attr] = _number(m, key, 0.0, 100_000.0)
        else:
            values[attr] = _text(m, key)
    return EstateConfig(**values)


def _fault(m: Any, index: int, line: int) -> FaultSpec:
    if not isinstance(m, _Map):
        raise _At(line, f"fault #{index} must be a mapping with 'kind', 'start', ...")
    _check_keys(m, _FAULT_KEYS, f"fault #{index}")
    if "kind" not in m:
        raise _At(m.line, f"fault #{index} has no 'kind' (one of: {', '.join(FAULT_KINDS)})")
    kind = m["kind"]
    if kind not in FAULT_KINDS:
        raise _At(m.key_lines["kind"],
                  f"unknown fault kind {kind!r} (known: {', '.join(FAULT_KINDS)})")  # fmt: skip
    fk = FAULT_KINDS[kind]
    if "start" not in m:
        raise _At(m.line, f"fault #{index} ({kind}) has no 'start'")
    target = _text(m, "target") if "target" in m else fk.default_target
    duration = _duration(m, "duration") if "duration" in m else fk.default_duration_s
    intensity = _number(m, "intensity", 0.0, 5.0) if "intensity" in m else 1.0
    problem = check_fault(kind, target, duration, intensity)
    if problem:
        key = "target" if "target" in problem else "intensity" if "intensity" in problem else ""
        raise _At(m.key_lines.get(key, m.line), problem)
    return FaultSpec(kind, target, _duration(m, "start", positive=False), duration, intensity)


def parse_scenario(text: str, origin: str = "<scenario>") -> Scenario:
    """Validate scenario YAML ``text``; ``origin`` names it in error messages."""
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
        return _build(data, origin)
    except _At as exc:
        raise ScenarioError(f"{origin}:{exc.line}: {exc.message}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        context, cmark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and cmark is not None and cmark.line + 1 != line:
            problem += f" ({context} started on line {cmark.line + 1})"
        raise ScenarioError(f"{origin}:{line}: invalid YAML: {problem}") from None


def _build(data: Any, origin: str) -> Scenario:
    if not isinstance(data, _Map):
        raise _At(1, "a scenario must be a YAML mapping (name, speed, tick, faults, ...)")
    _check_keys(data, _TOP_KEYS, "the scenario")
    name = _text(data, "name") if "name" in data else Path(origin).stem
    description = _text(data, "description") if "description" in data else ""
    seed = 0
    if "seed" in data:
        seed_v = data["seed"]
        if isinstance(seed_v, bool) or not isinstance(seed_v, int) or seed_v < 0:
            raise _At(data.key_lines["seed"], "'seed' must be an integer >= 0")
        seed = seed_v
    speed = _speed(data) if "speed" in data else 1.0
    tick = _duration(data, "tick") if "tick" in data else 10.0
    if not 1.0 <= tick <= 300.0:
        raise _At(data.key_lines["tick"], "'tick' must be between 1s and 5m")
    estate = _estate(data["estate"], data.key_lines["estate"]) if "estate" in data else (
        EstateConfig()
    )  # fmt: skip
    faults: list[tuple[FaultSpec, int]] = []
    if "faults" in data:
        items = data["faults"]
        line = data.key_lines["faults"]
        if items is None:
            items = []
        if not isinstance(items, list):
            raise _At(line, "'faults' must be a list")
        for i, item in enumerate(items, 1):
            item_line = item.line if isinstance(item, _Map) else line
            faults.append((_fault(item, i, line), item_line))
    last_end = max((f.start_s + f.duration_s for f, _ in faults), default=0.0)
    if "duration" in data:
        duration = _duration(data, "duration")
        for f, item_line in faults:
            if f.start_s + f.duration_s > duration:
                raise _At(item_line, f"{f.kind} ends at {f.start_s + f.duration_s:.0f}s, after "
                          f"the scenario's duration ({duration:.0f}s)")  # fmt: skip
    else:
        duration = last_end + 300.0
    if duration < tick:
        raise _At(data.line, "the duration is shorter than one tick")
    return Scenario(name, description, seed, speed, tick, duration, estate,
                    tuple(f for f, _ in faults), origin)  # fmt: skip


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A built-in scenario by name (``demo``, ``quick``) or a scenario file."""
    if str(name_or_path) in BUILTIN:
        res = resources.files("opsloop.simulate").joinpath(f"scenarios/{name_or_path}.yaml")
        return parse_scenario(res.read_text(encoding="utf-8"), f"{name_or_path}.yaml")
    path = Path(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read: {exc}") from None
    return parse_scenario(text, str(path))


def describe(s: Scenario) -> dict[str, Any]:
    """The scenario as plain JSON-able values (for reports and the ground truth)."""
    return {
        "name": s.name,
        "description": s.description,
        "seed": s.seed,
        "speed": "max" if math.isinf(s.speed) else s.speed,
        "tick_s": s.tick_s,
        "duration_s": s.duration_s,
        "estate": {f.name: getattr(s.estate, f.name) for f in fields(s.estate)},
        "faults": [
            {
                "kind": f.kind,
                "target": f.target,
                "start_s": f.start_s,
                "duration_s": f.duration_s,
                "intensity": f.intensity,
            }
            for f in s.faults
        ],
    }
