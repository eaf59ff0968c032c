"""Redis keeps the sum of every overdraft limit in the token hash, so a mint reads one field: counted once from
the controls (and stored) for a token that has no field yet, then kept by each change of a limit."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from tokenbank import Settings, TokenBank

pytestmark = pytest.mark.redis


async def test_the_sum_is_counted_once_then_kept(redis_url: str, key_prefix: str) -> None:
    settings = Settings(storage_mode="redis", redis_url=redis_url, key_prefix=key_prefix, symbol="ROOM", decimals=2,
                        initial_supply="1000", hold_sweep_interval=0)  # fmt: skip
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        async with TokenBank(settings) as bank:
            keys = bank.ledger.storage.keys  # type: ignore[attr-defined]
            await bank.set_limits("alice", max_balance=500)  # controls, but no overdraft: no field written
            await bank.set_limits("bob", overdraft=3)
            await client.hdel(keys.token, "overdrafts")  # as a token whose limits were set before the field
            await bank.mint("carol", 1)
            assert await client.hget(keys.token, "overdrafts") == "300"  # counted from the controls, stored
            await bank.set_limits("alice", max_balance=500, overdraft="0.25")
            await bank.set_limits("bob", overdraft=1)
            assert await client.hget(keys.token, "overdrafts") == "125"
            await bank.set_limits("bob")
            assert await client.hget(keys.token, "overdrafts") == "25"
    finally:
        await client.aclose()
