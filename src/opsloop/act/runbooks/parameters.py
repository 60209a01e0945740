"""Typed runbook parameters: ``string``, ``int``, ``float``, ``bool``, ``path``.

A parameter's value comes from the caller (a manual run) or from ``default`` - which may be a
template over the trigger event, e.g. ``default: "${event.labels.mountpoint}"``. Either way it is
coerced and checked here before any step sees it:

* ``choices`` - the value must be one of them;
* ``pattern`` (string, path) - a regular expression the whole value must match;
* ``min`` / ``max`` (int, float);
* ``path`` values must be absolute, without ``..`` segments, NUL or newlines, and - with
  ``under: [/var/log, /tmp]`` - equal to or inside one of those directories. (Symbolic links are
  not resolved; point ``under`` at directories whose links you trust.)

>>> Parameter(type="int", min=1).coerce("days", "7")
7
>>> Parameter(type="path", under=["/var/log"]).coerce("dir", "/var/log/../../etc")
Traceback (most recent call last):
...
opsloop.act.runbooks.parameters.ParameterError: parameter 'dir': '..' is not allowed in a path
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

__all__ = ["Parameter", "ParameterError", "ParameterType"]

ParameterType = Literal["string", "int", "float", "bool", "path"]
_INT = re.compile(r"\s*[-+]?\d+\s*")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class ParameterError(ValueError):
    """A parameter value of the wrong type, or outside its constraints."""


class Parameter(BaseModel):
    """One entry of ``parameters:``."""

    model_config = ConfigDict(extra="forbid")

    type: ParameterType = "string"
    description: str = ""
    default: Any = None
    required: bool = False
    choices: list[Any] | None = None
    pattern: str | None = None
    under: list[str] | None = None
    min: float | None = None
    max: float | None = None

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as e:
                raise ValueError(f"bad regular expression {v!r}: {e}") from e
        return v

    @field_validator("under")
    @classmethod
    def _under_absolute(cls, v: list[str] | None) -> list[str] | None:
        for d in v or []:
            if not d.startswith("/") or ".." in d.split("/"):
                raise ValueError(f"'under' directories must be absolute without '..': {d!r}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Parameter:
        if self.under is not None and self.type != "path":
            raise ValueError("'under' applies to type: path only")
        if self.pattern is not None and self.type not in ("string", "path"):
            raise ValueError("'pattern' applies to type: string or path only")
        if (self.min is not None or self.max is not None) and self.type not in ("int", "float"):
            raise ValueError("'min'/'max' apply to type: int or float only")
        if self.choices is not None:
            try:
                self.choices = [self.coerce("", c, check_choices=False) for c in self.choices]
            except ParameterError as e:
                raise ValueError(f"choices: {e}") from None
        if self.required and self.default is not None:
            raise ValueError("a parameter with a default is not 'required'")
        is_template = isinstance(self.default, str) and "${" in self.default
        if self.default is not None and not is_template:
            try:
                self.default = self.coerce("", self.default)
            except ParameterError as e:
                raise ValueError(f"default: {e}") from None
        return self

    def coerce(self, name: str, value: Any, *, check_choices: bool = True) -> Any:
        """``value`` converted to this parameter's type and checked; :class:`ParameterError`."""

        def fail(msg: str) -> ParameterError:
            return ParameterError(f"parameter {name!r}: {msg}" if name else msg)

        t = self.type
        out: Any
        if t == "bool":
            if isinstance(value, bool):
                out = value
            elif isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
                out = value.strip().lower() in _TRUE
            else:
                raise fail(f"expected true or false, got {value!r}")
        elif t == "int":
            if isinstance(value, bool):
                raise fail(f"expected an integer, got {value!r}")
            if isinstance(value, int):
                out = value
            elif _integral(value):
                out = int(value)
            else:
                raise fail(f"expected an integer, got {value!r}")
        elif t == "float":
            if isinstance(value, bool):
                raise fail(f"expected a number, got {value!r}")
            try:
                out = float(value)
            except (TypeError, ValueError):
                raise fail(f"expected a number, got {value!r}") from None
            if not math.isfinite(out):
                raise fail(f"expected a finite number, got {value!r}")
        else:
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise fail(f"expected a string, got {value!r}")
            out = str(value)
            if "\x00" in out:
                raise fail("NUL characters are not allowed")
            if t == "path":
                out = self._check_path(out, fail)
            if self.pattern is not None and not re.fullmatch(self.pattern, out):
                raise fail(f"{out!r} does not match the pattern {self.pattern!r}")
        if t in ("int", "float"):
            if self.min is not None and out < self.min:
                raise fail(f"{out} is below the minimum {self.min:g}")
            if self.max is not None and out > self.max:
                raise fail(f"{out} is above the maximum {self.max:g}")
        if check_choices and self.choices is not None and out not in self.choices:
            raise fail(f"{out!r} is not one of {self.choices!r}")
        return out

    def _check_path(self, p: str, fail: Any) -> str:
        if "\n" in p or "\r" in p:
            raise fail("newlines are not allowed in a path")
        if not p.startswith("/"):
            raise fail(f"{p!r} is not an absolute path")
        if ".." in p.split("/"):
            raise fail("'..' is not allowed in a path")
        norm = re.sub(r"/+", "/", p)
        if len(norm) > 1:
            norm = norm.rstrip("/")
        if self.under is not None:
            roots = [re.sub(r"/+", "/", d).rstrip("/") or "/" for d in self.under]
            inside = any(
                norm == r or norm.startswith(r if r.endswith("/") else r + "/") for r in roots
            )
            if not inside:
                raise fail(f"{p!r} is not under {', '.join(self.under)}")
        return norm


def _integral(value: Any) -> bool:
    """A float without a fraction, or a string of digits."""
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, str) and _INT.fullmatch(value) is not None
