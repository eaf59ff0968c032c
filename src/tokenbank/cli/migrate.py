"""``tokenbank migrate [--sql]``: schema migrations as a deploy step.

Run it once per deploy, as a role that may change the schema, before the app processes start; the app can then
run with ``TOKEN_AUTO_MIGRATE=false`` as a role with data rights only. ``--sql`` prints what it would run instead,
for a reviewed change.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from tokenbank.cli.runtime import check_sqlite_path, describe_store, state_of
from tokenbank.errors import ConfigurationError
from tokenbank.settings import StorageMode
from tokenbank.storage.sql.backend import SqlStorage
from tokenbank.storage.sql.migrate import upgrade_sql


def migrate(
    ctx: typer.Context,
    sql: Annotated[bool, typer.Option("--sql", help="Print the SQL it would run, change nothing.")] = False,
) -> None:
    """Bring the database schema to this release's version (whatever TOKEN_AUTO_MIGRATE says)."""
    state = state_of(ctx)
    with state.handled():
        settings = state.settings()
        if settings.storage_mode is StorageMode.REDIS:
            state.err.print("redis mode keeps no SQL schema: nothing to migrate")
            return
        if sql and not _database_exists(settings.database_url):
            typer.echo(upgrade_sql("sqlite", None).rstrip("\n"))  # a new SQLite file: everything
            return
        check_sqlite_path(settings.database_url, create=True)
        store = SqlStorage(settings)

        async def work() -> str:
            try:
                if sql:
                    return await store.pending_migration_sql()
                before, head = await store.migrate()
                if before == head:
                    return f"schema of {describe_store(settings)} is at {head}: nothing to do"
                return f"schema of {describe_store(settings)} migrated from {before or 'empty'} to {head}"
            finally:
                await store.close()

        output = asyncio.run(work())
        if sql:
            typer.echo(output.rstrip("\n") or "-- the schema is at this release's version: nothing to run")
        else:
            state.out.print(output)


def _database_exists(url: str) -> bool:
    """False only for a SQLite URL naming a file that is not there yet."""
    try:
        check_sqlite_path(url, create=False)
    except ConfigurationError:
        return False
    return True


def register(root: typer.Typer) -> None:
    root.command("migrate")(migrate)
