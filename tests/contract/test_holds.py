"""Two-phase transfers: hold, capture (full and partial), void, expiry."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.backends import BoundBackend
from tests.support import assert_error, history, open_bank, snapshot
from tokenbank import (
    Hold,
    HoldNotFoundError,
    HoldStateError,
    HoldStatus,
    InsufficientBalanceError,
    InvalidAmountError,
    TokenBank,
    TransactionType,
)


@pytest.fixture
async def funded(bank: TokenBank) -> TokenBank:
    await bank.transfer("treasury", "alice", 100)
    return bank


async def test_hold_reserves_funds(funded: TokenBank) -> None:
    bank = funded
    hold = await bank.hold("alice", "bob", "30.5", expires_in=60, metadata={"cart": 7})
    assert isinstance(hold, Hold)
    assert (hold.from_user_id, hold.to_user_id, hold.amount) == ("alice", "bob", Decimal("30.5"))
    assert hold.status is HoldStatus.PENDING and hold.captured_amount == 0
    assert hold.metadata == {"cart": 7}
    assert timedelta(seconds=55) < hold.expires_at - datetime.now(UTC) <= timedelta(seconds=60)
    assert hold.created_at.utcoffset() == timedelta(0)
    assert await bank.get_hold(hold.id) == hold
    assert await bank.get_balances(["alice", "bob"]) == {"alice": Decimal("69.5"), "bob": 0}
    assert await bank.get_held_balance("alice") == Decimal("30.5")
    assert await bank.get_held_balance("bob") == 0
    [tx, *_] = await history(bank, "alice")
    assert (tx.type, tx.hold_id, tx.amount) == (TransactionType.HOLD, hold.id, Decimal("30.5"))


async def test_held_funds_are_not_spendable(funded: TokenBank) -> None:
    bank = funded
    await bank.hold("alice", "bob", 60, expires_in=timedelta(minutes=1))
    before = await snapshot(bank)
    with pytest.raises(InsufficientBalanceError):
        await bank.transfer("alice", "carol", 41)
    with pytest.raises(InsufficientBalanceError):
        await bank.hold("alice", "carol", 41, expires_in=60)
    assert await snapshot(bank) == before
    await bank.transfer("alice", "carol", 40)
    assert await bank.get_balance("alice") == 0


async def test_full_capture(funded: TokenBank) -> None:
    bank = funded
    hold = await bank.hold("alice", "bob", 30, expires_in=60)
    captured = await bank.capture(hold.id, reason="shipped")
    assert captured.id == hold.id
    assert captured.status is HoldStatus.CAPTURED and captured.captured_amount == 30
    assert await bank.get_balances(["alice", "bob"]) == {"alice": 70, "bob": 30}
    assert await bank.get_held_balance("alice") == 0
    [tx, *_] = await history(bank, "bob")
    assert (tx.type, tx.from_user_id, tx.to_user_id, tx.amount, tx.hold_id) == (
        TransactionType.CAPTURE,
        "alice",
        "bob",
        30,
        hold.id,
    )
    assert tx.reason == "shipped"


async def test_capture_with_the_exact_amount(funded: TokenBank) -> None:
    hold = await funded.hold("alice", "bob", 30, expires_in=60)
    assert (await funded.capture(hold.id, 30)).captured_amount == 30
    assert await funded.get_balances(["alice", "bob"]) == {"alice": 70, "bob": 30}


async def test_partial_capture_releases_the_rest(funded: TokenBank) -> None:
    bank = funded
    hold = await bank.hold("alice", "bob", 30, expires_in=60)
    captured = await bank.capture(hold.id, "12.25")
    assert captured.status is HoldStatus.CAPTURED and captured.captured_amount == Decimal("12.25")
    assert await bank.get_balances(["alice", "bob"]) == {"alice": Decimal("87.75"), "bob": Decimal("12.25")}
    assert await bank.get_held_balance("alice") == 0
    types = [(tx.type, tx.amount) for tx in await history(bank, "alice")][:2]
    assert sorted(types) == sorted(
        [(TransactionType.CAPTURE, Decimal("12.25")), (TransactionType.VOID, Decimal("17.75"))]
    )
    with pytest.raises(HoldStateError):
        await bank.capture(hold.id, 1)


async def test_capture_more_than_held_is_refused(funded: TokenBank) -> None:
    hold = await funded.hold("alice", "bob", 30, expires_in=60)
    before = await snapshot(funded)
    with pytest.raises(InvalidAmountError) as caught:
        await funded.capture(hold.id, "30.01")
    assert_error(caught.value, InvalidAmountError)
    assert await snapshot(funded) == before
    assert (await funded.get_hold(hold.id)).status is HoldStatus.PENDING


async def test_void_releases_everything(funded: TokenBank) -> None:
    bank = funded
    hold = await bank.hold("alice", "bob", 30, expires_in=60)
    voided = await bank.void(hold.id, reason="cancelled")
    assert voided.status is HoldStatus.VOIDED and voided.captured_amount == 0
    assert await bank.get_balances(["alice", "bob"]) == {"alice": 100, "bob": 0}
    assert await bank.get_held_balance("alice") == 0
    [tx, *_] = await history(bank, "alice")
    assert (tx.type, tx.amount, tx.reason) == (TransactionType.VOID, 30, "cancelled")


@pytest.mark.parametrize(
    ("first", "second"),
    [("capture", "capture"), ("capture", "void"), ("void", "capture"), ("void", "void")],
)
async def test_settled_holds_cannot_be_settled_again(funded: TokenBank, first: str, second: str) -> None:
    hold = await funded.hold("alice", "bob", 30, expires_in=60)
    await getattr(funded, first)(hold.id)
    before = await snapshot(funded)
    with pytest.raises(HoldStateError) as caught:
        await getattr(funded, second)(hold.id)
    assert_error(caught.value, HoldStateError)
    assert await snapshot(funded) == before


async def test_unknown_hold(bank: TokenBank) -> None:
    missing = str(uuid.uuid4())
    for attempt in (bank.capture, bank.void, bank.get_hold):
        with pytest.raises(HoldNotFoundError) as caught:
            await attempt(missing)
        assert_error(caught.value, HoldNotFoundError)


async def test_hold_of_more_than_the_balance(funded: TokenBank) -> None:
    before = await snapshot(funded)
    with pytest.raises(InsufficientBalanceError):
        await funded.hold("alice", "bob", "100.01", expires_in=60)
    assert await snapshot(funded) == before


async def test_expired_hold_cannot_be_captured_and_is_voided_by_expire_holds(funded: TokenBank) -> None:
    bank = funded
    hold = await bank.hold("alice", "bob", 30, expires_in=0.05)
    keep = await bank.hold("alice", "bob", 10, expires_in=60)
    await asyncio.sleep(0.1)
    with pytest.raises(HoldStateError) as caught:
        await bank.capture(hold.id)
    assert_error(caught.value, HoldStateError)
    assert await bank.get_held_balance("alice") == 40  # still held until swept
    assert await bank.expire_holds() == 1
    assert (await bank.get_hold(hold.id)).status is HoldStatus.VOIDED
    assert (await bank.get_hold(keep.id)).status is HoldStatus.PENDING
    assert await bank.get_held_balance("alice") == 10
    assert await bank.get_balances(["alice", "bob"]) == {"alice": 90, "bob": 0}
    with pytest.raises(HoldStateError):
        await bank.capture(hold.id)
    assert await bank.expire_holds() == 0


async def test_expire_holds_at_a_given_moment(funded: TokenBank) -> None:
    bank = funded
    holds = [await bank.hold("alice", "bob", 10, expires_in=60 * (i + 1)) for i in range(3)]
    assert await bank.expire_holds(now=datetime.now(UTC)) == 0
    assert await bank.expire_holds(now=datetime.now(UTC) + timedelta(seconds=90)) == 1
    assert [(await bank.get_hold(h.id)).status for h in holds] == ["voided", "pending", "pending"]
    assert await bank.expire_holds(now=datetime.now(UTC) + timedelta(hours=1)) == 2
    assert await bank.get_balance("alice") == 100
    assert await bank.get_held_balance("alice") == 0


async def test_an_expired_hold_can_still_be_voided(funded: TokenBank) -> None:
    hold = await funded.hold("alice", "bob", 30, expires_in=0.05)
    await asyncio.sleep(0.1)
    assert (await funded.void(hold.id)).status is HoldStatus.VOIDED
    assert await funded.get_balance("alice") == 100


async def test_the_sweeper_voids_expired_holds_in_the_background(backend: BoundBackend) -> None:
    async with open_bank(backend, initial_supply=100, hold_sweep_interval=0.05) as bank:
        hold = await bank.hold("treasury", "bob", 30, expires_in=0.05)
        for _ in range(100):
            if (await bank.get_hold(hold.id)).status is HoldStatus.VOIDED:
                break
            await asyncio.sleep(0.05)
        assert (await bank.get_hold(hold.id)).status is HoldStatus.VOIDED
        assert await bank.get_balance("treasury") == 100
