"""The bank's clock governs hold expiry on every store: a hold expires on ``clock.advance()`` and
``expire_holds()``, captures are checked against the clock, and writes carry the clock's time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.backends import BoundBackend
from tests.support import assert_error, history
from tokenbank import HoldStateError, HoldStatus, TokenBank, TransactionType
from tokenbank.clock import SYSTEM_CLOCK
from tokenbank.status import Status
from tokenbank.testing import ManualClock

# Far in the past: a store that judged expiry by its own time would find every hold long expired.
PAST = datetime(2021, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(PAST)


@pytest.fixture
async def clocked(backend: BoundBackend, clock: ManualClock) -> AsyncIterator[TokenBank]:
    async with TokenBank(backend.settings(initial_supply=1000), clock=clock) as bank:
        await bank.transfer("treasury", "alice", 100)
        yield bank
        report = await bank.verify()
        assert report.ok, f"verify() after the test: {report}"


async def test_a_hold_expires_when_the_clock_passes_its_expiry(clocked: TokenBank, clock: ManualClock) -> None:
    bank = clocked
    hold = await bank.hold("alice", "bob", 30, expires_in=60)
    assert hold.expires_at == PAST + timedelta(seconds=60)
    assert await bank.expire_holds() == 0
    clock.advance(59.999)
    assert await bank.expire_holds() == 0
    assert (await bank.get_hold(hold.id)).status is HoldStatus.PENDING
    assert await bank.get_held_balance("alice") == 30
    clock.advance(timedelta(milliseconds=1))  # exactly at expires_at: expired
    assert await bank.expire_holds() == 1
    assert (await bank.get_hold(hold.id)).status is HoldStatus.VOIDED
    assert await bank.get_balances(["alice", "bob"]) == {"alice": 100, "bob": 0}
    assert await bank.get_held_balance("alice") == 0
    [void, *_] = await history(bank, "alice")
    assert (void.type, void.hold_id, void.reason) == (TransactionType.VOID, hold.id, "expired")
    assert void.timestamp == PAST + timedelta(seconds=60)
    assert await bank.expire_holds() == 0


async def test_capture_is_judged_by_the_clock(clocked: TokenBank, clock: ManualClock) -> None:
    bank = clocked
    early = await bank.hold("alice", "bob", 10, expires_in=60)
    late = await bank.hold("alice", "bob", 20, expires_in=60)
    clock.advance(59)
    captured = await bank.capture(early.id)  # real time is years past its expiry; the bank's is not
    assert captured.status is HoldStatus.CAPTURED
    clock.advance(1)
    with pytest.raises(HoldStateError) as caught:
        await bank.capture(late.id)
    assert_error(caught.value, HoldStateError)
    assert caught.value.status is Status.HOLD_EXPIRED
    assert (await bank.get_hold(late.id)).status is HoldStatus.PENDING  # refused: nothing changed
    assert await bank.expire_holds() == 1
    assert await bank.get_balances(["alice", "bob"]) == {"alice": 90, "bob": 10}


async def test_writes_carry_the_clock_time(clocked: TokenBank, clock: ManualClock) -> None:
    bank = clocked
    clock.advance(3600)
    tx = await bank.transfer("alice", "bob", 5)
    assert tx.timestamp == PAST + timedelta(hours=1)
    [stored, *_] = await history(bank, "bob")
    assert stored.id == tx.id and stored.timestamp == tx.timestamp
    assert await bank.get_balance_at("bob", PAST + timedelta(minutes=59)) == 0
    assert await bank.get_balance_at("bob", PAST + timedelta(hours=1)) == 5


async def test_the_default_clock_leaves_time_to_the_store(backend: BoundBackend) -> None:
    async with TokenBank(backend.settings(initial_supply=1000)) as bank:
        assert bank.clock is SYSTEM_CLOCK
        before = datetime.now(UTC)
        hold = await bank.hold("treasury", "bob", 1, expires_in=60)
        assert timedelta(seconds=59) < hold.expires_at - before <= timedelta(seconds=61)
        assert await bank.expire_holds(now=hold.expires_at - timedelta(microseconds=1)) == 0
        assert await bank.expire_holds(now=hold.expires_at) == 1
