"""What an opsloop started for the demo needs so that the simulator can reach it.

:func:`demo_settings_overrides` gives the settings sections (keys of
:class:`opsloop.config.Settings`) that ``opsloop up --demo`` should merge into its settings: a UDP
syslog listener on :data:`DEMO_SYSLOG_PORT` (db1's and batch1's logs arrive there) and no scrape
target, because the demo runs at accelerated time and *pushes* its metrics with simulated
timestamps. Pass ``exposition_port`` to get a scrape target instead, for a real-time run
(``speed 1``) whose metrics opsloop scrapes from the simulator's exposition page.

The model the demo scores is :data:`DEMO_MODEL`; it is not a setting: it must be registered (its
champion alias set) for the prediction traffic to be served. :func:`demo_model_training_data`
gives records and outcomes to train it on (``opsloop.simulate.churn.training_data``).
"""

from __future__ import annotations

from typing import Any

from opsloop.simulate.churn import training_data

DEMO_SCENARIO = "demo"
DEMO_MODEL = "churn"
DEMO_SYSLOG_PORT = 5514


def demo_settings_overrides(
    syslog_port: int = DEMO_SYSLOG_PORT, exposition_port: int | None = None
) -> dict[str, Any]:
    """Settings sections to merge into opsloop's for the demo.

    >>> demo_settings_overrides()
    {'logs': {'syslog_udp_port': 5514}, 'metrics': {'scrape': []}}
    """
    scrape: list[dict[str, Any]] = []
    if exposition_port is not None:
        scrape.append({
            "url": f"http://127.0.0.1:{exposition_port}/metrics",
            "name": "simulate",
            "interval_s": 10.0,
        })  # fmt: skip
    return {"logs": {"syslog_udp_port": syslog_port}, "metrics": {"scrape": scrape}}


def demo_model_training_data(
    n: int = 5000, seed: int = 0
) -> tuple[list[dict[str, Any]], list[int]]:
    """Undrifted customer records and their outcomes, to train the demo's churn model."""
    return training_data(n, seed)
