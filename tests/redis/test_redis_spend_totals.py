"""Redis's spend window state: a running total with the oldest spend's time beside it, read back exactly, and the
bare total an older release stored still read right."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import cast

import pytest
import redis.asyncio as aioredis

from tokenbank import LimitExceededError, Settings, TokenBank
from tokenbank.testing import ManualClock

pytestmark = pytest.mark.redis


@pytest.fixture
async def clocked(redis_url: str, key_prefix: str) -> AsyncIterator[tuple[TokenBank, ManualClock]]:
    clock = ManualClock()
    settings = Settings(storage_mode="redis", redis_url=redis_url, key_prefix=key_prefix, symbol="TARO", decimals=2,
                        initial_supply="1000", hold_sweep_interval=0)  # fmt: skip
    async with TokenBank(settings, clock=clock) as bank:
        yield bank, clock


async def test_the_state_holds_the_total_and_the_oldest_spend(
    clocked: tuple[TokenBank, ManualClock], redis_url: str
) -> None:
    bank, clock = clocked
    keys = bank.ledger.storage.keys  # type: ignore[attr-defined]
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        await bank.transfer("treasury", "alice", 100)
        await bank.set_limits("alice", spend_per_window=(50, 60))
        first = await bank.transfer("alice", "bob", 10)
        clock.advance(30)
        await bank.transfer("alice", "bob", 15)
        total, oldest = cast(str, await client.hget(keys.spent, "alice")).split(":")
        assert total == "2500" and int(oldest) == int(first.timestamp.timestamp() * 1_000_000)
        clock.advance(30)  # the first spend left: the total drops it and the oldest moves on
        await bank.transfer("alice", "bob", 35)
        total, oldest = cast(str, await client.hget(keys.spent, "alice")).split(":")
        assert total == "5000" and int(oldest) > int(first.timestamp.timestamp() * 1_000_000)
        assert await client.zcard(keys.spends("alice")) == 2
    finally:
        await client.aclose()


async def test_a_bare_total_from_an_older_release_is_read_with_its_set(
    clocked: tuple[TokenBank, ManualClock], redis_url: str
) -> None:
    bank, clock = clocked
    keys = bank.ledger.storage.keys  # type: ignore[attr-defined]
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        await bank.transfer("treasury", "alice", 100)
        await bank.set_limits("alice", spend_per_window=(50, 60))
        await bank.transfer("alice", "bob", 20)
        total, _ = cast(str, await client.hget(keys.spent, "alice")).split(":")
        await client.hset(keys.spent, "alice", total)  # as an older release left it
        with pytest.raises(LimitExceededError):
            await bank.transfer("alice", "bob", Decimal("30.01"))
        clock.advance(60)  # the spend left its window: the oldest came from the set
        await bank.transfer("alice", "bob", 50)
        assert (await bank.get_account("alice")).spent_in_window == 50
    finally:
        await client.aclose()


async def test_the_account_reads_its_window_from_the_total_or_the_smaller_side_of_the_set(
    clocked: tuple[TokenBank, ManualClock],
) -> None:
    """Spends that left the window stay in the set until the next debit: get_account counts them out exactly
    whichever side of the window's start it reads (the total less those that left, or those inside summed)."""
    bank, clock = clocked

    async def spent() -> Decimal:
        return (await bank.get_account("alice")).spent_in_window

    await bank.transfer("treasury", "alice", 500)
    await bank.set_limits("alice", spend_per_window=(500, 60))
    assert await spent() == 0
    for amount in (1, 2, 3):
        await bank.transfer("alice", "bob", amount)
    assert await spent() == 6  # the oldest is inside: the total alone
    clock.advance(30)
    await bank.transfer("alice", "bob", 4)
    clock.advance(31)  # three left, one inside
    assert await spent() == 4
    await bank.transfer("alice", "bob", 10)  # removes the three that left
    await bank.transfer("alice", "bob", 20)
    clock.advance(30)  # the 4 left, two inside
    assert await spent() == 30
    clock.advance(31)
    assert await spent() == 0
