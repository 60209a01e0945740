"""The built-in ``detector-log-sessions`` pipeline on the shared HDFS sessions, then live.

    .venv/bin/python benchmarks/detector_pipeline.py [--data CSV] [--templates CSV] [--home DIR]

In a fresh home (a temp dir unless ``--home``), with the embedded MLflow store:

1. four pipeline runs on the same data: unsupervised with ``support=0.99`` (a weaker setting,
   see ``benchmarks/results/log_anomaly.md``), the defaults (known anomalies of the training half
   left out: must beat it), the defaults again (identical: must not be promoted), and the
   unsupervised variant (``exclude_anomalous=False``, as ``benchmarks/hdfs.py`` trains). Each
   prints the registered
   version, its evaluation figures next to the champion's on the same held-out half (split by
   sha256 of BlockId, the split of ``benchmarks/hdfs.py``), the decision and the wall time;
2. live: that first, weaker version is made the ``challenger`` by hand (so the shadow has
   something to disagree on); a ``LogIngest`` with sessions keyed by block id gets the champion
   and the challenger in shadow through ``ChampionWatcher.check_now()``, without restart. The
   held-out sessions are
   replayed as raw log lines rendered from the template table (each ``<*>`` filled with a random
   value, one of them with the block id), so the engine must mine templates and map them back
   to ``T1`` ... ``T19`` itself. The live verdicts are compared with the pipeline's offline
   predictions on the same sessions, and the shadow counts printed.

Labels are read only by the pipeline's evaluation (and here to print figures); training never
sees the held-out half.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

DATA = Path("/work/shared/data/hdfs/hdfs_sessions.csv")
TEMPLATES = Path("/work/shared/data/hdfs/hdfs_templates.csv")
_BLOCK_BEFORE = ("block ", "for ", "to ")
BATCH_SESSIONS = 50


def render(template: str, blk: str, rng: random.Random) -> str:
    """A raw line of ``template``: the block id in the slot after 'block'/'for'/'to' (else the
    first), random numbers or addresses elsewhere."""
    pieces = template.split("<*>")
    slots = len(pieces) - 1
    where = next((i for i in range(slots) if pieces[i].endswith(_BLOCK_BEFORE)), 0)
    out = [pieces[0]]
    for i in range(slots):
        if i == where:
            value = blk
        elif rng.random() < 0.5:
            value = f"10.251.{rng.randrange(256)}.{rng.randrange(256)}:50010"
        else:
            value = str(rng.randrange(10**8))
        out += [value, pieces[i + 1]]
    return "".join(out)


def pipeline_runs(env, registry, data: Path, templates: Path) -> list:
    from opsloop.learn.detectors.log_sessions import run_log_sessions

    runs = []
    for label, params in [
        ("unsupervised, support 0.99", {"support": 0.99, "exclude_anomalous": False}),
        ("defaults", {}),
        ("defaults again", {}),
        ("unsupervised", {"exclude_anomalous": False}),
    ]:
        run = run_log_sessions(
            env, path=data, templates_path=templates, registry=registry, model_params=params
        )
        if not run.ok:
            raise SystemExit(f"pipeline failed: {run.error}")
        runs.append((label, run))
    print("| run | version | precision | recall | F1 | champion (F1) | decision | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for label, run in runs:
        new, old = run.report["challenger"], run.report["champion"]
        champion = "-" if old is None else f"v{old['version']} ({old['f1']:.4f})"
        print(
            f"| {label} | v{run.version} | {new['precision']:.4f} | {new['recall']:.4f} | "
            f"{new['f1']:.4f} | {champion} | {run.alias}: {run.reason} | {run.seconds:.2f} |"
        )
    first = runs[0][1].report["challenger"]
    print(f"evaluated on {first['n']} held-out sessions ({first['anomalous']} anomalous)")
    return runs


def live(env, registry, data: Path, templates: Path, home: Path) -> None:
    from opsloop.detect.logs.hdfs_format import is_test_block
    from opsloop.detect.logs.sessions import HDFS_BLOCK
    from opsloop.learn.detectors.log_sessions import MODEL_NAME
    from opsloop.learn.detectors.mlflow_io import load_package
    from opsloop.learn.detectors.session_data import read_sessions_csv, read_templates_csv
    from opsloop.observe.record import RawLine
    from opsloop.services.detector_models import ChampionWatcher
    from opsloop.services.log_ingest import LogIngest
    from opsloop.store.telemetry import TelemetryStore
    from opsloop.store.telemetry.logs import LogTable

    table = read_templates_csv(templates)
    held = [s for s in read_sessions_csv(data) if is_test_block(s[0])]
    store = TelemetryStore(home / "telemetry.duckdb")
    ingest = LogIngest(LogTable(store), None, "raw", session_key=HDFS_BLOCK, session_idle_s=5.0)
    alarms: dict[str, float] = {}
    ingest.on_anomalies = lambda found: alarms.update(
        {a.key: a.score for a in found if a.kind == "session"}
    )
    watcher = ChampionWatcher(registry, ingest)
    t0 = time.perf_counter()
    aliases = watcher.check_now()
    swap = time.perf_counter() - t0
    print(f"\nlive: aliases {aliases}; engine now on version {ingest.session_model_version} "
          f"(check + load + swap {swap * 1000:.0f} ms, no restart)")  # fmt: skip
    champion = load_package(env, MODEL_NAME, aliases["champion"]).model
    rng = random.Random(1)
    t, lines, batch = 1_000_000.0, 0, []
    started = time.perf_counter()
    for i, (blk, events, _label) in enumerate(held):
        batch += [RawLine(render(table[e], blk, rng), "hdfs", t, timestamp=t + k * 0.001)
                  for k, e in enumerate(events)]  # fmt: skip
        t += 10.0
        if i % BATCH_SESSIONS == BATCH_SESSIONS - 1 or i == len(held) - 1:
            ingest.ingest(batch)  # one durable commit per batch, as a log shipper sends them
            lines += len(batch)
            batch = []
    ingest.tick(now=t + 100)
    seconds = time.perf_counter() - started
    offline = {blk for blk, events, _ in held if champion.predict_one(events)}
    agree = sum(1 for blk, _e, _l in held if (blk in alarms) == (blk in offline))
    tp = sum(1 for blk, _e, y in held if y and blk in alarms)
    fp = sum(1 for blk, _e, y in held if not y and blk in alarms)
    anomalous = sum(1 for _b, _e, y in held if y)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / anomalous if anomalous else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    print(f"replayed {len(held)} held-out sessions as {lines} raw lines in {seconds:.1f} s "
          f"({lines / seconds:,.0f} lines/s incl. mining, storage, sessions, shadow)")  # fmt: skip
    print(f"live templates mined: {len(ingest.templates())} (table: {len(table)})")
    print(f"live session alarms: {len(alarms)}; offline predictions of the same version: "
          f"{len(offline)}; same verdict on {agree}/{len(held)} sessions")  # fmt: skip
    print(f"live precision={p:.4f} recall={r:.4f} f1={f1:.4f}")
    shadow = ingest.shadow_stats()
    keys = ("champion_version", "challenger_version", "sessions", "champion_alarms",
            "challenger_alarms", "both", "only_champion", "only_challenger")  # fmt: skip
    print("shadow: " + ", ".join(f"{k}={shadow[k]}" for k in keys)
          + f", agreement={shadow['agreement']}")  # fmt: skip
    store.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--templates", type=Path, default=TEMPLATES)
    ap.add_argument("--home", type=Path, help="opsloop home to use (default: a temp dir)")
    args = ap.parse_args(argv)
    if not args.data.exists():
        print(f"no data at {args.data}", file=sys.stderr)
        return 2
    home = args.home or Path(tempfile.mkdtemp(prefix="opsloop-detector-"))
    home.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    from opsloop.learn.mlflow_env import MlflowEnv
    from opsloop.learn.registry import ModelRegistry

    env = MlflowEnv(home)
    env.ensure()
    registry = ModelRegistry(env)
    print(f"home {home}; MLflow store {env.tracking_uri}")
    runs = pipeline_runs(env, registry, args.data, args.templates)
    from opsloop.learn.detectors.log_sessions import MODEL_NAME

    registry.promote(MODEL_NAME, runs[0][1].version, "challenger", actor="benchmark",
                     reason="shadow the weaker first version against the champion")  # fmt: skip
    live(env, registry, args.data, args.templates, home)
    print(f"\ntotal {time.perf_counter() - started:.1f} s (incl. MLflow store creation)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
