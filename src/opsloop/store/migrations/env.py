"""Alembic environment: runs on the connection that opsloop hands over."""

from alembic import context

from opsloop.store.state.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - opsloop always passes a connection
    raise RuntimeError("opsloop migrations must be run through opsloop.store.state.db.upgrade")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
