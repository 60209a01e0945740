"""``opsloop simulate``: a small, realistic estate that feeds a running opsloop, with faults.

An edge like ``observe``: it talks to opsloop only through its public interfaces (HTTP API with a
bearer token, the syslog listener, a scrapeable exposition page). One file per concept:

* :mod:`~opsloop.simulate.signals`: the records emitted (log events, samples, model requests);
* :mod:`~opsloop.simulate.loglines`: realistic log line templates;
* :mod:`~opsloop.simulate.churn`: the served model's customers, features and true outcomes;
* :mod:`~opsloop.simulate.estate`: hosts, services and their per-tick logs and metrics;
* :mod:`~opsloop.simulate.faults`: fault kinds and what they do;
* :mod:`~opsloop.simulate.scenario`: YAML scenario files;
* :mod:`~opsloop.simulate.clock`: accelerated time that never runs into the future;
* :mod:`~opsloop.simulate.exposition`: the Prometheus page;
* :mod:`~opsloop.simulate.senders`: HTTP, syslog and model traffic with retries;
* :mod:`~opsloop.simulate.runner`: :class:`Simulator` and the ground truth;
* :mod:`~opsloop.simulate.demo`: what ``opsloop up --demo`` needs.
"""

from opsloop.simulate.demo import DEMO_MODEL, DEMO_SYSLOG_PORT, demo_settings_overrides
from opsloop.simulate.faults import FAULT_KINDS, FaultSpec
from opsloop.simulate.runner import Simulator
from opsloop.simulate.scenario import Scenario, ScenarioError, load_scenario, parse_scenario

__all__ = [
    "DEMO_MODEL",
    "DEMO_SYSLOG_PORT",
    "FAULT_KINDS",
    "FaultSpec",
    "Scenario",
    "ScenarioError",
    "Simulator",
    "demo_settings_overrides",
    "load_scenario",
    "parse_scenario",
]
