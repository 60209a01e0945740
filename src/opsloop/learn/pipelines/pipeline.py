"""Pipelines: steps wired into a DAG by naming which output feeds which input.

>>> from opsloop.learn.pipelines.step import step
>>> @step(inputs=(), outputs=("rows",))
... def load(n: int = 3) -> list[int]:
...     return list(range(n))
>>> @step
... def total(rows: list[int]) -> int:
...     return sum(rows)
>>> p = Pipeline("demo")
>>> _ = p.add(load, params={"n": 5})
>>> _ = p.add(total, inputs={"rows": "load.rows"})
>>> p.order()
['load', 'total']
>>> q = Pipeline("bad")
>>> _ = q.add(total, inputs={"rows": "lod"})
>>> try:
...     q.validate()
... except PipelineError as exc:
...     print(exc)
pipeline 'bad' is invalid:
  - step 'total' input 'rows' refers to unknown step 'lod'
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opsloop.learn.pipelines.step import StepSpec, step_spec


class PipelineError(ValueError):
    """The pipeline cannot run as declared; ``problems`` lists every reason found."""

    def __init__(self, pipeline: str, problems: Iterable[str]):
        self.pipeline = pipeline
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"pipeline {pipeline!r} is invalid:\n{lines}")


@dataclass(frozen=True)
class InputRef:
    """``step.output`` (or just ``step`` when that step has a single output)."""

    step: str
    output: str | None = None

    @classmethod
    def parse(cls, text: str) -> InputRef:
        """Split ``"step.output"``; a bare ``"step"`` leaves ``output`` unset."""
        name, _, output = text.partition(".")
        return cls(name, output or None)

    def __str__(self) -> str:
        return self.step if self.output is None else f"{self.step}.{self.output}"


@dataclass
class Node:
    """One step placed in a pipeline, with its wiring and per-node options."""

    name: str
    spec: StepSpec
    inputs: dict[str, InputRef] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    line: int | None = None

    def __getitem__(self, output: str) -> str:
        """``node["rows"]`` is the reference ``"<node>.rows"``, handy for ``inputs=``."""
        return f"{self.name}.{output}"

    def resolved_params(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Function defaults, then node params, then run-time overrides."""
        merged = {k: v for k, v in self.spec.defaults.items() if k in self.spec.params}
        merged.update(self.params)
        merged.update(overrides or {})
        return merged

    @property
    def upstream(self) -> set[str]:
        """Names of the steps this node reads from."""
        return {ref.step for ref in self.inputs.values()}

    def where(self) -> str:
        """``step 'x'`` plus the YAML line when known."""
        return f"step {self.name!r}" + (f" (line {self.line})" if self.line else "")


class Pipeline:
    """A named DAG of :class:`Node` objects, validated before it runs."""

    def __init__(self, name: str):
        if not name:
            raise PipelineError("?", ["a pipeline needs a name"])
        self.name = name
        self.nodes: dict[str, Node] = {}

    def add(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        inputs: Mapping[str, str | Node] | None = None,
        params: Mapping[str, Any] | None = None,
        line: int | None = None,
        **options: Any,
    ) -> Node:
        """Place a step; ``options`` override its ``retry``/``timeout``/``cache`` settings.

        Name clashes and bindings that do not match the function's signature fail here;
        references between steps are checked by :meth:`validate`, so steps can be added
        in any order.
        """
        spec = step_spec(func)
        if options:
            spec = spec.with_options(**options)
        node_name = name or spec.name
        where = f"step {node_name!r}" + (f" (line {line})" if line else "")
        if node_name in self.nodes:
            raise PipelineError(self.name, [f"duplicate step name {node_name!r}"])
        if "." in node_name or not node_name:
            raise PipelineError(self.name, [f"{where}: names cannot be empty or contain '.'"])
        refs: dict[str, InputRef] = {}
        problems: list[str] = []
        for arg, ref in (inputs or {}).items():
            if arg not in spec.inputs:
                problems.append(
                    f"{where}: {arg!r} is not a declared input (inputs: {list(spec.inputs)})"
                )
            refs[arg] = InputRef(ref.name) if isinstance(ref, Node) else InputRef.parse(ref)
        for key in params or {}:
            if key not in spec.params and not spec.accepts_kwargs:
                hint = " (it is an input: wire it with inputs=)" if key in spec.inputs else ""
                problems.append(
                    f"{where}: unknown param {key!r}{hint} (params: {list(spec.params)})"
                )
        if problems:
            raise PipelineError(self.name, problems)
        node = Node(node_name, spec, refs, dict(params or {}), line)
        self.nodes[node_name] = node
        return node

    def downstream(self, name: str) -> list[str]:
        """Every step that depends on ``name``, directly or not, in pipeline order."""
        found: set[str] = set()
        frontier = [name]
        while frontier:
            current = frontier.pop()
            for node in self.nodes.values():
                if current in node.upstream and node.name not in found:
                    found.add(node.name)
                    frontier.append(node.name)
        return [n for n in self.nodes if n in found]

    def output_name(self, ref: InputRef) -> str:
        """The concrete output a reference points at (after validation)."""
        if ref.output is not None:
            return ref.output
        return self.nodes[ref.step].spec.outputs[0]

    def _check_refs(self) -> list[str]:
        problems: list[str] = []
        for node in self.nodes.values():
            for arg in node.spec.inputs:
                if arg not in node.inputs:
                    problems.append(f"{node.where()}: input {arg!r} is not connected")
            for param in node.spec.params:
                if param not in node.spec.defaults and param not in node.params:
                    problems.append(f"{node.where()}: param {param!r} has no value")
            for arg, ref in node.inputs.items():
                target = self.nodes.get(ref.step)
                if target is None:
                    close = difflib.get_close_matches(ref.step, list(self.nodes), n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    problems.append(
                        f"{node.where()} input {arg!r} refers to unknown step {ref.step!r}{hint}"
                    )
                elif ref.output is None and len(target.spec.outputs) != 1:
                    problems.append(
                        f"{node.where()} input {arg!r}: step {ref.step!r} has outputs "
                        f"{list(target.spec.outputs)}; name one as '{ref.step}.<output>'"
                    )
                elif ref.output is not None and ref.output not in target.spec.outputs:
                    problems.append(
                        f"{node.where()} input {arg!r}: step {ref.step!r} has no output "
                        f"{ref.output!r} (outputs: {list(target.spec.outputs)})"
                    )
        return problems

    def _find_cycle(self, remaining: set[str]) -> list[str]:
        # Every remaining node has an upstream in `remaining`: walk back until a repeat.
        path: list[str] = []
        current = min(remaining, key=list(self.nodes).index)
        while current not in path:
            path.append(current)
            current = next(
                n for n in self.nodes if n in remaining and n in self.nodes[current].upstream
            )
        cycle = [*path[path.index(current) :], current]
        return list(reversed(cycle))

    def order(self) -> list[str]:
        """Validate and return a topological order (stable: insertion order breaks ties)."""
        if not self.nodes:
            raise PipelineError(self.name, ["the pipeline has no steps"])
        problems = self._check_refs()
        if problems:
            raise PipelineError(self.name, problems)
        done: list[str] = []
        remaining = set(self.nodes)
        while remaining:
            ready = [
                n for n in self.nodes if n in remaining and not (self.nodes[n].upstream & remaining)
            ]
            if not ready:
                cycle = " -> ".join(self._find_cycle(remaining))
                raise PipelineError(self.name, [f"cycle between steps: {cycle}"])
            done.extend(ready)
            remaining.difference_update(ready)
        return done

    def validate(self) -> None:
        """Raise :class:`PipelineError` listing every problem found, if any."""
        self.order()
