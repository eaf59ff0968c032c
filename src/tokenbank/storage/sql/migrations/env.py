"""Alembic environment: always run with a connection handed in by :mod:`tokenbank.storage.sql.migrate`."""

from __future__ import annotations

from alembic import context

from tokenbank.storage.sql.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table="tokenbank_alembic_version",
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
