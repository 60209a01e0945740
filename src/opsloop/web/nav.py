"""The dashboard's navigation: each capability appends its page here."""

from __future__ import annotations

from dataclasses import dataclass

from opsloop.roles import Role


@dataclass(frozen=True)
class NavItem:
    """A link in the side navigation, shown to roles at or above ``role``."""

    key: str
    label: str
    href: str
    role: Role = Role.viewer


NAV: list[NavItem] = [
    NavItem("overview", "Overview", "/"),
    NavItem("incidents", "Incidents", "/incidents"),
    NavItem("metrics", "Metrics", "/series"),
    NavItem("logs", "Logs", "/logs"),
    NavItem("runbooks", "Runbooks", "/runbooks"),
    NavItem("pipelines", "Pipelines", "/pipelines"),
    NavItem("models", "Models", "/models"),
    NavItem("silences", "Silences", "/silences"),
    NavItem("api", "API", "/api/docs"),
]
