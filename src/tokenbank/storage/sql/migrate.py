"""The schema's version: bring it to this release's head on open (``TOKEN_AUTO_MIGRATE``), or refuse clearly when
it is behind and migrations are a deploy step (``tokenbank migrate``), and print the SQL a migration would run.

Migrations only add (tables, columns, functions), so code of an older release keeps working on a newer schema:
that is what lets a deploy migrate first and roll the app processes after.
"""

from __future__ import annotations

import functools
import io
import logging
from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from tokenbank.errors import ConfigurationError

log = logging.getLogger("tokenbank.migrate")

VERSION_TABLE = "tokenbank_alembic_version"
# Any constant works; it only has to be the same in every process that migrates this database.
_MIGRATION_LOCK_ID = 0x70CE4BA4
_INSUFFICIENT_PRIVILEGE = "42501"


def _config(output_buffer: io.StringIO | None = None) -> Config:
    config = Config(output_buffer=output_buffer)
    config.set_main_option("script_location", str(resources.files("tokenbank.storage.sql") / "migrations"))
    return config


@functools.cache
def head_revision() -> str:
    """The newest schema revision this release knows (read once per process: Alembic parses every migration
    script to find it, a third of the time opening a bank took)."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    """The database's schema revision (None: tokenbank's tables were never created there)."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def prepare_schema(connection: Connection, schema: str | None, *, auto_migrate: bool) -> None:
    """Called on open: nothing to do at head (so an app role without DDL rights can open the bank); behind head,
    migrate if ``auto_migrate`` else raise ConfigurationError; ahead of head (a newer release migrated), go on
    with a warning."""
    current, head = current_revision(connection), head_revision()
    if current == head:
        return
    if current is not None and not _known(current):
        log.warning("database schema is at revision %s, newer than this release's %s; running on it", current, head)
        return
    if not auto_migrate:
        raise ConfigurationError(
            f"database schema is at revision {current or 'none'} and this release needs {head}: run "
            "`tokenbank migrate` as a role that may change the schema (or set TOKEN_AUTO_MIGRATE=true)"
        )
    upgrade_to_head(connection, schema)


def _known(revision: str) -> bool:
    return ScriptDirectory.from_config(_config()).get_revision(revision) is not None


def upgrade_to_head(connection: Connection, schema: str | None = None) -> None:
    """Bring the schema to the newest revision, inside the caller's transaction. On PostgreSQL, concurrent
    starters wait for each other on an advisory lock, and ``schema`` is created if missing. A role without the
    rights to change the schema gets ConfigurationError saying what to run instead."""
    try:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
            if schema:
                connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        config = _config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    except DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) != _INSUFFICIENT_PRIVILEGE:
            raise
        raise ConfigurationError(
            "the database role may not change the schema, which is behind this release: run `tokenbank migrate` "
            "as the schema's owner (and set TOKEN_AUTO_MIGRATE=false for the app)"
        ) from None


def upgrade_sql(dialect: str, current: str | None) -> str:
    """The SQL that would bring a ``dialect`` (``postgresql``/``sqlite``) database from ``current`` to head,
    without connecting (Alembic's offline mode); empty when it is at head already."""
    head = head_revision()
    if current == head:
        return ""
    buffer = io.StringIO()
    config = _config(buffer)
    config.attributes["dialect_name"] = dialect
    command.upgrade(config, f"{current}:head" if current else "head", sql=True)
    return buffer.getvalue()
