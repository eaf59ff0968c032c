"""Auto-pipelining of plain Redis commands: concurrent reads share round trips, each caller its own reply."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
import redis.asyncio as aioredis

from tokenbank import StorageError, TokenBank, TransferRequest
from tokenbank.storage.redis.backend import RedisStorage

pytestmark = pytest.mark.redis


def _store(bank: TokenBank) -> RedisStorage:
    assert isinstance(bank.storage, RedisStorage)
    return bank.storage


async def test_concurrent_reads_share_round_trips_and_keep_their_own_results(bank: TokenBank) -> None:
    users = [f"u{n}" for n in range(100)]
    results = await bank.transfer_many([TransferRequest("treasury", user, 1 + n % 9) for n, user in enumerate(users)])
    assert all(r.ok for r in results)
    stats = _store(bank)._reads.stats
    before = (stats.commands, stats.round_trips)
    balances = await asyncio.gather(*(bank.get_balance(user) for user in users))
    assert balances == [Decimal(1 + n % 9) for n in range(len(users))]
    commands, round_trips = stats.commands - before[0], stats.round_trips - before[1]
    assert commands == len(users)
    assert round_trips < commands / 4  # one lone command, then the queued ones in a few pipelines
    assert stats.largest > 1


async def test_a_failing_command_fails_only_its_own_caller(bank: TokenBank, redis_url: str, key_prefix: str) -> None:
    store = _store(bank)
    wrong_type = "{" + key_prefix + ":TARO}:not-a-hash"
    raw = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        await raw.set(wrong_type, "x")
        calls = [store._cmd("HGET", store.keys.bal, "treasury") for _ in range(20)]
        calls.insert(10, store._cmd("HGET", wrong_type, "field"))  # WRONGTYPE, queued among the others
        replies = await asyncio.gather(*calls, return_exceptions=True)
    finally:
        await raw.aclose()
    errors = [reply for reply in replies if isinstance(reply, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], StorageError) and "WRONGTYPE" in str(errors[0])
    assert replies.index(errors[0]) == 10
    assert [reply for reply in replies if not isinstance(reply, BaseException)] == ["100000"] * 20


async def test_a_lone_read_goes_at_once(bank: TokenBank) -> None:
    stats = _store(bank)._reads.stats
    before = stats.round_trips
    for _ in range(5):  # one at a time: never queued, one round trip each
        assert await bank.get_balance("treasury") == Decimal(1000)
    assert stats.round_trips - before == 5
