"""Migrations as a deploy step: ``tokenbank migrate [--sql]``, ``TOKEN_AUTO_MIGRATE=false``, an app role with data
rights only, and many processes starting on a fresh database at once."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner

from tests.backends import POSTGRES_URL
from tokenbank import ConfigurationError, Settings, TokenBank
from tokenbank.cli import app
from tokenbank.storage.sql.migrate import _config, head_revision

DSN = POSTGRES_URL.replace("+asyncpg", "")
runner = CliRunner()


def _cli(url: str, *args: str, schema: str | None = None) -> str:
    """The CLI as a user runs it (on its own thread: the command runs its own event loop)."""
    env = {"TOKEN_DATABASE_SCHEMA": schema} if schema else {}
    result = runner.invoke(app, ["--database-url", url, *args], env=env)
    assert result.exit_code == 0, result.output
    return result.output


async def _transfer_works(settings: Settings) -> None:
    async with TokenBank(settings) as bank:
        await bank.mint("alice", 10)
        await bank.transfer("alice", "bob", 4)
        assert await bank.get_balance("bob") == Decimal(4)
        assert len((await bank.transactions.get_transaction_history("alice")).items) == 2


# SQLite ------------------------------------------------------------------------------------------------------
async def test_sqlite_behind_without_auto_migrate_is_refused_then_migrate_fixes_it(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    settings = Settings(database_url=url, symbol="DPL", auto_migrate=False)
    with pytest.raises(ConfigurationError, match="tokenbank migrate"):
        await TokenBank(settings).open()

    assert "migrated from empty to " + head_revision() in await asyncio.to_thread(_cli, url, "migrate")
    await _transfer_works(settings)
    assert "nothing to do" in await asyncio.to_thread(_cli, url, "migrate")
    assert "nothing to run" in await asyncio.to_thread(_cli, url, "migrate", "--sql")


async def test_sql_for_a_new_sqlite_file_creates_nothing(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    path = tmp_path / "new.db"
    output = await asyncio.to_thread(_cli, f"sqlite+aiosqlite:///{path}", "migrate", "--sql")
    assert "CREATE TABLE tb_transactions" in output
    assert f"'{head_revision()}'" in output  # the version row it would write
    assert not path.exists()


# PostgreSQL --------------------------------------------------------------------------------------------------
@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    schema = "tbdeploy_" + secrets.token_hex(4)
    yield schema
    conn = await asyncpg.connect(DSN)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.mark.postgres
async def test_printed_sql_builds_a_schema_the_bank_runs_on(pg_schema: str, clean_env: pytest.MonkeyPatch) -> None:
    printed = await asyncio.to_thread(_cli, POSTGRES_URL, "migrate", "--sql", schema=pg_schema)
    assert printed.startswith(f'CREATE SCHEMA IF NOT EXISTS "{pg_schema}"')
    conn = await asyncpg.connect(DSN)
    try:
        await conn.execute(printed)  # what a reviewer would run with psql
    finally:
        await conn.close()
    settings = Settings(database_url=POSTGRES_URL, database_schema=pg_schema, symbol="DPP", auto_migrate=False)
    await _transfer_works(settings)
    assert "nothing to run" in await asyncio.to_thread(_cli, POSTGRES_URL, "migrate", "--sql", schema=pg_schema)


@pytest.fixture
def app_role(pg_schema: str) -> Iterator[tuple[str, str]]:
    """A login role with data rights only on ``pg_schema`` (no CREATE, no ALTER); its URL."""
    role = "tbapp_" + secrets.token_hex(4)
    admin = f"psql {DSN} -v ON_ERROR_STOP=1 -qc"
    subprocess.run([*admin.split(), f'CREATE ROLE "{role}" LOGIN'], check=True)
    yield role, POSTGRES_URL.replace("postgres@", f"{role}@", 1)
    subprocess.run([*admin.split(), f'DROP OWNED BY "{role}"; DROP ROLE "{role}"'], check=True)


def _upgrade_to(connection: Connection, revision: str) -> None:
    config = _config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _grant_data_rights(schema: str, role: str) -> None:
    grants = (
        f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"; '
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"; '
        f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"'
    )
    subprocess.run(["psql", DSN, "-v", "ON_ERROR_STOP=1", "-qc", grants], check=True)


@pytest.mark.postgres
async def test_an_app_role_with_data_rights_only_runs_the_bank(
    pg_schema: str, app_role: tuple[str, str], clean_env: pytest.MonkeyPatch
) -> None:
    role, role_url = app_role
    await asyncio.to_thread(_cli, POSTGRES_URL, "migrate", schema=pg_schema)  # the deploy step, as the owner
    _grant_data_rights(pg_schema, role)
    # Auto-migration on (the default) needs no DDL when the schema is at head.
    await _transfer_works(Settings(database_url=role_url, database_schema=pg_schema, symbol="DPR"))


@pytest.mark.postgres
async def test_an_app_role_behind_the_schema_gets_a_clear_error(
    pg_schema: str, app_role: tuple[str, str], clean_env: pytest.MonkeyPatch
) -> None:
    role, role_url = app_role
    engine = create_async_engine(POSTGRES_URL, connect_args={"server_settings": {"search_path": pg_schema}})
    try:
        async with engine.begin() as conn:  # an older release's schema, made by the owner
            await conn.execute(text(f'CREATE SCHEMA "{pg_schema}"'))
            await conn.run_sync(_upgrade_to, "0003")
    finally:
        await engine.dispose()
    _grant_data_rights(pg_schema, role)
    settings = Settings(database_url=role_url, database_schema=pg_schema, symbol="DPB")
    with pytest.raises(ConfigurationError, match=r"may not change the schema.*tokenbank migrate"):
        await TokenBank(settings).open()
    with pytest.raises(ConfigurationError, match="at revision 0003 and this release needs"):
        await TokenBank(settings.model_copy(update={"auto_migrate": False})).open()


# many processes at once ----------------------------------------------------------------------------------------
_STARTER = """
import asyncio, sys
from tokenbank import Settings, TokenBank

async def main() -> None:
    settings = Settings(database_url=sys.argv[1], database_schema=sys.argv[2] or None, symbol="DPC")
    async with TokenBank(settings) as bank:
        await bank.mint(sys.argv[3], 1)

asyncio.run(main())
"""


def _start_at_once(url: str, schema: str, processes: int = 4) -> None:
    starters = [
        subprocess.Popen([sys.executable, "-c", _STARTER, url, schema, f"user{n}"], stderr=subprocess.PIPE, text=True)
        for n in range(processes)
    ]
    outcomes = [(starter.communicate(timeout=120)[1], starter.returncode) for starter in starters]
    assert [stderr for stderr, code in outcomes if code != 0] == []


async def _minted(settings: Settings) -> Decimal:
    async with TokenBank(settings.model_copy(update={"auto_create": False})) as bank:
        return await bank.get_total_supply()


async def test_processes_starting_on_a_new_sqlite_file_at_once(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'race.db'}"
    _start_at_once(url, "")
    assert await _minted(Settings(database_url=url, symbol="DPC")) == 4


@pytest.mark.postgres
async def test_processes_starting_on_a_new_postgres_schema_at_once(
    pg_schema: str, clean_env: pytest.MonkeyPatch
) -> None:
    _start_at_once(POSTGRES_URL, pg_schema)
    assert await _minted(Settings(database_url=POSTGRES_URL, database_schema=pg_schema, symbol="DPC")) == 4
