"""Data and training pipelines: ``@step`` functions composed into a cached, resumable DAG.

>>> import tempfile
>>> from opsloop.learn.pipelines import LocalArtifactStore, Pipeline, Runner, step
>>> @step(inputs=(), outputs=("rows",))
... def load(n: int = 4) -> list[int]:
...     return list(range(n))
>>> @step
... def total(rows: list[int]) -> int:
...     return sum(rows)
>>> p = Pipeline("demo")
>>> _ = p.add(load)
>>> _ = p.add(total, inputs={"rows": "load.rows"})
>>> runner = Runner(LocalArtifactStore(tempfile.mkdtemp()))
>>> record = runner.run(p)
>>> record.status.value, runner.output(record, "total")
('succeeded', 6)

See ``runner.py`` for the execution model and ``artifacts.py`` for plugging in codecs.
"""

from opsloop.learn.pipelines.artifacts import (
    ArtifactError,
    ArtifactRef,
    ArtifactStore,
    Codec,
    LocalArtifactStore,
    default_codecs,
)
from opsloop.learn.pipelines.cache import (
    CacheEntry,
    InMemoryStepCache,
    LocalStepCache,
    StepCache,
    cache_key,
)
from opsloop.learn.pipelines.executor import (
    Executor,
    PoolExecutor,
    StepContext,
    ThreadExecutor,
    current_step,
    log_metric,
)
from opsloop.learn.pipelines.pipeline import InputRef, Node, Pipeline, PipelineError
from opsloop.learn.pipelines.records import (
    InMemoryRunStore,
    LineageRecord,
    RunRecord,
    RunStatus,
    RunStore,
    StepRecord,
    StepStatus,
    lineage_of,
    mark_interrupted,
)
from opsloop.learn.pipelines.runner import ResumeError, Runner
from opsloop.learn.pipelines.step import (
    RetryPolicy,
    StepDefinitionError,
    StepSpec,
    code_hash,
    step,
    step_spec,
)
from opsloop.learn.pipelines.tracking import InMemoryTracker, NullTracker, RunTracker
from opsloop.learn.pipelines.yaml_spec import SpecError, load_pipeline, pipeline_from_dict

__all__ = [
    "ArtifactError",
    "ArtifactRef",
    "ArtifactStore",
    "CacheEntry",
    "Codec",
    "Executor",
    "InMemoryRunStore",
    "InMemoryStepCache",
    "InMemoryTracker",
    "InputRef",
    "LineageRecord",
    "LocalArtifactStore",
    "LocalStepCache",
    "Node",
    "NullTracker",
    "Pipeline",
    "PipelineError",
    "PoolExecutor",
    "ResumeError",
    "RetryPolicy",
    "RunRecord",
    "RunStatus",
    "RunStore",
    "RunTracker",
    "Runner",
    "SpecError",
    "StepCache",
    "StepContext",
    "StepDefinitionError",
    "StepRecord",
    "StepSpec",
    "StepStatus",
    "ThreadExecutor",
    "cache_key",
    "code_hash",
    "current_step",
    "default_codecs",
    "lineage_of",
    "load_pipeline",
    "log_metric",
    "mark_interrupted",
    "pipeline_from_dict",
    "step",
    "step_spec",
]
