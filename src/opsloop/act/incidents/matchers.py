"""Label matchers with Alertmanager semantics: ``=``, ``!=``, ``=~``, ``!~``.

* a label the alert does not have matches as the empty string (so ``team=""`` matches alerts
  without ``team``, and ``team!~".+"`` too);
* regular expressions are fully anchored (``api`` does not match ``api-gw``; write ``api.*``);
* matcher strings read like Alertmanager's: ``service=~"api|web"``, lists
  ``{a="b", c!="d"}`` with or without braces, commas between, an optional trailing comma,
  values quoted (escapes ``\\"``, ``\\\\``, ``\\n``) or bare.

Python's ``re`` stands in for Go's RE2; the common syntax (alternation, classes, repetition,
``(?i)``) behaves the same.

>>> ms = parse_matchers('{service=~"api|web", env!="dev"}')
>>> [str(m) for m in ms]
['service=~"api|web"', 'env!="dev"']
>>> matches_all(ms, {"service": "web", "env": "prod"}), matches_all(ms, {"service": "api-gw"})
(True, False)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["MatchType", "Matcher", "MatcherError", "matches_all", "parse_matcher", "parse_matchers"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]*")
#: Longest value (or regular expression) a matcher accepts.
MAX_VALUE_CHARS = 1024
_BARE_VALUE_END = ",}"
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}


class MatcherError(ValueError):
    """A matcher that cannot be parsed or compiled; ``pos`` is the offset in the text."""

    def __init__(self, message: str, text: str = "", pos: int | None = None) -> None:
        where = f" at offset {pos} in {text!r}" if pos is not None else ""
        super().__init__(message + where)
        self.text = text
        self.pos = pos


class MatchType(StrEnum):
    """The four Alertmanager match operators."""

    EQ = "="
    NE = "!="
    RE = "=~"
    NRE = "!~"


@dataclass(frozen=True)
class Matcher:
    """``name op value``; :meth:`matches` a label set.

    >>> Matcher("host", MatchType.RE, "db[0-9]+").matches({"host": "db12"})
    True
    >>> Matcher("host", MatchType.RE, "db").matches({"host": "db12"})
    False
    >>> Matcher("team", MatchType.EQ, "").matches({})
    True
    """

    name: str
    op: MatchType
    value: str
    _regex: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise MatcherError("a matcher needs a label name")
        if len(self.value) > MAX_VALUE_CHARS:
            raise MatcherError(f"value longer than {MAX_VALUE_CHARS} characters")
        object.__setattr__(self, "op", MatchType(self.op))
        if self.op in (MatchType.RE, MatchType.NRE):
            try:
                rx = re.compile(self.value)  # always used with fullmatch: anchored
            except re.error as e:
                raise MatcherError(f"bad regular expression {self.value!r}: {e}") from e
            object.__setattr__(self, "_regex", rx)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this matcher (a missing label is ``""``)."""
        v = labels.get(self.name, "")
        if self.op is MatchType.EQ:
            return v == self.value
        if self.op is MatchType.NE:
            return v != self.value
        assert self._regex is not None
        found = self._regex.fullmatch(v) is not None
        return found if self.op is MatchType.RE else not found

    @property
    def matches_empty(self) -> bool:
        """Whether the matcher matches an alert that lacks the label."""
        return self.matches({})

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op.value}"{escaped}"'

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """Same as :func:`parse_matcher`."""
        return parse_matcher(text)


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """True when every matcher matches (vacuously for none).

    >>> matches_all([], {"a": "b"})
    True
    """
    return all(m.matches(labels) for m in matchers)


def parse_matcher(text: str) -> Matcher:
    """One matcher such as ``service=~"api|web"`` or ``host!=db1``.

    >>> parse_matcher('service =~ "api|web"')
    Matcher(name='service', op=<MatchType.RE: '=~'>, value='api|web')
    >>> parse_matcher("a=")
    Matcher(name='a', op=<MatchType.EQ: '='>, value='')
    >>> parse_matcher("a==b")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    opsloop.act.incidents.matchers.MatcherError: unexpected '=' after the value at offset 2 ...
    """
    ms = parse_matchers(text)
    if len(ms) != 1:
        raise MatcherError(f"expected one matcher, found {len(ms)}", text, 0)
    return ms[0]


def parse_matchers(text: str) -> list[Matcher]:
    """A list of matchers: ``{a="b",c!="d"}``, ``a="b", c!="d"`` or ``{}`` (none).

    >>> [str(m) for m in parse_matchers('alertname="Disk Full", host=~"db.*",')]
    ['alertname="Disk Full"', 'host=~"db.*"']
    >>> parse_matchers("{}")
    []
    """
    if not isinstance(text, str):
        raise MatcherError(f"a matcher is a string like 'service=\"api\"', got {text!r}")
    return _Parser(text).run()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def fail(self, message: str, pos: int | None = None) -> MatcherError:
        return MatcherError(message, self.text, self.i if pos is None else pos)

    def ws(self) -> None:
        while self.i < len(self.text) and self.text[self.i].isspace():
            self.i += 1

    def peek(self) -> str:
        return self.text[self.i] if self.i < len(self.text) else ""

    def run(self) -> list[Matcher]:
        self.ws()
        braced = self.peek() == "{"
        if braced:
            self.i += 1
        out: list[Matcher] = []
        while True:
            self.ws()
            c = self.peek()
            if c == "" or c == "}":
                break
            out.append(self.matcher())
            self.ws()
            c = self.peek()
            if c == ",":
                self.i += 1
            elif c not in ("", "}"):
                raise self.fail(f"unexpected {c!r} after the value")
        if braced:
            if self.peek() != "}":
                raise self.fail("missing closing '}'")
            self.i += 1
        elif self.peek() == "}":
            raise self.fail("unexpected '}'")
        self.ws()
        if self.i != len(self.text):
            raise self.fail(f"unexpected {self.peek()!r}")
        return out

    def matcher(self) -> Matcher:
        start = self.i
        if self.peek() == '"':
            name = self.quoted()
        else:
            m = _NAME.match(self.text, self.i)
            if m is None:
                raise self.fail("expected a label name")
            name = m.group()
            self.i = m.end()
        self.ws()
        op = None
        for candidate in ("=~", "!~", "!=", "="):
            if self.text.startswith(candidate, self.i):
                op = MatchType(candidate)
                self.i += len(candidate)
                break
        if op is None:
            raise self.fail("expected one of =, !=, =~, !~")
        self.ws()
        if self.peek() == '"':
            value = self.quoted()
        else:
            j = self.i
            while self.i < len(self.text) and self.text[self.i] not in _BARE_VALUE_END:
                if self.text[self.i] in "=!~\"'":
                    raise self.fail(f"unexpected {self.text[self.i]!r} after the value")
                self.i += 1
            value = self.text[j : self.i].strip()
        try:
            return Matcher(name, op, value)
        except MatcherError as e:
            raise MatcherError(str(e), self.text, start) from e

    def quoted(self) -> str:
        start = self.i
        self.i += 1
        out: list[str] = []
        while self.i < len(self.text):
            c = self.text[self.i]
            if c == '"':
                self.i += 1
                return "".join(out)
            if c == "\\":
                nxt = self.text[self.i + 1 : self.i + 2]
                if nxt not in _ESCAPES:
                    raise self.fail(f"bad escape \\{nxt}")
                out.append(_ESCAPES[nxt])
                self.i += 2
                continue
            out.append(c)
            self.i += 1
        raise self.fail("unterminated quoted string", start)
