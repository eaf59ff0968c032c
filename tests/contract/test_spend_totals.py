"""The spend window's running total on every store: a spend counts for exactly the window's seconds after it was
made, however many spends the window holds, through pruning, a changed window and concurrent batched writes."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest

from tests.backends import BoundBackend
from tokenbank import BatchAbortedError, LimitExceededError, TokenBank, TransferRequest
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


async def test_a_spend_stamped_before_earlier_ones_leaves_the_window_at_its_own_time(backend: BoundBackend) -> None:
    """Two processes' clocks, or an import, can stamp a debit before one already counted: it still counts for
    exactly the window's seconds after its own time, neither longer nor shorter."""
    clock = ManualClock()
    start = clock.now()
    async with TokenBank(backend.settings(initial_supply=1000), clock=clock) as bank:
        await bank.transfer("treasury", "alice", 500)
        await bank.set_limits("alice", spend_per_window=(100, 10))
        await bank.transfer("alice", "bob", 10)  # t=0
        clock.advance(5)
        await bank.transfer("alice", "bob", 20)  # t=5
        clock.set(start + timedelta(seconds=2))
        await bank.transfer("alice", "bob", 30)  # t=2, stamped after t=5's
        clock.set(start + timedelta(seconds=11))  # t=0's left
        assert await _spent(bank) == 50
        with pytest.raises(LimitExceededError):
            await bank.transfer("alice", "bob", Decimal("50.01"))
        clock.advance(2)  # t=13: t=2's left too, before t=5's
        assert await _spent(bank) == 20
        await bank.transfer("alice", "bob", 80)
        with pytest.raises(LimitExceededError):
            await bank.transfer("alice", "bob", Decimal("0.01"))
        clock.advance(3)  # t=16: t=5's left
        assert await _spent(bank) == 80
        assert (await bank.verify()).ok


async def test_an_atomic_batch_that_fails_leaves_the_window_as_it_was(backend: BoundBackend) -> None:
    """A refused op rolls back the window's changes of the ops before it: the spends they dropped from the window's
    head, the one they appended and one they put in its place in time."""
    clock = ManualClock()
    start = clock.now()
    async with TokenBank(backend.settings(initial_supply=1000), clock=clock) as bank:
        await bank.transfer("treasury", "alice", 500)
        await bank.set_limits("alice", spend_per_window=(100, 10))
        for _ in range(3):  # t=0, 1, 2
            await bank.transfer("alice", "bob", 10)
            clock.advance(1)
        await bank.freeze("carol", debits=False, credits=True, reason="review")
        clock.set(start + timedelta(seconds=11))  # t=0's and t=1's left; nothing pruned them yet
        doomed = [TransferRequest("alice", "bob", 40), TransferRequest("alice", "carol", 1)]
        results = await bank.transfer_many(doomed, atomic=True)
        assert isinstance(results[0].error, BatchAbortedError)
        clock.set(start + timedelta(seconds=1, milliseconds=500))
        results = await bank.transfer_many(doomed, atomic=True)  # stamped before t=2's spend
        assert isinstance(results[0].error, BatchAbortedError)
        clock.set(start + timedelta(seconds=11))
        assert await _spent(bank) == 10
        await bank.transfer("alice", "bob", 90)
        with pytest.raises(LimitExceededError):
            await bank.transfer("alice", "bob", Decimal("0.01"))
        clock.set(start + timedelta(seconds=12))  # t=2's left: only the 90
        assert await _spent(bank) == 90
        clock.set(start + timedelta(seconds=22))  # everything left: an append the batch kept would show now
        assert await _spent(bank) == 0
        await bank.transfer("alice", "bob", 100)
        with pytest.raises(LimitExceededError):
            await bank.transfer("alice", "bob", Decimal("0.01"))
        assert await bank.get_balance("alice") == 500 - 30 - 90 - 100
        assert (await bank.verify()).ok
