"""``${...}`` placeholders: parsing, references and rendering - never through a shell.

A template is a string with placeholders:

* ``${params.dir}`` - a runbook parameter (already typed and validated);
* ``${event.labels.host}``, ``${event.severity}``, ``${event.key}`` ... - the trigger event;
* ``${steps.<id>.stdout}`` (also ``stderr``, ``exit_code``, ``status``, ``body``, ``json.x``,
  ``result``) - outputs of an earlier step;
* ``${secret:NAME}`` - a secret (see :mod:`~opsloop.act.runbooks.secrets`);
* ``${run.id}``, ``${runbook.name}``, ``${failure.step}``, ``${failure.error}``.

``$${`` writes a literal ``${``. A missing key is a :class:`TemplateError`, never an empty
string. Rendering substitutes *values*: the result of rendering one argv element is one
argument, whatever characters the value holds (``;``, ``$(...)``, backticks, newlines, ``../``).

>>> ctx = Context({"params": {"n": 3}, "event": {"labels": {"x": "a; rm -rf /"}}})
>>> render_str("keep ${params.n} days", ctx)
'keep 3 days'
>>> render_str("${event.labels.x}", ctx)
'a; rm -rf /'
>>> render_value("${params.n}", ctx)  # a whole placeholder keeps its type
3
>>> render_str("${event.labels.y}", ctx)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
opsloop.act.runbooks.template.TemplateError: ${event.labels.y}: no key 'y' in event.labels ...
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ROOTS",
    "Context",
    "Ref",
    "TemplateError",
    "has_placeholders",
    "iter_strings",
    "parse_template",
    "references",
    "render_str",
    "render_value",
    "stringify",
]

ROOTS = frozenset({"params", "event", "steps", "secret", "run", "runbook", "failure"})
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*\Z")
_SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class TemplateError(ValueError):
    """A template that cannot be parsed, or a reference that cannot be resolved."""


@dataclass(frozen=True)
class Ref:
    """One placeholder: ``root`` and the ``path`` below it (``secret`` holds the name).

    >>> Ref.parse("event.labels.host")
    Ref(root='event', path=('labels', 'host'))
    >>> str(Ref.parse("secret:API_TOKEN"))
    '${secret:API_TOKEN}'
    """

    root: str
    path: tuple[str, ...] = ()

    @classmethod
    def parse(cls, inner: str) -> Ref:
        """Parse the text between ``${`` and ``}``."""
        text = inner.strip()
        if text.startswith("secret:"):
            name = text[len("secret:") :].strip()
            if not _SECRET_NAME.match(name):
                raise TemplateError(f"${{{inner}}}: a secret name is letters, digits and '_'")
            return cls("secret", (name,))
        if not text:
            raise TemplateError("empty placeholder ${}")
        parts = text.split(".")
        if parts[0] not in ROOTS or parts[0] == "secret":
            allowed = ", ".join(sorted(ROOTS - {"secret"}))
            raise TemplateError(
                f"${{{inner}}}: unknown root {parts[0]!r} (use {allowed} or secret:NAME)"
            )
        for p in parts[1:]:
            if not _SEGMENT.match(p):
                raise TemplateError(f"${{{inner}}}: bad path segment {p!r}")
        return cls(parts[0], tuple(parts[1:]))

    @property
    def dotted(self) -> str:
        """``root.a.b`` (``secret:NAME`` for secrets)."""
        if self.root == "secret":
            return f"secret:{self.path[0]}"
        return ".".join((self.root, *self.path))

    def __str__(self) -> str:
        return "${" + self.dotted + "}"


def parse_template(text: str) -> list[str | Ref]:
    """Split ``text`` into literal strings and :class:`Ref` objects.

    >>> parse_template("a ${params.x} $${literal}")
    ['a ', Ref(root='params', path=('x',)), ' ${literal}']
    """
    out: list[str | Ref] = []
    buf: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text.startswith("$${", i):
            buf.append("${")
            i += 3
        elif text.startswith("${", i):
            end = text.find("}", i + 2)
            if end < 0:
                raise TemplateError(f"unclosed placeholder in {text!r} (a '${{' without '}}')")
            if buf:
                out.append("".join(buf))
                buf = []
            out.append(Ref.parse(text[i + 2 : end]))
            i = end + 1
        else:
            buf.append(text[i])
            i += 1
    if buf:
        out.append("".join(buf))
    return out


def references(text: str) -> list[Ref]:
    """Every placeholder in ``text``.

    >>> [r.dotted for r in references("${params.a}-${steps.s.stdout}")]
    ['params.a', 'steps.s.stdout']
    """
    return [p for p in parse_template(text) if isinstance(p, Ref)]


def has_placeholders(text: str) -> bool:
    """Whether ``text`` holds any ``${...}`` (an escaped ``$${`` does not count)."""
    return any(isinstance(p, Ref) for p in parse_template(text))


def iter_strings(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple, str]]:
    """``(path, string)`` for every string inside nested dicts/lists (dict keys excluded)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from iter_strings(v, (*path, k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from iter_strings(v, (*path, i))


@dataclass
class Context:
    """Values placeholders resolve against; ``secret`` looks a secret up by name."""

    data: dict[str, Any] = field(default_factory=dict)
    secret: Callable[[str], str] | None = None

    def resolve(self, ref: Ref) -> Any:
        """The value ``ref`` names; :class:`TemplateError` when any key is missing."""
        if ref.root == "secret":
            if self.secret is None:
                raise TemplateError(f"{ref}: secrets are not available here")
            return self.secret(ref.path[0])
        if ref.root not in self.data:
            raise TemplateError(f"{ref}: {ref.root!r} is not available here")
        value: Any = self.data[ref.root]
        walked = ref.root
        for seg in ref.path:
            if isinstance(value, Mapping):
                if seg not in value:
                    keys = ", ".join(sorted(map(str, value))) or "none"
                    raise TemplateError(f"{ref}: no key {seg!r} in {walked} (keys: {keys})")
                value = value[seg]
            elif isinstance(value, list | tuple) and seg.isdigit():
                if int(seg) >= len(value):
                    raise TemplateError(f"{ref}: index {seg} out of range in {walked}")
                value = value[int(seg)]
            else:
                raise TemplateError(f"{ref}: {walked} is a {type(value).__name__}, not a mapping")
            walked += "." + seg
        return value


def stringify(value: Any) -> str:
    """How a value is written into a string: ``true``/``false``, JSON for lists and dicts.

    >>> stringify(True), stringify(2.5), stringify(None), stringify({"a": 1})
    ('true', '2.5', '', '{"a": 1}')
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True, default=str)


def render_str(text: str, ctx: Context, *, encode: Callable[[Ref, str], str] | None = None) -> str:
    """Render ``text`` to one string; ``encode(ref, value)`` may transform each value.

    Substituted values are never re-parsed: a value containing ``${params.x}`` stays literal.

    >>> render_str("${params.a}", Context({"params": {"a": "${params.b}", "b": "no"}}))
    '${params.b}'
    """
    parts: list[str] = []
    for p in parse_template(text):
        if isinstance(p, str):
            parts.append(p)
        else:
            v = stringify(ctx.resolve(p))
            parts.append(encode(p, v) if encode else v)
    return "".join(parts)


def render_value(value: Any, ctx: Context) -> Any:
    """Render strings inside nested dicts/lists; a string that is exactly one placeholder
    keeps the value's type (``replicas: ${params.n}`` stays an int)."""
    if isinstance(value, str):
        parsed = parse_template(value)
        if len(parsed) == 1 and isinstance(parsed[0], Ref):
            return ctx.resolve(parsed[0])
        return render_str(value, ctx)
    if isinstance(value, Mapping):
        return {k: render_value(v, ctx) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render_value(v, ctx) for v in value]
    return value
