"""The registered form of a log-session model: one JSON document, no pickles.

A package is what the ``detector-log-sessions`` pipeline registers (as the ``state.json``
artifact of an MLflow pyfunc model) and what the live engine loads. Besides the
:class:`~opsloop.detect.logs.count_rules.CountRuleModel` state it says which *event vocabulary*
the model speaks, because the engine must translate its own session events into it:

* ``template_ids``: events are the template ids of this opsloop home's miner (a model trained
  on stored telemetry). The engine resolves merged ids and passes them through.
* ``named``: events are names from a template table (``T1`` ... ``T19`` of the HDFS sessions
  CSV). With the table (``templates``: name -> template with ``<*>`` wildcards) the engine maps
  each live template to a name by matching one of its messages; without it the model cannot run
  live (only offline, e.g. through ``mlflow.pyfunc``).

Two models can be compared on the same evaluation set only if their :attr:`vocabulary` is equal.

>>> from opsloop.detect.logs.count_rules import CountRuleModel
>>> p = SessionModelPackage(CountRuleModel(), "named", {"T1": "open <*>"}, r"req-\\d+")
>>> q = SessionModelPackage.from_dict(p.to_dict())
>>> q.event_space, q.templates, q.vocabulary == p.vocabulary, q.live_ready
('named', {'T1': 'open <*>'}, True, True)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from opsloop.detect.logs.count_rules import CountRuleModel

__all__ = ["EVENT_SPACES", "FORMAT", "PackageError", "SessionModelPackage"]

FORMAT = "opsloop.log-sessions/1"
EVENT_SPACES = ("template_ids", "named")


class PackageError(ValueError):
    """A document that is not a log-session model package this version can read."""


@dataclass
class SessionModelPackage:
    """A session model plus the vocabulary and session definition it was trained on."""

    model: CountRuleModel
    event_space: str = "template_ids"
    templates: dict[str, str] | None = None
    session_key: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.event_space not in EVENT_SPACES:
            raise PackageError(
                f"event_space must be one of {EVENT_SPACES}, not {self.event_space!r}"
            )

    @property
    def vocabulary(self) -> str:
        """An id of the event vocabulary: equal ids mean the same events mean the same thing."""
        if self.event_space == "template_ids":
            return "template_ids"
        table = json.dumps(self.templates or {}, sort_keys=True)
        return "named:" + hashlib.sha256(table.encode()).hexdigest()[:16]

    @property
    def live_ready(self) -> bool:
        """Whether the live engine can translate its events into this model's vocabulary."""
        return self.event_space == "template_ids" or bool(self.templates)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (``info`` carries free-form provenance, e.g. training counts)."""
        return {
            "format": FORMAT,
            "event_space": self.event_space,
            "templates": self.templates,
            "session_key": self.session_key,
            "info": self.info,
            "model": self.model.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SessionModelPackage:
        """Inverse of :meth:`to_dict`; raises :class:`PackageError` on anything else."""
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            found = d.get("format") if isinstance(d, dict) else type(d).__name__
            raise PackageError(f"not a {FORMAT} document (format {found!r})")
        try:
            model = CountRuleModel.from_dict(d["model"])
            templates = d.get("templates")
            return cls(
                model=model,
                event_space=str(d["event_space"]),
                templates={str(k): str(v) for k, v in templates.items()} if templates else None,
                session_key=d.get("session_key"),
                info=dict(d.get("info") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PackageError(f"malformed {FORMAT} document: {exc}") from None
