"""Steps used by the pipeline service tests (importable as tests.learn.service_steps)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from opsloop.learn.pipelines import log_metric, step


@step(inputs=())
def numbers(n: int = 5) -> list[int]:
    time.sleep(0.3)
    return list(range(n))


@step
def total(rows: list[int], scale: int = 1) -> int:
    time.sleep(0.3)
    log_metric("total", sum(rows) * scale)
    return sum(rows) * scale


@step(retries=1, backoff=0.01, cache=False)
def flaky(value: int, marker: str = "") -> int:
    """Fails on its first attempt (a marker file remembers), succeeds on the second."""
    path = Path(marker)
    if marker and not path.exists():
        path.write_text("failed once")
        raise RuntimeError("transient failure")
    return value + 1


@step(inputs=())
def env_home() -> str:
    return os.environ.get("OPSLOOP_HOME", "")
