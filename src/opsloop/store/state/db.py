"""Opening the state database and bringing its schema to the latest migration."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


class StateError(Exception):
    """The state store cannot be opened or migrated (one-line message)."""


@dataclass
class StateDB:
    """An engine and a session factory for the state store."""

    engine: Engine
    sessions: sessionmaker[Session]

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self.sessions() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def make_engine(url: str) -> Engine:
    """Create an engine for ``url`` with sensible per-backend settings."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def migrations_location() -> str:
    """Filesystem path of the packaged Alembic scripts (works from a wheel too)."""
    return str(resources.files("opsloop.store") / "migrations")


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run Alembic migrations up to ``revision`` on ``engine``."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", migrations_location())
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def open_state(url: str, migrate: bool = True) -> StateDB:
    """Open the state store at ``url``; bring its schema up to date unless ``migrate`` is false."""
    try:
        engine = make_engine(url)
        if migrate:
            upgrade(engine)
    except Exception as exc:  # a one-line reason for the CLI, not a traceback
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StateError(f"state store {_safe_url(url)}: {reason}") from exc
    return StateDB(engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))


def _safe_url(url: str) -> str:
    """The URL with any password hidden, fit for messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"
