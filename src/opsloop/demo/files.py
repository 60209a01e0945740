"""The demo's files in the home: two runbooks and the churn model's pipeline.

Written only when missing, so an operator can edit them between demo runs.

* ``runbooks/demo-disk-cleanup.yaml`` — preventive: when opsloop forecasts that a disk surely
  fills up soon (an ``exhaustion_forecast`` of severity ``error`` on a ``host_disk*`` series:
  the forecast's interval ends within a quarter of the horizon), clean up before it does
  (here: a harmless command that says what a real one would do; a mere "possible within the
  week" must not spend the cooldown that an imminent fill then needs); cooldown per series,
  several disks at once (a memory forecast on another host in the same batch must not take
  its only slot);
* ``runbooks/demo-retrain-churn.yaml`` — when the churn model drifts (``model_drift``), run its
  training pipeline on recent (drifted) customers; the new version becomes ``challenger``;
* ``runbooks/demo-web-diagnostics.yaml``, ``runbooks/demo-batch-restart.yaml`` — routine
  reactions to anomalies on web1 and batch1 (harmless commands saying what they stand for);
* ``pipelines/demo-churn.yaml`` — the churn model's pipeline (:mod:`opsloop.demo.churn_steps`).
"""

from __future__ import annotations

from pathlib import Path

DISK_CLEANUP = """\
name: demo-disk-cleanup
description: Preventive - free disk space before a forecast exhaustion (demo).
triggers:
  - anomaly: {kind: exhaustion_forecast, matchers: '{metric=~"host_disk.*", severity="error"}'}
policies: {cooldown_s: 30, max_concurrent: 4, timeout_s: 60}
steps:
  - id: cleanup
    shell:
      argv: [echo, "demo clean-up: compressed and rotated logs older than 7 days"]
      timeout_s: 10
"""

RETRAIN = """\
name: demo-retrain-churn
description: Retrain the churn model on recent customers when its inputs drift (demo).
triggers:
  - anomaly: {kind: model_drift}
policies: {cooldown_s: 5, max_concurrent: 2, timeout_s: 600}
steps:
  - id: retrain
    pipeline: {name: demo-churn, params: {customers: {shift_sigma: 3.0, seed: 1}}}
"""

WEB_DIAGNOSTICS = """\
name: demo-web-diagnostics
description: Collect diagnostics when web1 misbehaves (demo).
triggers:
  - anomaly: {matchers: '{host="web1"}'}
policies: {cooldown_s: 2, timeout_s: 30}
steps:
  - id: collect
    shell:
      argv: [echo, "demo diagnostics: thread dump, top and the last errors of web1 collected"]
      timeout_s: 10
"""

BATCH_RESTART = """\
name: demo-batch-restart
description: Restart the batch agent when batch1 goes quiet or misbehaves (demo).
triggers:
  - anomaly: {matchers: '{host="batch1"}'}
policies: {cooldown_s: 5, timeout_s: 30}
steps:
  - id: restart
    shell:
      argv: [echo, "demo restart: batch agent on batch1 restarted"]
      timeout_s: 10
"""

PIPELINE = """\
name: demo-churn
description: The demo's churn model - customers, train, register (with reference profile).
steps:
  - uses: opsloop.demo.churn_steps:customers
  - uses: opsloop.demo.churn_steps:train
    inputs: {table: customers}
  - uses: opsloop.demo.churn_steps:register
    inputs: {model: train.model, metrics: train.metrics, table: customers}
"""

FILES = {
    "runbooks/demo-disk-cleanup.yaml": DISK_CLEANUP,
    "runbooks/demo-retrain-churn.yaml": RETRAIN,
    "runbooks/demo-web-diagnostics.yaml": WEB_DIAGNOSTICS,
    "runbooks/demo-batch-restart.yaml": BATCH_RESTART,
    "pipelines/demo-churn.yaml": PIPELINE,
}


def install_demo_files(home: Path) -> list[Path]:
    """Write the demo's files that are missing; return those written."""
    written = []
    for rel, text in FILES.items():
        path = home / rel
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
