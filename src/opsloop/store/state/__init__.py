"""State store: users/tokens, audit (and later incidents, runbooks, runs) through SQLAlchemy.

SQLite file by default, PostgreSQL by URL. The schema is owned by Alembic migrations
(``opsloop/store/migrations``); :func:`open_state` upgrades a database to the latest revision.
"""

from opsloop.store.state.audit import AuditLog
from opsloop.store.state.db import StateDB, open_state
from opsloop.store.state.tokens import Principal, TokenService

__all__ = ["AuditLog", "Principal", "StateDB", "TokenService", "open_state"]
