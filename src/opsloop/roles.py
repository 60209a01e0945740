"""Roles of API tokens: viewer < operator < admin."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """What a token may do. Each role includes the rights of the roles below it."""

    viewer = "viewer"
    operator = "operator"
    admin = "admin"

    @property
    def rank(self) -> int:
        """Position in the order viewer < operator < admin."""
        return _ORDER[self]

    def allows(self, needed: Role) -> bool:
        """Whether a holder of this role may do what ``needed`` requires.

        >>> Role.operator.allows(Role.viewer), Role.viewer.allows(Role.admin)
        (True, False)
        """
        return self.rank >= needed.rank


_ORDER = {Role.viewer: 0, Role.operator: 1, Role.admin: 2}
