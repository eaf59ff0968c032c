"""The PostgreSQL write pool (plain asyncpg): a connection the server drops is replaced, never reused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from tests.backends import BoundBackend, Scope, by_name, params
from tokenbank import TokenBank
from tokenbank.storage.sql.connection import parse_url, postgres_dsn


@pytest.fixture(params=params(by_name("postgres")))
async def bank(
    request: pytest.FixtureRequest, tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> AsyncIterator[TokenBank]:
    backend: BoundBackend = request.param.bind(Scope(tmp_path))
    async with TokenBank(backend.settings(initial_supply=100, decimals=0)) as bank:
        yield bank


async def _drop_write_connections(bank: TokenBank) -> int:
    """Terminate the server backends of this bank's write pool (found through the pool itself, so connections
    of other tests and processes on the shared server are left alone)."""
    pool = bank.storage._writer._writes._pool  # type: ignore[attr-defined]
    async with pool.acquire() as own:
        pids = [await own.fetchval("SELECT pg_backend_pid()")]
    conn = await asyncpg.connect(postgres_dsn(parse_url(bank.settings)))
    try:
        return int(await conn.fetchval("SELECT count(pg_terminate_backend(pid)) FROM unnest($1::int[]) AS pid", pids))
    finally:
        await conn.close()


async def test_a_dropped_write_connection_is_replaced(bank: TokenBank) -> None:
    await bank.transfer("treasury", "alice", 10)
    assert await _drop_write_connections(bank) >= 1
    await asyncio.sleep(0.2)  # the client sees the server close the socket
    await bank.transfer("treasury", "alice", 5)
    assert await bank.get_balance("alice") == Decimal(15)
    assert (await bank.verify()).ok
