"""Alembic environment: runs on a connection handed in by services.db.migrate, in one schema."""

from __future__ import annotations

from alembic import context

from services.db.tables import read_model_metadata

config = context.config
connection = config.attributes["connection"]
schema = config.attributes["schema"]

context.configure(
    connection=connection,
    target_metadata=read_model_metadata(),
    version_table_schema=schema,
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
