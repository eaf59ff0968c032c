"""Reversals (correcting transactions, at most once) and balances at past moments."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tests.support import assert_error, history, snapshot
from tokenbank import (
    InsufficientBalanceError,
    InvalidRequestError,
    TokenBank,
    TransactionNotFoundError,
    TransactionStateError,
    TransactionType,
)


async def test_reverse_undoes_a_transfer_with_a_new_transaction(bank: TokenBank) -> None:
    tx = await bank.transfer("treasury", "alice", "12.5", metadata={"order": 1})
    reversal = await bank.reverse(tx.id, reason="refund", metadata={"ticket": "T-9"})
    assert reversal.type is TransactionType.REVERSAL
    assert (reversal.from_user_id, reversal.to_user_id, reversal.amount) == ("alice", "treasury", Decimal("12.5"))
    assert reversal.reverses_id == tx.id
    assert reversal.reason == "refund" and reversal.metadata == {"ticket": "T-9"}
    assert reversal.seq > tx.seq
    assert await bank.get_balances(["treasury", "alice"]) == {"treasury": 1000, "alice": 0}
    # History is never edited: the original is still there, unchanged.
    assert await bank.transactions.get_transaction_by_id(tx.id) == tx
    assert [t.id for t in await history(bank, "alice")] == [reversal.id, tx.id]
    [entry, *_] = await bank.get_audit_log()
    assert (entry.action, entry.details["transaction_id"], entry.details["reason"]) == (
        "reverse",
        reversal.id,
        "refund",
    )


async def test_a_transfer_is_reversed_at_most_once(bank: TokenBank) -> None:
    tx = await bank.transfer("treasury", "alice", 10)
    await bank.reverse(tx.id, reason="refund")
    before = await snapshot(bank)
    with pytest.raises(TransactionStateError) as caught:
        await bank.reverse(tx.id, reason="refund again")
    assert_error(caught.value, TransactionStateError)
    assert await snapshot(bank) == before


async def test_only_transfers_can_be_reversed(bank: TokenBank) -> None:
    mint = await bank.mint("alice", 10)
    burn = await bank.burn("alice", 1)
    tx = await bank.transfer("alice", "bob", 5)
    reversal = await bank.reverse(tx.id, reason="refund")
    hold = await bank.hold("alice", "bob", 2, expires_in=60)
    await bank.capture(hold.id, 1)
    captured = [t for t in await history(bank, "bob") if t.type is TransactionType.CAPTURE]
    hold_tx = [t for t in await history(bank, "alice") if t.type is TransactionType.HOLD]
    before = await snapshot(bank)
    for target in (mint, burn, reversal, *captured, *hold_tx):
        with pytest.raises(TransactionStateError):
            await bank.reverse(target.id, reason="nope")
    assert await snapshot(bank) == before


async def test_reverse_of_an_unknown_transaction(bank: TokenBank) -> None:
    with pytest.raises(TransactionNotFoundError) as caught:
        await bank.reverse(str(uuid.uuid4()), reason="refund")
    assert_error(caught.value, TransactionNotFoundError)


async def test_reverse_needs_the_receiver_to_still_have_the_funds(bank: TokenBank) -> None:
    tx = await bank.transfer("treasury", "alice", 10)
    await bank.transfer("alice", "bob", 6)
    before = await snapshot(bank)
    with pytest.raises(InsufficientBalanceError) as caught:
        await bank.reverse(tx.id, reason="refund")
    assert_error(caught.value, InsufficientBalanceError)
    assert await snapshot(bank) == before
    await bank.transfer("bob", "alice", 6)
    await bank.reverse(tx.id, reason="refund")  # still reversible once the funds are back
    assert await bank.get_balances(["treasury", "alice", "bob"]) == {"treasury": 1000, "alice": 0, "bob": 0}


async def test_reverse_needs_a_reason(bank: TokenBank) -> None:
    tx = await bank.transfer("treasury", "alice", 10)
    with pytest.raises(InvalidRequestError):
        await bank.reverse(tx.id, reason="")
    assert await bank.get_balance("alice") == 10


async def test_get_balance_at_past_moments(bank: TokenBank) -> None:
    [initial] = await history(bank, "treasury")
    start = initial.timestamp
    t1 = await bank.transfer("treasury", "alice", 50)
    t2 = await bank.transfer("alice", "bob", 20)
    hold = await bank.hold("alice", "bob", 10, expires_in=60)
    [t3] = [t for t in await history(bank, "alice") if t.type is TransactionType.HOLD]
    await bank.capture(hold.id, 4)
    [t4, *_] = await history(bank, "alice")
    t5 = await bank.mint("alice", 7)
    t6 = await bank.reverse(t2.id, reason="refund")
    expected_alice = [(t1, 50), (t2, 30), (t3, 20), (t4, 26), (t5, 33), (t6, 53)]
    assert await bank.get_balance_at("alice", start) == 0
    for tx, balance in expected_alice:
        assert await bank.get_balance_at("alice", tx.timestamp) == balance, tx.type
    assert await bank.get_balance("alice") == 53
    assert await bank.get_balance_at("alice", datetime.now(UTC) + timedelta(days=1)) == 53
    assert await bank.get_balance_at("bob", t2.timestamp) == 20
    assert await bank.get_balance_at("bob", t4.timestamp) == 24
    assert await bank.get_balance_at("bob", t6.timestamp) == 4
    assert await bank.get_balance_at("treasury", start) == 1000
    assert await bank.get_balance_at("treasury", t1.timestamp) == 950
    assert await bank.get_balance_at("nobody", t6.timestamp) == 0
    # Any timezone: the moment counts, not its notation.
    local = t1.timestamp.astimezone(timezone(timedelta(hours=5)))
    assert await bank.get_balance_at("alice", local) == 50


async def test_get_balance_at_needs_an_aware_datetime(bank: TokenBank) -> None:
    with pytest.raises(InvalidRequestError):
        await bank.get_balance_at("alice", datetime.now())
    with pytest.raises(InvalidRequestError):
        await bank.get_balance_at("alice", "2024-01-01")  # type: ignore[arg-type]
