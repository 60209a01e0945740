"""The tiny expression language of ``when:`` and ``conditions:`` - parsed, never ``eval``-ed.

Grammar (keywords are lower case)::

    expr    := and ('or' and)*
    and     := not ('and' not)*
    not     := 'not' not | compare
    compare := atom (('==' | '!=' | '<' | '<=' | '>' | '>=' | 'in' | 'not in') atom)?
    atom    := STRING | NUMBER | true | false | null | NAME | ${NAME} | '(' expr ')'
             | '[' [expr (',' expr)*] ']'

``NAME`` is a dotted reference such as ``event.labels.env`` or ``steps.check.exit_code`` (the
same as inside ``${...}``); strings (``'...'`` or ``"..."``) may hold ``${...}`` placeholders.
The expression is parsed *before* any value is looked up, so a value can never change the
expression's structure: a label holding ``" or "1"=="1`` is just a string.

Comparison rules: a number against a numeric string compares as numbers (labels are strings,
``event.labels.pct > 90`` works); ``<``/``>`` on anything else that is not two strings or two
numbers is an error. ``in`` tests list elements, mapping keys (``'env' in event.labels``) or
substrings. A lone value is true unless it is ``false``, ``null``, ``0``, empty, or one of the
strings ``false``, ``no``, ``off``, ``0``.

>>> ctx = Context({"event": {"labels": {"env": "prod", "pct": "93.5"}}})
>>> evaluate_condition("event.labels.env == 'prod' and event.labels.pct > 90", ctx)
True
>>> evaluate_condition("'team' in event.labels or event.labels.env in ['dev', 'test']", ctx)
False
>>> evaluate_condition("not (${event.labels.env} != \\"prod\\")", ctx)
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from opsloop.act.runbooks.template import Context, Ref, TemplateError, parse_template, render_str

__all__ = [
    "Expression",
    "ExpressionError",
    "compile_expression",
    "evaluate_condition",
    "truthy",
]

MAX_LENGTH = 2000
MAX_DEPTH = 32

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<ref>\$\{[^}]*\})
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<num>-?\d+(?:\.\d+)?(?![A-Za-z0-9_.]))
  | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,)
  | (?P<name>[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_][A-Za-z0-9_-]*)*)
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", "'": "'", '"': '"'}
_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}
_FALSE_STRINGS = {"", "false", "no", "off", "0"}


class ExpressionError(ValueError):
    """An expression that does not parse, or cannot be evaluated on the given values."""


@dataclass(frozen=True)
class _Tok:
    kind: str  # ref, str, num, op, name, kw, end
    value: Any
    pos: int


@dataclass(frozen=True)
class Expression:
    """A parsed expression; :meth:`evaluate` it against a :class:`Context`."""

    text: str
    tree: tuple

    @property
    def refs(self) -> list[Ref]:
        """Every reference the expression reads (names, ``${...}`` and placeholders in strings)."""
        out: list[Ref] = []

        def walk(node: tuple) -> None:
            tag = node[0]
            if tag == "ref":
                out.append(node[1])
            elif tag == "tmpl":
                out.extend(p for p in parse_template(node[1]) if isinstance(p, Ref))
            else:
                for child in node[1:]:
                    if isinstance(child, tuple):
                        walk(child)
                    elif isinstance(child, list):
                        for c in child:
                            walk(c)

        walk(self.tree)
        return out

    def evaluate(self, ctx: Context) -> Any:
        """The expression's value; :class:`ExpressionError` on missing keys or bad types."""
        try:
            return _eval(self.tree, ctx)
        except TemplateError as e:
            raise ExpressionError(f"{self.text!r}: {e}") from e


def compile_expression(text: str) -> Expression:
    """Parse ``text``; :class:`ExpressionError` says what is wrong and where.

    >>> compile_expression("event.kind ==")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    opsloop.act.runbooks.expression.ExpressionError: 'event.kind ==': expected a value at offset 13
    >>> compile_expression("__import__('os')")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    opsloop.act.runbooks.expression.ExpressionError: ...unknown name '__import__'...
    """
    if not isinstance(text, str):
        raise ExpressionError(f"an expression is a string, not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_LENGTH} characters")
    try:
        return Expression(text, _Parser(text).run())
    except TemplateError as e:
        raise ExpressionError(f"{text!r}: {e}") from e


def evaluate_condition(text: str | Expression, ctx: Context) -> bool:
    """Compile (if needed), evaluate and apply :func:`truthy`."""
    expr = text if isinstance(text, Expression) else compile_expression(text)
    return truthy(expr.evaluate(ctx))


def truthy(value: Any) -> bool:
    """Truth of a lone value (see the module doc).

    >>> [truthy(v) for v in (True, "yes", "false", "0", 0, 2, [], None)]
    [True, True, False, False, False, True, False, False]
    """
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE_STRINGS
    return bool(value)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = self._lex(text)
        self.i = 0
        self.depth = 0

    def fail(self, msg: str, pos: int | None = None) -> ExpressionError:
        at = self.toks[self.i].pos if pos is None else pos
        return ExpressionError(f"{self.text!r}: {msg} at offset {at}")

    def _lex(self, text: str) -> list[_Tok]:
        toks: list[_Tok] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                raise ExpressionError(f"{text!r}: unexpected {text[pos]!r} at offset {pos}")
            kind = m.lastgroup or ""
            raw = m.group()
            if kind == "ref":
                toks.append(_Tok("ref", Ref.parse(raw[2:-1]), pos))
            elif kind == "str":
                toks.append(_Tok("str", _unquote(raw), pos))
            elif kind == "num":
                toks.append(_Tok("num", float(raw) if "." in raw else int(raw), pos))
            elif kind == "op":
                toks.append(_Tok("op", raw, pos))
            elif kind == "name":
                toks.append(_Tok("kw" if raw in _KEYWORDS else "name", raw, pos))
            pos = m.end()
        toks.append(_Tok("end", None, len(text)))
        return toks

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def at(self, kind: str, value: Any = None) -> bool:
        t = self.peek()
        return t.kind == kind and (value is None or t.value == value)

    def run(self) -> tuple:
        if self.at("end"):
            raise self.fail("empty expression")
        tree = self.expr()
        if not self.at("end"):
            raise self.fail(f"unexpected {self.peek().value!r}")
        return tree

    def expr(self) -> tuple:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail("expression nested too deeply")
        node = self.and_()
        while self.at("kw", "or"):
            self.take()
            node = ("or", node, self.and_())
        self.depth -= 1
        return node

    def and_(self) -> tuple:
        node = self.not_()
        while self.at("kw", "and"):
            self.take()
            node = ("and", node, self.not_())
        return node

    def not_(self) -> tuple:
        if self.at("kw", "not"):
            self.take()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.fail("expression nested too deeply")
            node = ("not", self.not_())
            self.depth -= 1
            return node
        return self.compare()

    def compare(self) -> tuple:
        left = self.atom()
        t = self.peek()
        if t.kind == "op" and t.value in ("==", "!=", "<", "<=", ">", ">="):
            self.take()
            return ("cmp", t.value, left, self.atom())
        if t.kind == "kw" and t.value == "in":
            self.take()
            return ("cmp", "in", left, self.atom())
        if t.kind == "kw" and t.value == "not" and self.toks[self.i + 1].value == "in":
            self.take()
            self.take()
            return ("cmp", "not in", left, self.atom())
        return left

    def atom(self) -> tuple:
        t = self.peek()
        if t.kind == "end":
            raise self.fail("expected a value")
        self.take()
        if t.kind == "num":
            return ("lit", t.value)
        if t.kind == "str":
            parsed = parse_template(t.value)  # syntax-checked now, rendered at evaluation
            if any(isinstance(p, Ref) for p in parsed):
                return ("tmpl", t.value)
            return ("lit", "".join(p for p in parsed if isinstance(p, str)))
        if t.kind == "ref":
            return ("ref", t.value)
        if t.kind == "kw" and t.value in ("true", "false", "null"):
            return ("lit", {"true": True, "false": False, "null": None}[t.value])
        if t.kind == "name":
            root = t.value.split(".")[0]
            if root not in {"params", "event", "steps", "run", "runbook", "failure"}:
                raise self.fail(
                    f"unknown name {t.value!r} (names start with params., event., steps., "
                    "run., runbook. or failure.; quote strings)",
                    t.pos,
                )
            return ("ref", Ref.parse(t.value))
        if t.kind == "op" and t.value == "(":
            node = self.expr()
            if not self.at("op", ")"):
                raise self.fail("expected ')'")
            self.take()
            return node
        if t.kind == "op" and t.value == "[":
            items: list[tuple] = []
            while not self.at("op", "]"):
                items.append(self.expr())
                if self.at("op", ","):
                    self.take()
                elif not self.at("op", "]"):
                    raise self.fail("expected ',' or ']'")
            self.take()
            return ("list", items)
        raise self.fail(f"unexpected {t.value!r}", t.pos)


def _unquote(raw: str) -> str:
    body = raw[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt not in _ESCAPES:
                raise ExpressionError(f"bad escape \\{nxt} in {raw}")
            out.append(_ESCAPES[nxt])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _eval(node: tuple, ctx: Context) -> Any:
    tag = node[0]
    if tag == "lit":
        return node[1]
    if tag == "ref":
        return ctx.resolve(node[1])
    if tag == "tmpl":
        return render_str(node[1], ctx)
    if tag == "list":
        return [_eval(n, ctx) for n in node[1]]
    if tag == "not":
        return not truthy(_eval(node[1], ctx))
    if tag == "and":
        return truthy(_eval(node[1], ctx)) and truthy(_eval(node[2], ctx))
    if tag == "or":
        return truthy(_eval(node[1], ctx)) or truthy(_eval(node[2], ctx))
    if tag == "cmp":
        return _compare(node[1], _eval(node[2], ctx), _eval(node[3], ctx))
    raise ExpressionError(f"internal: unknown node {tag!r}")  # pragma: no cover


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError:
            return None
    return None


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        if isinstance(a, str) or isinstance(b, str):
            return str(a).lower() == str(b).lower()
        return a is b if isinstance(a, bool) and isinstance(b, bool) else False
    if isinstance(a, int | float) or isinstance(b, int | float):
        na, nb = _number(a), _number(b)
        return na is not None and na == nb
    return a == b


def _compare(op: str, a: Any, b: Any) -> bool:
    if op == "==":
        return _equal(a, b)
    if op == "!=":
        return not _equal(a, b)
    if op in ("in", "not in"):
        if isinstance(b, list | tuple):
            found = any(_equal(a, x) for x in b)
        elif isinstance(b, dict) or (isinstance(b, str) and isinstance(a, str)):
            found = a in b
        else:
            raise ExpressionError(f"cannot test {a!r} in {type(b).__name__} {b!r}")
        return found if op == "in" else not found
    na, nb = _number(a), _number(b)
    x: Any
    y: Any
    if isinstance(a, int | float) or isinstance(b, int | float):
        if na is None or nb is None:
            raise ExpressionError(f"cannot compare {a!r} {op} {b!r}: not numbers")
        x, y = na, nb
    elif isinstance(a, str) and isinstance(b, str):
        # two rendered values: numbers when both read as numbers ("10" > "9"), else text
        x, y = (na, nb) if na is not None and nb is not None else (a, b)
    else:
        raise ExpressionError(f"cannot compare {a!r} {op} {b!r}")
    return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]
