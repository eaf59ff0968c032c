"""Redis's spend window: a list of spends in time order with a running total and the oldest and newest spend's
times beside it, read back exactly, and the sorted sets of earlier builds moved to it on open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import redis.asyncio as aioredis

from tokenbank import LimitExceededError, Settings, TokenBank, Transaction
from tokenbank.testing import ManualClock

pytestmark = pytest.mark.redis


@pytest.fixture
async def clocked(redis_url: str, key_prefix: str) -> AsyncIterator[tuple[TokenBank, ManualClock]]:
    clock = ManualClock()
    async with TokenBank(taro(redis_url, key_prefix), clock=clock) as bank:
        yield bank, clock


def taro(redis_url: str, key_prefix: str) -> Settings:
    return Settings(storage_mode="redis", redis_url=redis_url, key_prefix=key_prefix, symbol="TARO", decimals=2,
                    initial_supply="1000", hold_sweep_interval=0)  # fmt: skip


async def test_the_state_holds_the_total_and_the_oldest_and_newest_spend(
    clocked: tuple[TokenBank, ManualClock], redis_url: str
) -> None:
    bank, clock = clocked
    keys = bank.ledger.storage.keys  # type: ignore[attr-defined]
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        await bank.transfer("treasury", "alice", 100)
        await bank.set_limits("alice", spend_per_window=(50, 60))
        first = micros(await bank.transfer("alice", "bob", 10))
        clock.advance(30)
        second = micros(await bank.transfer("alice", "bob", 15))
        assert await client.hget(keys.window, "alice") == f"2500:{first}:{second}"
        assert await client.lrange(keys.spends("alice"), 0, -1) == [f"{first}:1000", f"{second}:1500"]
        clock.advance(30)  # the first spend left: the total and the list drop it, the oldest moves on
        third = micros(await bank.transfer("alice", "bob", 35))
        assert await client.hget(keys.window, "alice") == f"5000:{second}:{third}"
        assert await client.lrange(keys.spends("alice"), 0, -1) == [f"{second}:1500", f"{third}:3500"]
        await bank.set_limits("alice")  # no window: its spends are forgotten
        assert not await client.exists(keys.spends("alice")) and not await client.hexists(keys.window, "alice")
    finally:
        await client.aclose()


def micros(tx: Transaction) -> int:
    return int(tx.timestamp.timestamp() * 1_000_000)


async def test_windows_an_earlier_build_kept_in_sorted_sets_are_moved_to_lists_on_open(
    redis_url: str, key_prefix: str
) -> None:
    """Earlier builds kept each account's spends in a sorted set ("tx_id:amount" scored by time) beside a
    "total:oldest" (or bare total) state; opening a bank moves them, so their spends keep counting exactly."""
    clock, settings = ManualClock(), taro(redis_url, key_prefix)
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        async with TokenBank(settings, clock=clock) as bank:
            keys = bank.ledger.storage.keys  # type: ignore[attr-defined]
            for user in ("alice", "bob", "carol"):
                await bank.transfer("treasury", user, 100)
                await bank.set_limits(user, spend_per_window=(50, 60))
            await bank.transfer("carol", "dave", 5)  # carol's window starts in the list layout
            now = micros(await bank.transfer("treasury", "dave", 1))
        old = keys.old_spends_prefix
        await client.zadd(old + "alice", {"tx1:2000": now - 70_000_000, "tx2:1000": now - 30_000_000})
        await client.zadd(old + "bob", {"tx3:4000": now - 10_000_000})
        await client.zadd(old + "carol", {"tx4:500": now - 40_000_000})
        await client.hset(keys.old_spent, mapping={"alice": f"3000:{now - 70_000_000}", "bob": "4000",
                                                   "carol": f"500:{now - 40_000_000}"})  # fmt: skip
        async with TokenBank(settings, clock=clock) as bank:
            assert not await client.exists(keys.old_spent, old + "alice", old + "bob", old + "carol")
            assert await client.lrange(keys.spends("carol"), 0, -1) == [f"{now - 40_000_000}:500", f"{now}:500"]
            assert await client.hget(keys.window, "carol") == f"1000:{now - 40_000_000}:{now}"
            spent = {user: (await bank.get_account(user)).spent_in_window for user in ("alice", "bob", "carol")}
            assert spent == {"alice": 10, "bob": 40, "carol": 10}  # alice's tx1 had left the window
            with pytest.raises(LimitExceededError):
                await bank.transfer("bob", "dave", Decimal("10.01"))
            await bank.transfer("bob", "dave", 10)
            clock.advance(51)  # bob's tx3 left
            assert (await bank.get_account("bob")).spent_in_window == 10
            assert (await bank.verify()).ok
    finally:
        await client.aclose()


async def test_the_account_reads_its_window_from_the_total_or_the_smaller_side_of_the_set(
    clocked: tuple[TokenBank, ManualClock],
) -> None:
    """Spends that left the window stay in the list until the next debit: get_account counts them out exactly,
    taking those at the list's head that are older than the window's start from the total."""
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
