"""Pipelines declared in YAML, with steps referenced as ``module:function``.

.. code-block:: yaml

    name: train
    description: Train the churn model      # optional
    pythonpath: [..]                        # optional: folders (relative to this file)
                                            # put on sys.path so `uses:` modules import
    steps:
      - name: load                      # optional, defaults to the function's step name
        uses: mypkg.steps:load_rows
        params: {path: data/rows.json}
      - name: fit
        uses: mypkg.steps:fit
        inputs: {rows: load}            # "<step>" or "<step>.<output>"
        params: {lr: 0.1}
        retries: 2                      # optional overrides of the @step options
        backoff: 1.0
        timeout: 600
        cache: true

Errors name the file and line of the offending step.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from opsloop.learn.pipelines.pipeline import Pipeline, PipelineError
from opsloop.learn.pipelines.step import StepDefinitionError, step_spec

TOP_KEYS = {"name", "steps", "description", "pythonpath"}
STEP_KEYS = {"name", "uses", "inputs", "params", "retries", "backoff", "timeout", "cache"}
RETRY_KEYS = {"retries": "retries", "backoff": "backoff"}


class SpecError(ValueError):
    """The YAML declaration is malformed or refers to something that cannot be loaded."""


class _LineDict(dict[str, Any]):
    line: int = 0


class _Loader(yaml.SafeLoader):
    """Safe loader whose mappings remember their 1-based line number."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _LineDict:
    mapping = _LineDict(loader.construct_mapping(node, deep=True))
    mapping.line = node.start_mark.line + 1
    return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def resolve(ref: str) -> Callable[..., Any]:
    """Import ``module:attribute`` (the attribute may be dotted, e.g. ``mod:Class.method``).

    >>> resolve("os.path:join")("a", "b")
    'a/b'
    """
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise SpecError(f"{ref!r} is not of the form 'module:function'")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpecError(f"cannot import module {module_name!r} for {ref!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise SpecError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not callable(target):
        raise SpecError(f"{ref!r} is not callable")
    return target


def _extend_path(entries: Any, base: Path | None, where: str) -> None:
    if isinstance(entries, str):
        entries = [entries]
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise SpecError(f"{where}: 'pythonpath' must be a folder or a list of folders")
    for entry in entries:
        folder = Path(entry)
        if not folder.is_absolute():
            folder = (base or Path.cwd()) / folder
        folder = folder.resolve()
        if not folder.is_dir():
            raise SpecError(f"{where}: pythonpath folder {str(folder)!r} does not exist")
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))


def pipeline_from_dict(data: Any, source: str = "<spec>", base: Path | None = None) -> Pipeline:
    """Build a :class:`Pipeline` from already-parsed YAML/JSON data.

    ``base`` is the folder relative ``pythonpath`` entries start from (the YAML file's).
    """

    def where(item: Any) -> str:
        line = getattr(item, "line", 0)
        return f"{source}" + (f" line {line}" if line else "")

    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a mapping with 'name' and 'steps'")
    unknown_top = sorted(set(data) - TOP_KEYS)
    if unknown_top:
        raise SpecError(f"{where(data)}: unknown keys {unknown_top} (allowed: {sorted(TOP_KEYS)})")
    if "pythonpath" in data:
        _extend_path(data["pythonpath"], base, where(data))
    name = data.get("name")
    steps = data.get("steps")
    if not isinstance(name, str) or not name:
        raise SpecError(f"{where(data)}: 'name' must be a non-empty string")
    if not isinstance(steps, list) or not steps:
        raise SpecError(f"{where(data)}: 'steps' must be a non-empty list")
    pipeline = Pipeline(name)
    for index, item in enumerate(steps):
        if not isinstance(item, dict):
            raise SpecError(f"{where(data)}: step #{index + 1} must be a mapping")
        unknown = sorted(set(item) - STEP_KEYS)
        if unknown:
            raise SpecError(f"{where(item)}: unknown keys {unknown} (allowed: {sorted(STEP_KEYS)})")
        if "uses" not in item:
            raise SpecError(f"{where(item)}: step #{index + 1} needs 'uses: module:function'")
        try:
            func = resolve(str(item["uses"]))
            spec = step_spec(func)
        except (SpecError, StepDefinitionError) as exc:
            raise SpecError(f"{where(item)}: {exc}") from exc
        options: dict[str, Any] = {}
        retry_changes = {RETRY_KEYS[k]: item[k] for k in RETRY_KEYS if k in item}
        try:
            if retry_changes:
                options["retry"] = replace(spec.retry, **retry_changes)
        except (TypeError, StepDefinitionError) as exc:
            raise SpecError(f"{where(item)}: {exc}") from exc
        if "timeout" in item:
            options["timeout"] = item["timeout"]
        if "cache" in item:
            options["cache"] = bool(item["cache"])
        for key in ("inputs", "params"):
            if not isinstance(item.get(key, {}), dict):
                raise SpecError(f"{where(item)}: '{key}' must be a mapping")
        try:
            pipeline.add(
                func,
                name=item.get("name"),
                inputs={k: str(v) for k, v in item.get("inputs", {}).items()},
                params=dict(item.get("params", {})),
                line=getattr(item, "line", None) or None,
                **options,
            )
        except PipelineError as exc:
            raise SpecError(f"{source}: " + "; ".join(exc.problems)) from exc
    return pipeline


def load_pipeline(text_or_path: str | Path) -> Pipeline:
    """Load and validate a pipeline from a YAML file path or YAML text.

    A :class:`pathlib.Path` is always read as a file; a string is read as a file when it
    names an existing one, else parsed as YAML text.
    """
    source = "<yaml>"
    text = str(text_or_path)
    path = Path(text_or_path)
    base = None
    if isinstance(text_or_path, Path) or ("\n" not in text and path.is_file()):
        try:
            source, text, base = str(path), path.read_text(), path.resolve().parent
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError(f"{path}: cannot read: {exc}") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: invalid YAML: {exc}") from exc
    pipeline = pipeline_from_dict(data, source, base)
    try:
        pipeline.validate()
    except PipelineError as exc:
        raise SpecError(f"{source}: {exc}") from exc
    return pipeline
