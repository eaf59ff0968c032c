"""Apply the packaged Alembic migrations on start (``async with bank``)."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

# Any constant works; it only has to be the same in every process that migrates this database.
_MIGRATION_LOCK_ID = 0x70CE4BA4


def upgrade_to_head(connection: Connection, schema: str | None = None) -> None:
    """Bring the schema to the newest revision, inside the caller's transaction. On PostgreSQL, concurrent
    starters wait for each other on an advisory lock, and ``schema`` is created if missing."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
        if schema:
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    config = Config()
    config.set_main_option("script_location", str(resources.files("tokenbank.storage.sql") / "migrations"))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
