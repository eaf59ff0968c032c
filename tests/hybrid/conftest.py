"""Fixtures of the hybrid tests: a PostgreSQL schema and a Redis key prefix of each test's own, both removed after.

Every test here needs both servers (marks ``redis`` and ``postgres`` in each module); the shared servers are
never stopped or flushed: tests that must kill a server start their own on a free port (see support.py).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from tests.backends import POSTGRES_URL, REDIS_SESSION_PREFIX, REDIS_URL
from tokenbank import Settings, TokenBank

SettingsFactory = Callable[..., Settings]
BankFactory = Callable[..., Awaitable[TokenBank]]


@pytest.fixture(autouse=True)
def _isolated_env(clean_env: pytest.MonkeyPatch) -> None:
    """No TOKEN_* / *_URL variable of the caller's shell leaks into the Settings these tests build."""


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    """A PostgreSQL schema of this test alone (created by the first bank that opens on it), dropped after."""
    schema = "tbhy_" + secrets.token_hex(6)
    yield schema
    conn = await asyncpg.connect(POSTGRES_URL.replace("+asyncpg", ""), timeout=10)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def key_prefix() -> AsyncIterator[str]:
    """A Redis key prefix of this test alone (under the session's prefix); its keys are deleted after."""
    prefix = REDIS_SESSION_PREFIX + "h" + secrets.token_hex(5)
    yield prefix
    await delete_keys(REDIS_URL, prefix)


async def delete_keys(url: str, prefix: str) -> None:
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        keys = [key async for key in client.scan_iter(match="{" + prefix + ":*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.unlink(*keys[start : start + 500])
    finally:
        await client.aclose()


@pytest.fixture
def hybrid_settings(pg_schema: str, key_prefix: str) -> SettingsFactory:
    """Settings of a hybrid bank on this test's schema and prefix (symbol HY, 2 decimals, 1000 minted)."""

    def make(**overrides: Any) -> Settings:
        options: dict[str, Any] = {
            "storage_mode": "hybrid", "redis_url": REDIS_URL, "key_prefix": key_prefix,
            "database_url": POSTGRES_URL, "database_schema": pg_schema, "symbol": "HY", "name": "Hybrid",
            "initial_supply": 1000, "hold_sweep_interval": 0, **overrides,
        }  # fmt: skip
        return Settings.load(**options)

    return make


@pytest.fixture
async def make_bank(hybrid_settings: SettingsFactory) -> AsyncIterator[BankFactory]:
    """Open banks (hybrid unless overridden) on this test's schema and prefix; closed after the test."""
    banks: list[TokenBank] = []

    async def factory(**overrides: Any) -> TokenBank:
        bank = TokenBank(hybrid_settings(**overrides))
        await bank.open()
        banks.append(bank)
        return bank

    yield factory
    for bank in reversed(banks):
        await bank.close()
