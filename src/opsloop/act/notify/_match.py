"""A tiny label matcher (``=``, ``!=``, ``=~``, ``!~``) for notification routes.

Kept private to :mod:`opsloop.act.notify` so routing does not depend on any other module's
matcher. Semantics follow Prometheus/Alertmanager:

* a missing label matches as the empty string;
* regexes are anchored (the whole value must match, ``re.fullmatch``);
* values are written bare or double-quoted (``\\"``, ``\\\\`` and ``\\n`` escapes in quotes).

>>> m = Matcher.parse('service=~"api|web"')
>>> m.matches({"service": "api"}), m.matches({"service": "api2"})
(True, False)
>>> Matcher.parse("env!=prod").matches({})
True
>>> Matcher.parse('team=""').matches({"service": "db"})
True
>>> str(Matcher.parse('a !~ "x.*"'))
'a!~"x.*"'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["OPS", "Matcher"]

OPS = ("=", "!=", "=~", "!~")
MAX_VALUE_CHARS = 1024
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPLIT = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*", re.DOTALL)
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n"}


def _unquote(text: str) -> str:
    """Decode a matcher value: bare, or double-quoted with ``\\"``, ``\\\\``, ``\\n``.

    >>> _unquote('"a\\\\"b"'), _unquote("plain")
    ('a"b', 'plain')
    """
    if not text.startswith('"'):
        if '"' in text:
            raise ValueError("a bare value may not contain '\"' (quote the whole value)")
        return text
    if len(text) < 2 or not text.endswith('"'):
        raise ValueError("unterminated quoted value")
    out: list[str] = []
    body = text[1:-1]
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            if i + 1 >= len(body) or body[i + 1] not in _ESCAPES:
                raise ValueError(f"bad escape at character {i + 2} of the value")
            out.append(_ESCAPES[body[i + 1]])
            i += 2
            continue
        if ch == '"':
            raise ValueError("unescaped '\"' inside a quoted value")
        out.append(ch)
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class Matcher:
    """One condition on one label: ``name op value``."""

    name: str
    op: str
    value: str
    _regex: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _LABEL.fullmatch(self.name):
            raise ValueError(f"invalid label name {self.name!r}")
        if self.op not in OPS:
            raise ValueError(f"unknown operator {self.op!r} (use one of {', '.join(OPS)})")
        if len(self.value) > MAX_VALUE_CHARS:
            raise ValueError(f"value longer than {MAX_VALUE_CHARS} characters")
        if self.op in ("=~", "!~"):
            try:
                regex = re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"invalid regex {self.value!r}: {exc}") from None
            object.__setattr__(self, "_regex", regex)

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """Parse ``name op value`` (``service="api"``, ``env!~dev|test``).

        >>> Matcher.parse("severity = critical")
        Matcher(name='severity', op='=', value='critical')
        >>> Matcher.parse("1x=y")
        Traceback (most recent call last):
        ...
        ValueError: expected name=value, name!=value, name=~regex or name!~regex, got '1x=y'
        """
        if not isinstance(text, str):
            raise ValueError(f"a matcher is a string like 'service=\"api\"', got {text!r}")
        m = _SPLIT.fullmatch(text)
        if not m:
            raise ValueError(
                f"expected name=value, name!=value, name=~regex or name!~regex, got {text!r}"
            )
        name, op, raw = m.groups()
        return cls(name, op, _unquote(raw))

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this matcher (a missing label is ``""``)."""
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self._regex is not None
        hit = self._regex.fullmatch(actual) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        quoted = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{quoted}"'
