"""Which receivers get an incident: a routing tree, a simplified Alertmanager ``route``.

Each route has label ``matchers`` (``service="api"``, ``env!~"dev|test"``; all must hold), an
optional minimum ``severity``, a ``receiver`` (inherited from the parent when left out), a
``continue`` flag and child ``routes``. The root matches everything and must name a receiver.
Matchers are :mod:`opsloop.act.incidents.matchers`, the ones silences, inhibitions and runbook
triggers use: one syntax everywhere, as in Alertmanager.

Walking the tree for an incident: a route that matches tries its children in order; the first
matching child takes the incident, and the search among its siblings goes on only if that
child has ``continue = true``. A matching route none of whose children match delivers to its
own receiver. The result lists each receiver once, in the order found.

Config, as it comes from ``opsloop.toml``::

    [notify.route]
    receiver = "ops-mail"

    [[notify.route.routes]]
    matchers = ['service=~"db|cache"']
    severity = "critical"
    receiver = "pager"
    continue = true

    [[notify.route.routes]]
    matchers = ['team="ml"']
    receiver = "ml-slack"

>>> tree = load_route({
...     "receiver": "mail",
...     "routes": [
...         {"matchers": ['service=~"db|cache"'], "severity": "critical",
...          "receiver": "pager", "continue": True},
...         {"matchers": ['team="ml"'], "receiver": "ml-slack"},
...     ],
... })
>>> tree.route({"service": "db", "team": "ml"}, "critical")
['pager', 'ml-slack']
>>> tree.route({"service": "db"}, "warning")
['mail']
>>> load_route({"receiver": "mail", "routes": [{"matchers": ["x=~("]}]})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
opsloop.act.notify.routing.RoutingError: route.routes[0].matchers[0]: bad regular ex...
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from opsloop.act.incidents.matchers import Matcher
from opsloop.act.notify.message import SEVERITIES, severity_rank

__all__ = ["Route", "RoutingError", "load_route"]

MAX_DEPTH = 16
_KEYS = {"receiver", "matchers", "severity", "continue", "routes"}


class RoutingError(ValueError):
    """An invalid routing config; ``path`` points at the offending key."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True)
class Route:
    """One node of the routing tree (``receiver`` already resolved through inheritance)."""

    receiver: str
    matchers: tuple[Matcher, ...] = ()
    min_severity: str | None = None
    continue_: bool = False
    routes: tuple[Route, ...] = ()

    def matches(self, labels: Mapping[str, str], severity: str) -> bool:
        """Whether this node alone (not its children) accepts the incident."""
        if self.min_severity is not None and severity_rank(severity) < severity_rank(
            self.min_severity
        ):
            return False
        return all(m.matches(labels) for m in self.matchers)

    def route(self, labels: Mapping[str, str], severity: str) -> list[str]:
        """Receiver names for an incident with ``labels`` and ``severity``, each once.

        >>> Route("default").route({}, "info")
        ['default']
        """
        severity_rank(severity)  # unknown severities are an error, not a silent miss
        found: list[str] = []
        self._walk(labels, severity, found)
        return list(dict.fromkeys(found))

    def _walk(self, labels: Mapping[str, str], severity: str, found: list[str]) -> bool:
        if not self.matches(labels, severity):
            return False
        taken = False
        for child in self.routes:
            if child._walk(labels, severity, found):
                taken = True
                if not child.continue_:
                    break
        if not taken:
            found.append(self.receiver)
        return True

    def receivers(self) -> set[str]:
        """Every receiver name used anywhere in the tree."""
        out = {self.receiver}
        for child in self.routes:
            out |= child.receivers()
        return out


def load_route(
    config: Mapping[str, Any],
    receivers: Collection[str] | None = None,
    path: str = "route",
) -> Route:
    """Validate and build the routing tree from ``config`` (the root route table).

    With ``receivers`` given, every receiver a route names must be one of them.
    Errors are :class:`RoutingError` with the path of the offending key.

    >>> load_route({"receiver": "a", "routes": [{"receiver": "b", "sevrity": "info"}]})
    Traceback (most recent call last):
    ...
    opsloop.act.notify.routing.RoutingError: route.routes[0].sevrity: unknown key (use continue, matchers, receiver, routes, severity)
    >>> load_route({"receiver": "a"}, receivers={"b"})
    Traceback (most recent call last):
    ...
    opsloop.act.notify.routing.RoutingError: route.receiver: unknown receiver 'a' (known: b)
    """  # noqa: E501
    if not isinstance(config, Mapping):
        raise RoutingError(path, "must be a table")
    if "receiver" not in config:
        raise RoutingError(f"{path}.receiver", "the root route must name a receiver")
    for key in ("matchers", "severity", "continue"):
        if key in config:
            raise RoutingError(f"{path}.{key}", "not allowed on the root route (it matches all)")
    known = set(receivers) if receivers is not None else None
    return _build(config, path, None, known, 0)


def _build(
    config: Any, path: str, parent_receiver: str | None, known: set[str] | None, depth: int
) -> Route:
    if depth > MAX_DEPTH:
        raise RoutingError(path, f"routes nest deeper than {MAX_DEPTH} levels")
    if not isinstance(config, Mapping):
        raise RoutingError(path, "must be a table")
    for key in config:
        if key not in _KEYS:
            raise RoutingError(f"{path}.{key}", f"unknown key (use {', '.join(sorted(_KEYS))})")

    receiver = config.get("receiver", parent_receiver)
    if not isinstance(receiver, str) or not receiver:
        raise RoutingError(f"{path}.receiver", "must be a non-empty string")
    if known is not None and receiver not in known:
        names = ", ".join(sorted(known)) or "none defined"
        raise RoutingError(f"{path}.receiver", f"unknown receiver {receiver!r} (known: {names})")

    raw_matchers = config.get("matchers", [])
    if not isinstance(raw_matchers, list | tuple):
        raise RoutingError(f"{path}.matchers", "must be a list of strings like 'service=\"api\"'")
    matchers: list[Matcher] = []
    for i, text in enumerate(raw_matchers):
        try:
            matchers.append(Matcher.parse(text))
        except ValueError as exc:
            raise RoutingError(f"{path}.matchers[{i}]", str(exc)) from None

    severity = config.get("severity")
    if severity is not None and severity not in SEVERITIES:
        raise RoutingError(
            f"{path}.severity",
            f"unknown severity {severity!r} (use one of {', '.join(SEVERITIES)})",
        )

    cont = config.get("continue", False)
    if not isinstance(cont, bool):
        raise RoutingError(f"{path}.continue", "must be true or false")

    raw_routes = config.get("routes", [])
    if not isinstance(raw_routes, list | tuple):
        raise RoutingError(f"{path}.routes", "must be a list of route tables")
    children = tuple(
        _build(child, f"{path}.routes[{i}]", receiver, known, depth + 1)
        for i, child in enumerate(raw_routes)
    )
    return Route(receiver, tuple(matchers), severity, cont, children)
