"""Fixtures for the Redis store tests: a bank on the shared Redis under a key prefix unique to each test.

If Redis does not answer, the tests are skipped, except under CI (``CI=true``), where that is a failure.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlparse

import pytest
import redis.asyncio as aioredis

from tokenbank import Settings, TokenBank

REDIS_URL = os.environ.get("TOKENBANK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

BankFactory = Callable[..., Awaitable[TokenBank]]


def _redis_answers(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not _redis_answers(REDIS_URL):
        message = f"Redis does not answer at {REDIS_URL}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return REDIS_URL


async def delete_prefix(url: str, prefix: str) -> int:
    """Delete every key under ``{prefix:`` (only this test's keys; never FLUSHDB on the shared server)."""
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        keys = [key async for key in client.scan_iter(match="{" + prefix + ":*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.unlink(*keys[start : start + 500])
        return len(keys)
    finally:
        await client.aclose()


@pytest.fixture(autouse=True)
def _isolated_env(clean_env: pytest.MonkeyPatch) -> None:
    """No TOKEN_* / *_URL variable of the caller's shell leaks into the Settings these tests build."""


@pytest.fixture
async def key_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test alone; every key under it is deleted afterwards."""
    prefix = "tbr" + uuid.uuid4().hex[:12]
    yield prefix
    await delete_prefix(redis_url, prefix)


@pytest.fixture
async def make_bank(redis_url: str, key_prefix: str) -> AsyncIterator[BankFactory]:
    """Open banks on the shared Redis under this test's prefix (closed after the test)."""
    banks: list[TokenBank] = []

    async def factory(**overrides: Any) -> TokenBank:
        options: dict[str, Any] = {
            "storage_mode": "redis",
            "redis_url": redis_url,
            "key_prefix": key_prefix,
            "symbol": "TARO",
            "decimals": 2,
            "initial_supply": "1000",
            "hold_sweep_interval": 0,
            **overrides,
        }
        bank = TokenBank(Settings(**options))
        await bank.open()
        banks.append(bank)
        return bank

    yield factory
    for bank in banks:
        await bank.close()


@pytest.fixture
async def bank(make_bank: BankFactory) -> TokenBank:
    return await make_bank()
