"""Steps: plain Python functions with declared inputs, outputs, and a code hash.

A step is an ordinary function marked with :func:`step`. The decorator does not wrap
the function; it attaches a :class:`StepSpec` under ``__opsloop_step__`` and returns the
function itself, so it stays callable, testable and picklable by reference (a process
pool can ship it to another interpreter).

>>> @step(outputs=("total",))
... def add(a: int, b: int, scale: int = 1) -> int:
...     return (a + b) * scale
>>> spec = step_spec(add)
>>> spec.inputs, spec.params, spec.outputs
(('a', 'b'), ('scale',), ('total',))
>>> add(1, 2)
3
>>> len(spec.code_hash)
64
"""

from __future__ import annotations

import hashlib
import inspect
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

SPEC_ATTR = "__opsloop_step__"
DEFAULT_OUTPUT = "output"


class StepDefinitionError(ValueError):
    """A step is declared inconsistently with its function signature."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failing step is retried.

    The delay before retry ``n`` (1-based) is ``backoff * factor ** (n - 1)``, capped at
    ``max_backoff``. No jitter: runs stay reproducible.

    >>> [RetryPolicy(retries=4, backoff=1.0, factor=2.0, max_backoff=5.0).delay(n)
    ...  for n in (1, 2, 3, 4)]
    [1.0, 2.0, 4.0, 5.0]
    """

    retries: int = 0
    backoff: float = 1.0
    factor: float = 2.0
    max_backoff: float = 60.0
    retry_on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise StepDefinitionError(f"retries must be >= 0, got {self.retries}")
        if self.backoff < 0 or self.factor < 1 or self.max_backoff < 0:
            raise StepDefinitionError("backoff and max_backoff must be >= 0 and factor >= 1")

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 = first retry)."""
        return min(self.backoff * self.factor ** max(retry - 1, 0), self.max_backoff)

    def should_retry(self, error: BaseException | None, attempt: int) -> bool:
        """Whether attempt ``attempt`` (1-based) that failed with ``error`` gets another go.

        ``error`` is ``None`` when the exception could not be transported back (it is then
        treated as retryable).
        """
        if attempt > self.retries:
            return False
        return error is None or isinstance(error, self.retry_on)


@dataclass(frozen=True)
class StepSpec:
    """Everything the pipeline needs to know about one step function."""

    func: Callable[..., Any]
    name: str
    inputs: tuple[str, ...]
    params: tuple[str, ...]
    outputs: tuple[str, ...]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float | None = None
    cache: bool = True
    code_hash: str = ""
    accepts_kwargs: bool = False

    @property
    def ref(self) -> str:
        """``module:qualname`` of the function (what a YAML spec would write)."""
        return f"{self.func.__module__}:{self.func.__qualname__}"

    def with_options(self, **changes: Any) -> StepSpec:
        """A copy with some options changed (used by per-node overrides)."""
        return replace(self, **changes)


def code_hash(func: Callable[..., Any], version: str | None = None) -> str:
    """SHA-256 of the function's source (dedented), qualified name and optional version.

    Falls back to the bytecode and constants when the source is unavailable (e.g. in a
    REPL). Editing the function body, even whitespace inside it, changes the hash; bump
    ``version`` to invalidate the cache when a *helper* the step calls has changed.
    """
    try:
        body = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        code = getattr(func, "__code__", None)
        body = repr((code.co_code, code.co_consts)) if code is not None else repr(func)
    digest = hashlib.sha256()
    for part in (func.__module__, func.__qualname__, version or "", body):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _split_signature(
    func: Callable[..., Any], inputs: Sequence[str] | None, name: str
) -> tuple[tuple[str, ...], tuple[str, ...], dict[str, Any], bool]:
    sig = inspect.signature(func)
    names: list[str] = []
    defaults: dict[str, Any] = {}
    accepts_kwargs = False
    for param in sig.parameters.values():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            accepts_kwargs = True
            continue
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY):
            raise StepDefinitionError(
                f"step {name!r}: parameter {param.name!r} must be passable by keyword"
            )
        names.append(param.name)
        if param.default is not inspect.Parameter.empty:
            defaults[param.name] = param.default
    if inputs is None:
        declared = tuple(n for n in names if n not in defaults)
    else:
        declared = tuple(inputs)
        unknown = [n for n in declared if n not in names and not accepts_kwargs]
        if unknown:
            raise StepDefinitionError(
                f"step {name!r}: declared inputs {unknown} are not parameters of "
                f"{func.__qualname__}{sig}"
            )
        if len(set(declared)) != len(declared):
            raise StepDefinitionError(f"step {name!r}: duplicate input names {list(declared)}")
    params = tuple(n for n in names if n not in declared)
    return declared, params, defaults, accepts_kwargs


def make_spec(
    func: Callable[..., Any],
    *,
    name: str | None = None,
    inputs: Sequence[str] | None = None,
    outputs: Sequence[str] = (DEFAULT_OUTPUT,),
    retries: int = 0,
    backoff: float = 1.0,
    backoff_factor: float = 2.0,
    max_backoff: float = 60.0,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    timeout: float | None = None,
    cache: bool = True,
    version: str | None = None,
) -> StepSpec:
    """Build a :class:`StepSpec` for ``func`` (what :func:`step` does, without marking)."""
    step_name = name or func.__name__
    if isinstance(outputs, str):
        outputs = (outputs,)
    outs = tuple(outputs)
    if len(set(outs)) != len(outs):
        raise StepDefinitionError(f"step {step_name!r}: duplicate output names {list(outs)}")
    for out in outs:
        if not out.isidentifier():
            raise StepDefinitionError(
                f"step {step_name!r}: output name {out!r} is not an identifier"
            )
    if timeout is not None and timeout <= 0:
        raise StepDefinitionError(f"step {step_name!r}: timeout must be > 0, got {timeout}")
    declared, params, defaults, accepts_kwargs = _split_signature(func, inputs, step_name)
    return StepSpec(
        func=func,
        name=step_name,
        inputs=declared,
        params=params,
        outputs=outs,
        defaults=defaults,
        retry=RetryPolicy(retries, backoff, backoff_factor, max_backoff, tuple(retry_on)),
        timeout=timeout,
        cache=cache,
        code_hash=code_hash(func, version),
        accepts_kwargs=accepts_kwargs,
    )


def step(
    func: F | None = None,
    *,
    name: str | None = None,
    inputs: Sequence[str] | None = None,
    outputs: Sequence[str] = (DEFAULT_OUTPUT,),
    retries: int = 0,
    backoff: float = 1.0,
    backoff_factor: float = 2.0,
    max_backoff: float = 60.0,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    timeout: float | None = None,
    cache: bool = True,
    version: str | None = None,
) -> Any:
    """Mark a function as a pipeline step; usable bare (``@step``) or with options.

    * ``inputs``: parameters fed from upstream artifacts. By default, the parameters
      without a default value; every other parameter is a *param* (configuration that
      enters the cache key).
    * ``outputs``: names of the artifacts produced. With one output the return value *is*
      the artifact; with several, return a mapping with exactly those keys or a
      tuple in that order; with none (``outputs=()``) the return value is discarded.
    * ``retries``/``backoff``/``backoff_factor``/``max_backoff``/``retry_on``: see
      :class:`RetryPolicy`. ``timeout``: seconds per attempt.
    * ``cache=False`` always re-runs; ``version`` is mixed into the code hash.
    """

    def mark(f: F) -> F:
        spec = make_spec(
            f,
            name=name,
            inputs=inputs,
            outputs=outputs,
            retries=retries,
            backoff=backoff,
            backoff_factor=backoff_factor,
            max_backoff=max_backoff,
            retry_on=retry_on,
            timeout=timeout,
            cache=cache,
            version=version,
        )
        setattr(f, SPEC_ATTR, spec)
        return f

    if func is not None:
        return mark(func)
    return mark


def step_spec(func: Callable[..., Any]) -> StepSpec:
    """The spec of a ``@step`` function; plain functions get default options."""
    spec = getattr(func, SPEC_ATTR, None)
    if isinstance(spec, StepSpec):
        return spec
    if not callable(func):
        raise StepDefinitionError(f"{func!r} is not callable")
    return make_spec(func)
