"""Run the tabular example with the Runner API: ``python -m examples.tabular.run``.

Uses the same layout as the platform (artifacts and step cache under
``<home>/pipelines``, MLflow at the home's store or ``OPSLOOP_MLFLOW_URI``), so runs made
here and with ``opsloop pipelines run`` share the cache and the model registry.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PIPELINE = Path(__file__).with_name("pipeline.yaml")


def build_runner(home: Path, mlflow_uri: str | None = None, cache: bool = True) -> Any:
    """A runner with a local artifact store, a step cache and the MLflow tracker."""
    from opsloop.learn.mlflow_env import MlflowEnv
    from opsloop.learn.mlflow_tracker import MlflowTracker
    from opsloop.learn.pipelines import LocalArtifactStore, LocalStepCache, Runner

    root = home / "pipelines"
    return Runner(
        LocalArtifactStore(root / "artifacts"),
        cache=LocalStepCache(root / "cache") if cache else None,
        tracker=MlflowTracker(MlflowEnv(home, mlflow_uri)),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the pipeline once, print a summary; exit status 1 on failure."""
    from opsloop.config import load_settings
    from opsloop.learn.pipelines import load_pipeline

    parser = argparse.ArgumentParser(prog="python -m examples.tabular.run", description=__doc__)
    parser.add_argument(
        "--home", type=Path, help="opsloop home (default: OPSLOOP_HOME or .opsloop)"
    )
    parser.add_argument("--trials", type=int, help="override train.n_trials")
    parser.add_argument("--no-cache", action="store_true", help="re-run every step")
    args = parser.parse_args(argv)

    settings = load_settings(home=args.home)
    runner = build_runner(settings.home, settings.mlflow_uri, cache=not args.no_cache)
    params = {"train": {"n_trials": args.trials}} if args.trials else None
    started = time.perf_counter()
    record = runner.run(load_pipeline(PIPELINE), params=params)
    elapsed = time.perf_counter() - started
    print(f"run {record.id}: {record.status.value} in {elapsed:.1f}s")
    for name, info in record.steps.items():
        line = f"  {name:<10} {info.status.value}"
        if info.error:
            line += f"  {info.error.splitlines()[0]}"
        print(line)
    if record.status.value != "succeeded":
        return 1
    print("metrics:", runner.output(record, "evaluate"))
    registered = runner.output(record, "register")
    print(f"model: {registered['model_uri']} (run {registered['run_id']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
