"""Alembic environment: run with a connection handed in by :mod:`tokenbank.storage.sql.migrate`, or offline
(``tokenbank migrate --sql``) with only a dialect name, printing the SQL instead of running it."""

from __future__ import annotations

from alembic import context

from tokenbank.storage.sql.migrate import VERSION_TABLE
from tokenbank.storage.sql.schema import metadata

if context.is_offline_mode():
    context.configure(
        dialect_name=context.config.attributes["dialect_name"],
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
        # The printed SQL is run as written (psql): no driver would turn a "%%" back into the "%" of a RAISE.
        dialect_opts={"paramstyle": "named"},
    )
else:
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
    )
with context.begin_transaction():
    context.run_migrations()
