"""The spend window's running total on every store: a spend counts for exactly the window's seconds after it was
made, however many spends the window holds, through pruning, a changed window and concurrent batched writes."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from tests.backends import BoundBackend
from tokenbank import LimitExceededError, TokenBank
from tokenbank.testing import ManualClock


async def _spent(bank: TokenBank, user: str = "alice") -> Decimal:
    return (await bank.get_account(user)).spent_in_window


async def test_each_spend_leaves_the_window_exactly_its_seconds_after_it_was_made(backend: BoundBackend) -> None:
    clock = ManualClock()
    async with TokenBank(backend.settings(initial_supply=1000), clock=clock) as bank:
        await bank.transfer("treasury", "alice", 500)
        await bank.set_limits("alice", spend_per_window=(100, 10))
        for _ in range(3):  # 30 at t=0, t=3, t=6
            await bank.transfer("alice", "bob", 30)
            clock.advance(3)
        clock.advance(Decimal("0.5"))  # t=9.5: all three count
        with pytest.raises(LimitExceededError):
            await bank.transfer("alice", "bob", 11)
        await bank.burn("alice", 10)
        assert await _spent(bank) == 100
        clock.advance(Decimal("0.499999"))  # t=9.999999: the first spend still counts
        with pytest.raises(LimitExceededError):
            await bank.transfer("alice", "bob", Decimal("0.01"))
        clock.advance(Decimal("0.000001"))  # t=10: it left, exactly
        assert await _spent(bank) == 70
        with pytest.raises(LimitExceededError):
            await bank.transfer("alice", "bob", 31)
        await bank.transfer("alice", "bob", 30)
        await bank.ledger.prune_spends()  # forgets t=0's spend only: the total stays exact
        clock.advance(3)  # t=13: t=3's spend left too
        await bank.ledger.prune_spends()
        assert await _spent(bank) == 70
        await bank.transfer("alice", "bob", 30)
        with pytest.raises(LimitExceededError):
            await bank.transfer("alice", "bob", Decimal("0.01"))
        # A shorter window counts its own range again: t=9.5's 10, t=10's 30 and t=13's 30.
        await bank.set_limits("alice", spend_per_window=(70, 5))
        assert await _spent(bank) == 70
        with pytest.raises(LimitExceededError):
            await bank.hold("alice", "bob", Decimal("0.01"), expires_in=60)
        clock.advance(Decimal("1.5"))  # t=14.5: t=9.5's 10 left
        await bank.hold("alice", "bob", 10, expires_in=60)
        assert await _spent(bank) == 70
        clock.advance(100)  # everything left
        assert await _spent(bank) == 0
        await bank.transfer("alice", "bob", 70)
        assert await bank.get_balance("alice") == 500 - 90 - 10 - 30 - 30 - 10 - 70
        assert (await bank.verify()).ok


async def test_concurrent_batched_debits_see_spends_leave_in_real_time(backend: BoundBackend) -> None:
    async with TokenBank(backend.settings(initial_supply=1000)) as bank:
        await bank.transfer("treasury", "alice", 100)
        await bank.set_limits("alice", spend_per_window=(1, 1))

        async def one(n: int) -> bool:
            try:
                await bank.transfer("alice", f"shop{n % 5}", Decimal("0.02"))
            except LimitExceededError:
                return False
            return True

        assert sum(await asyncio.gather(*(one(n) for n in range(80)))) == 50
        await asyncio.sleep(1.2)  # every spend left the one-second window
        assert await _spent(bank) == 0
        assert sum(await asyncio.gather(*(one(n) for n in range(80)))) == 50
        assert await bank.get_balance("alice") == 98


@pytest.mark.parametrize("pruned_first", [False, True], ids=["unpruned", "pruned"])
async def test_a_changed_window_counts_what_the_old_one_held_at_the_change(
    backend: BoundBackend, pruned_first: bool
) -> None:
    """Lengthening a window cannot bring back spends that had left the old one, whether or not the sweeper pruned
    them yet; removing the window forgets every spend, so a window given back later starts empty."""
    clock = ManualClock()
    async with TokenBank(backend.settings(initial_supply=1000), clock=clock) as bank:
        await bank.transfer("treasury", "alice", 500)
        await bank.set_limits("alice", spend_per_window=(100, 10))
        await bank.transfer("alice", "bob", 40)  # t=0
        clock.advance(8)
        await bank.transfer("alice", "bob", 20)  # t=8
        clock.advance(4)  # t=12: t=0's 40 left the 10-second window
        if pruned_first:
            await bank.ledger.prune_spends()
        await bank.set_limits("alice", spend_per_window=(100, 60))
        assert await _spent(bank) == 20
        await bank.transfer("alice", "bob", 80)
        with pytest.raises(LimitExceededError):
            await bank.transfer("alice", "bob", Decimal("0.01"))
        clock.advance(10)  # t=22: both kept spends are inside the 60-second window
        assert await _spent(bank) == 100
        await bank.set_limits("alice")  # no window: its spends are forgotten
        await bank.transfer("alice", "bob", 10)  # not counted: the account has no window
        await bank.set_limits("alice", spend_per_window=(100, 60))
        assert await _spent(bank) == 0
        await bank.transfer("alice", "bob", 100)
        assert await _spent(bank) == 100
        assert (await bank.verify()).ok
