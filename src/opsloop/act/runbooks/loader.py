"""Load runbook YAML files with errors that say *file:line:column: where: what is wrong*.

The YAML is composed into nodes first (PyYAML's safe loader), so every value keeps its position;
pydantic's error locations (``steps -> 0 -> shell -> argv``) and the cross-reference problems of
:mod:`~opsloop.act.runbooks.checks` are mapped back to those positions. Duplicate keys - which
YAML silently collapses - are errors too.

>>> rb = parse_runbook('''
... name: hello
... steps:
...   - shell: {argv: [echo, hi]}
... ''')
>>> rb.name, rb.steps[0].shell.argv
('hello', ['echo', 'hi'])
>>> try:
...     parse_runbook('''
... name: hello
... steps:
...   - shell: {argv: "echo hi", timeout: 5}
... ''', file="hello.yaml")
... except RunbookValidationError as e:
...     for err in e.errors: print(err.line, err.column, err.path, err.message[:28])
4 19 steps[0].shell.argv argv must be a list of argum
4 30 steps[0].shell.timeout unknown key 'timeout' (did y
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from opsloop.act.runbooks.checks import check_runbook
from opsloop.act.runbooks.schema import Runbook

__all__ = [
    "RunbookError",
    "RunbookValidationError",
    "load_runbook",
    "load_runbooks",
    "parse_runbook",
]

Loc = tuple[str | int, ...]
MAX_FILE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class RunbookError:
    """One problem in one file; ``line``/``column`` are 1-based (``None`` when unknown)."""

    file: str
    line: int | None
    column: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        return f"{where}: {self.path + ': ' if self.path else ''}{self.message}"


class RunbookValidationError(ValueError):
    """A runbook file with one or more :class:`RunbookError`; ``str`` lists them all."""

    def __init__(self, errors: list[RunbookError]) -> None:
        super().__init__("\n".join(map(str, errors)))
        self.errors = errors


def format_loc(loc: Iterable[str | int]) -> str:
    """``('steps', 0, 'shell')`` -> ``steps[0].shell``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Positions:
    """Builds plain data from YAML nodes, remembering where each value and key is."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.values: dict[Loc, yaml.Mark] = {}
        self.keys: dict[Loc, yaml.Mark] = {}
        self.errors: list[RunbookError] = []
        self.constructor = yaml.SafeLoader("")

    def err(self, mark: yaml.Mark | None, loc: Loc, message: str) -> None:
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        self.errors.append(RunbookError(self.file, line, col, format_loc(loc), message))

    def build(self, node: yaml.Node, loc: Loc = ()) -> Any:
        self.values.setdefault(loc, node.start_mark)
        if isinstance(node, yaml.MappingNode):
            self.constructor.flatten_mapping(node)  # YAML merge keys (<<)
            out: dict[Any, Any] = {}
            for knode, vnode in node.value:
                key = self.constructor.construct_object(knode, deep=True)
                if not isinstance(key, str | int | float | bool) or key is None:
                    self.err(knode.start_mark, loc, f"keys must be strings, not {key!r}")
                    continue
                key = str(key) if not isinstance(key, str) else key
                if key in out:
                    self.err(knode.start_mark, (*loc, key), f"duplicate key {key!r}")
                    continue
                self.keys[(*loc, key)] = knode.start_mark
                out[key] = self.build(vnode, (*loc, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(v, (*loc, i)) for i, v in enumerate(node.value)]
        return self.constructor.construct_object(node, deep=True)

    def mark_for(self, loc: Loc, *, key: bool = False) -> tuple[yaml.Mark | None, Loc]:
        """The mark of ``loc`` (its key's with ``key=True``), else of its nearest parent."""
        if key and loc in self.keys:
            return self.keys[loc], loc
        cur = loc
        while cur not in self.values and cur:
            cur = cur[:-1]
        return self.values.get(cur), cur


def parse_runbook(text: str, file: str = "<string>") -> Runbook:
    """Validate one runbook document; :class:`RunbookValidationError` lists every problem."""
    pos = _Positions(file)
    try:
        docs = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        context = getattr(e, "context", None)
        msg = f"not valid YAML: {problem}" + (f" ({context})" if context else "")
        pos.err(mark, (), msg)
        raise RunbookValidationError(pos.errors) from None
    if len(docs) != 1 or docs[0] is None:
        pos.err(None, (), f"expected one YAML document, found {len([d for d in docs if d])}")
        raise RunbookValidationError(pos.errors)
    try:
        data = pos.build(docs[0])
    except yaml.YAMLError as e:
        pos.err(getattr(e, "problem_mark", None), (), f"not valid YAML: {e}")
        raise RunbookValidationError(pos.errors) from None
    if not isinstance(data, dict):
        pos.err(docs[0].start_mark, (), "a runbook is a mapping (name:, steps:, ...)")
        raise RunbookValidationError(pos.errors)
    try:
        rb = Runbook.model_validate(data)
    except ValidationError as e:
        for err in e.errors(include_url=False):
            _pydantic_error(pos, err)
        raise RunbookValidationError(_sorted(pos.errors)) from None
    if pos.errors:  # duplicate keys (the first value was kept and validated)
        raise RunbookValidationError(_sorted(pos.errors))
    for loc, message in check_runbook(rb):
        mark, _ = pos.mark_for(loc)
        pos.err(mark, loc, message)
    if pos.errors:
        raise RunbookValidationError(_sorted(pos.errors))
    rb._source = file
    return rb


def load_runbook(path: str | Path) -> Runbook:
    """Read and validate one file."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise RunbookValidationError(
                [RunbookError(str(p), None, None, "", f"file larger than {MAX_FILE_BYTES} bytes")]
            )
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RunbookValidationError(
            [RunbookError(str(p), None, None, "", f"cannot read: {e}")]
        ) from None
    return parse_runbook(text, str(p))


def load_runbooks(folder: str | Path) -> tuple[list[Runbook], list[RunbookError]]:
    """Every ``*.yaml``/``*.yml`` file in ``folder`` (sorted); never raises for a bad file.

    A runbook whose name another file already used is reported and skipped.
    """
    root = Path(folder)
    runbooks: list[Runbook] = []
    errors: list[RunbookError] = []
    if not root.is_dir():
        return [], [RunbookError(str(root), None, None, "", "not a directory")]
    seen: dict[str, str] = {}
    files = sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    for p in files:
        try:
            rb = load_runbook(p)
        except RunbookValidationError as e:
            errors.extend(e.errors)
            continue
        except Exception as e:  # a bug must not hide every other runbook
            errors.append(RunbookError(str(p), None, None, "", f"internal error: {e!r}"))
            continue
        if rb.name in seen:
            errors.append(
                RunbookError(
                    str(p), None, None, "name", f"{rb.name!r} is also defined in {seen[rb.name]}"
                )
            )
            continue
        seen[rb.name] = str(p)
        runbooks.append(rb)
    return runbooks, errors


def _sorted(errors: list[RunbookError]) -> list[RunbookError]:
    return sorted(errors, key=lambda e: (e.line or 0, e.column or 0))


def _pydantic_error(pos: _Positions, err: Mapping[str, Any]) -> None:
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "extra_forbidden":
        mark, _ = pos.mark_for(loc, key=True)
        name = loc[-1]
        allowed = _fields_at(loc[:-1])
        hint = ""
        if allowed:
            close = difflib.get_close_matches(str(name), allowed, n=1)
            hint = (
                f" (did you mean {close[0]!r}?)"
                if close
                else f" (allowed: {', '.join(sorted(allowed))})"
            )
        pos.err(mark, loc, f"unknown key {name!r}{hint}")
        return
    if kind == "missing":
        mark, _ = pos.mark_for(loc)
        pos.err(mark, loc[:-1], f"missing required key {loc[-1]!r}")
        return
    given = err.get("input")
    if kind not in ("value_error", "assertion_error") and isinstance(
        given, str | int | float | bool
    ):
        msg += f" (got {given!r})"
    mark, _ = pos.mark_for(loc)
    pos.err(mark, loc, msg)


def _fields_at(loc: Loc) -> list[str]:
    """Field names (aliases preferred) of the model at ``loc`` inside :class:`Runbook`."""
    tp: Any = Runbook
    for part in loc:
        tp = _strip(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part)) or next(
                (f for f in tp.model_fields.values() if f.alias == part), None
            )
            if field is None:
                return []
            tp = field.annotation
        else:
            args = typing.get_args(tp)
            origin = typing.get_origin(tp)
            if origin in (list, tuple) and args:
                tp = args[0]
            elif origin is dict and len(args) == 2:
                tp = args[1]
            else:
                return []
    tp = _strip(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [f.alias or n for n, f in tp.model_fields.items()]
    return []


def _strip(tp: Any) -> Any:
    """Unwrap ``Annotated[...]`` and ``X | None``."""
    while True:
        if typing.get_origin(tp) is typing.Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
                continue
        return tp
