"""Alembic environment: migrations always run on a connection handed over by `synsetforge.store`."""

from __future__ import annotations

from alembic import context

from synsetforge.store.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable through the alembic CLI, which we don't use
    raise RuntimeError("run migrations through synsetforge.store.migrate, not the alembic command")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
