"""Translate the live engine's session events into a registered model's event vocabulary.

The live engine records a session as the template ids its miner assigned at ingest. A model
trained on stored telemetry (``template_ids`` vocabulary) needs those ids resolved through the
miner's merges; a model trained on a named template table (``named``, e.g. the HDFS ``T1`` ...
``T19``) needs each live template mapped to a name. That mapping matches one message of the live
template (the first one the engine kept) against the table's templates, ``<*>`` matching any
text, the most specific template (most literal characters) winning. It is computed once per live
template id and cached. It is exact when the miner groups lines like the table does (grouping
accuracy 1.000 on Loghub HDFS); a live template that mixes two named ones gets the name of its
sample. A template no name matches becomes ``unmapped:<id>``, which the model treats as an event
never seen in training.

>>> from opsloop.detect.logs.count_rules import CountRuleModel
>>> from opsloop.learn.detectors.package import SessionModelPackage
>>> table = {"T1": "open <*>", "T2": "close <*> after <*> ms"}
>>> m = EventMap(SessionModelPackage(CountRuleModel(), "named", table))
>>> samples = {"4": "open file a.txt", "9": "close  a.txt after 3 ms", "7": "panic"}
>>> m.events(["4", "9", "7"], resolve=int, sample=samples.get)
['T1', 'T2', 'unmapped:7']
>>> merged = {5: 2}
>>> EventMap(SessionModelPackage(CountRuleModel())).events(
...     ["3", "5"], lambda i: merged.get(i, i), samples.get)
['3', '2']
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from opsloop.learn.detectors.package import SessionModelPackage

__all__ = ["UNMAPPED", "EventMap", "TemplateTable"]

UNMAPPED = "unmapped:"
_WS = re.compile(r"\s+")


def _norm(text: str) -> str:
    return _WS.sub(" ", text).strip()


class TemplateTable:
    """Named templates with ``<*>`` wildcards, matched against concrete messages.

    >>> TemplateTable({"A": "x <*>", "B": "x y <*>"}).name_of("x y 3")
    'B'
    """

    def __init__(self, templates: Mapping[str, str]) -> None:
        compiled = []
        for name, template in templates.items():
            pieces = _norm(template).split("<*>")
            regex = re.compile("(?:.*?)".join(re.escape(p) for p in pieces), re.S)
            compiled.append((-sum(len(p.strip()) for p in pieces), name, regex))
        compiled.sort(key=lambda c: (c[0], c[1]))
        self._compiled = [(name, regex) for _, name, regex in compiled]

    def name_of(self, message: str) -> str | None:
        """The most specific template matching the whole ``message``, or ``None``."""
        text = _norm(message)
        for name, regex in self._compiled:
            if regex.fullmatch(text):
                return name
        return None


class EventMap:
    """Maps session events (template ids as ingested) into one package's vocabulary."""

    def __init__(self, package: SessionModelPackage) -> None:
        self.space = package.event_space
        self.table = TemplateTable(package.templates or {}) if self.space == "named" else None
        self._names: dict[str, str] = {}

    def events(
        self,
        ids: Sequence[str],
        resolve: Callable[[int], int],
        sample: Callable[[str], str | None],
    ) -> list[str]:
        """The session ``ids`` in the model's vocabulary.

        ``resolve`` maps a template id to the id it was merged into (the miner's ``resolve``);
        ``sample`` gives one message of a template id as ingested (``None`` if unknown).
        """
        if self.table is None:
            return [str(resolve(int(i))) if i.isdigit() else i for i in ids]
        return [self._name(i, sample) for i in ids]

    def _name(self, tid: str, sample: Callable[[str], str | None]) -> str:
        name = self._names.get(tid)
        if name is not None:
            return name
        message = sample(tid)
        assert self.table is not None
        found = self.table.name_of(message) if message is not None else None
        name = found or UNMAPPED + tid
        if message is not None:  # without a sample, try again when one is known
            self._names[tid] = name
        return name
