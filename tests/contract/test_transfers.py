"""Transfers, mints, burns and batches: effects, returned transactions and failure atomicity."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.backends import BoundBackend
from tests.support import assert_error, history, open_bank, snapshot
from tokenbank import (
    BatchAbortedError,
    InsufficientBalanceError,
    InvalidAccountError,
    InvalidAmountError,
    SupplyCapExceededError,
    TokenBank,
    Transaction,
    TransactionType,
    TransferRequest,
    TransferResult,
)


async def test_transfer_moves_funds_and_returns_the_transaction(bank: TokenBank) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    tx = await bank.transfer("treasury", "alice", "12.5", metadata={"order": 42, "tags": ["a", "b"]}, reason="pay")
    assert isinstance(tx, Transaction)
    assert tx.type is TransactionType.TRANSFER
    assert (tx.from_user_id, tx.to_user_id, tx.amount) == ("treasury", "alice", Decimal("12.50"))
    assert isinstance(tx.amount, Decimal)
    assert tx.metadata == {"order": 42, "tags": ["a", "b"]}
    assert tx.reason == "pay"
    assert tx.idempotency_key is None
    assert uuid.UUID(tx.id).version == 7
    assert tx.timestamp.tzinfo is not None and tx.timestamp.utcoffset() == timedelta(0)
    assert before < tx.timestamp < datetime.now(UTC) + timedelta(seconds=5)
    assert await bank.get_balances(["treasury", "alice"]) == {"treasury": Decimal("987.5"), "alice": Decimal("12.5")}
    assert await bank.transactions.get_transaction_by_id(tx.id) == tx
    [in_history] = await history(bank, "alice")
    assert in_history == tx


async def test_ids_are_time_ordered_and_seq_increases(bank: TokenBank) -> None:
    txs = [await bank.transfer("treasury", "alice", 1) for _ in range(5)]
    assert [tx.seq for tx in txs] == sorted({tx.seq for tx in txs})
    assert [tx.id for tx in txs] == sorted(tx.id for tx in txs)
    assert len({tx.id for tx in txs}) == 5


@pytest.mark.parametrize("amount", [7, Decimal("7.00"), Decimal("7E0"), Decimal("0.07E+2"), "7", "7.0", "007.00"])
async def test_amount_forms_are_exact(bank: TokenBank, amount: int | Decimal | str) -> None:
    tx = await bank.transfer("treasury", "alice", amount)
    assert tx.amount == 7
    assert await bank.get_balance("alice") == 7


async def test_transfer_of_the_whole_balance_then_insufficient(bank: TokenBank) -> None:
    await bank.transfer("treasury", "alice", "10.01")
    before = await snapshot(bank)
    with pytest.raises(InsufficientBalanceError) as caught:
        await bank.transfer("alice", "bob", "10.02")
    assert_error(caught.value, InsufficientBalanceError)
    assert await snapshot(bank) == before
    with pytest.raises(InsufficientBalanceError):
        await bank.transfer("nobody", "bob", "0.01")
    assert await snapshot(bank) == before
    await bank.transfer("alice", "bob", "10.01")
    assert await bank.get_balances(["alice", "bob"]) == {"alice": 0, "bob": Decimal("10.01")}


async def test_self_transfer_is_refused(bank: TokenBank) -> None:
    before = await snapshot(bank)
    with pytest.raises(InvalidAccountError) as caught:
        await bank.transfer("treasury", "treasury", 1)
    assert_error(caught.value, InvalidAccountError)
    assert await snapshot(bank) == before


async def test_mint_creates_supply_with_reason_and_audit(bank: TokenBank) -> None:
    tx = await bank.mint("alice", "5.25", reason="welcome bonus", metadata={"campaign": "spring"})
    assert tx.type is TransactionType.MINT
    assert (tx.from_user_id, tx.to_user_id, tx.amount, tx.reason) == (None, "alice", Decimal("5.25"), "welcome bonus")
    assert tx.metadata == {"campaign": "spring"}
    assert await bank.get_balance("alice") == Decimal("5.25")
    assert await bank.get_total_supply() == Decimal("1005.25")
    [entry, *_] = await bank.get_audit_log()
    assert entry.action == "mint"
    assert entry.details["transaction_id"] == tx.id
    assert entry.details["reason"] == "welcome bonus"
    assert entry.details["to_user_id"] == "alice"
    [seen] = await history(bank, "alice")
    assert seen.reason == "welcome bonus" and seen.metadata == {"campaign": "spring"}


async def test_mint_up_to_max_supply_then_cap_exceeded(backend: BoundBackend) -> None:
    async with open_bank(backend, initial_supply=90, max_supply=100) as bank:
        before = await snapshot(bank)
        with pytest.raises(SupplyCapExceededError) as caught:
            await bank.mint("alice", "10.01")
        assert_error(caught.value, SupplyCapExceededError)
        assert await snapshot(bank) == before
        await bank.mint("alice", 10)
        assert await bank.get_total_supply() == 100
        with pytest.raises(SupplyCapExceededError):
            await bank.mint("alice", "0.01")
        await bank.burn("alice", 1)
        await bank.mint("bob", 1)  # burning makes room again
        assert await bank.get_total_supply() == 100


async def test_burn_destroys_supply_with_reason_and_audit(bank: TokenBank) -> None:
    await bank.transfer("treasury", "alice", 20)
    tx = await bank.burn("alice", "7.5", reason="expired points")
    assert tx.type is TransactionType.BURN
    assert (tx.from_user_id, tx.to_user_id, tx.amount, tx.reason) == ("alice", None, Decimal("7.5"), "expired points")
    assert await bank.get_balance("alice") == Decimal("12.5")
    assert await bank.get_total_supply() == Decimal("992.5")
    [entry, *_] = await bank.get_audit_log()
    assert (entry.action, entry.details["transaction_id"], entry.details["reason"]) == ("burn", tx.id, "expired points")
    before = await snapshot(bank)
    with pytest.raises(InsufficientBalanceError):
        await bank.burn("alice", "12.51")
    assert await snapshot(bank) == before


async def test_burn_of_held_funds_is_refused(bank: TokenBank) -> None:
    await bank.transfer("treasury", "alice", 10)
    await bank.hold("alice", "bob", 6, expires_in=60)
    with pytest.raises(InsufficientBalanceError):
        await bank.burn("alice", 5)
    await bank.burn("alice", 4)
    assert await bank.get_held_balance("alice") == 6


# transfer_many ----------------------------------------------------------------------------------------------
async def test_transfer_many_non_atomic_reports_each_outcome(bank: TokenBank) -> None:
    await bank.transfer("treasury", "alice", 10)
    requests = [
        TransferRequest("alice", "bob", 4, metadata={"i": 0}),
        TransferRequest("alice", "carol", 7),  # only 6 left
        TransferRequest("alice", "bob", 1.5),  # type: ignore[arg-type]  # float: invalid
        TransferRequest("bob", "carol", 3),  # uses what item 0 gave bob
        TransferRequest("alice", "alice", 1),  # self transfer
        TransferRequest("alice", "carol", 6),
    ]
    results = await bank.transfer_many(requests)
    assert all(isinstance(r, TransferResult) for r in results)
    assert [r.request for r in results] == requests
    assert [r.ok for r in results] == [True, False, False, True, False, True]
    assert type(results[1].error) is InsufficientBalanceError
    assert type(results[2].error) is InvalidAmountError
    assert type(results[4].error) is InvalidAccountError
    assert all(r.transaction is None for r in results if not r.ok)
    done = [r.transaction for r in results if r.ok]
    assert all(tx is not None for tx in done)
    assert [tx.seq for tx in done if tx] == sorted(tx.seq for tx in done if tx)
    assert done[0] is not None and done[0].metadata == {"i": 0}
    assert await bank.get_balances(["alice", "bob", "carol"]) == {"alice": 0, "bob": 1, "carol": 9}


async def test_transfer_many_atomic_applies_all_in_order(bank: TokenBank) -> None:
    results = await bank.transfer_many(
        [
            TransferRequest("treasury", "alice", 5),
            TransferRequest("alice", "bob", 5),
            TransferRequest("bob", "carol", 2),
        ],
        atomic=True,
    )
    assert all(r.ok for r in results)
    assert await bank.get_balances(["alice", "bob", "carol"]) == {"alice": 0, "bob": 3, "carol": 2}


@pytest.mark.parametrize(
    ("culprit", "error"),
    [
        (TransferRequest("alice", "carol", 100), InsufficientBalanceError),
        (TransferRequest("alice", "carol", "0.001"), InvalidAmountError),
        (TransferRequest("alice", "", 1), InvalidAccountError),
    ],
    ids=["insufficient", "invalid-amount", "invalid-account"],
)
async def test_transfer_many_atomic_is_all_or_nothing(
    bank: TokenBank, culprit: TransferRequest, error: type[Exception]
) -> None:
    await bank.transfer("treasury", "alice", 10)
    before = await snapshot(bank, ["treasury", "alice", "bob", "carol"])
    requests = [
        TransferRequest("alice", "bob", 2, idempotency_key="batch-1"),
        culprit,
        TransferRequest("treasury", "carol", 1),
    ]
    results = await bank.transfer_many(requests, atomic=True)
    assert [r.ok for r in results] == [False, False, False]
    assert_error(results[1].error, error)  # type: ignore[arg-type]
    for aborted in (results[0], results[2]):
        assert_error(aborted.error, BatchAbortedError)  # type: ignore[arg-type]
        assert aborted.transaction is None
    assert await snapshot(bank, ["treasury", "alice", "bob", "carol"]) == before
    # Nothing was applied, so the idempotency key is still free.
    tx = await bank.transfer("alice", "bob", 2, idempotency_key="batch-1")
    assert tx.amount == 2


async def test_transfer_many_empty(bank: TokenBank) -> None:
    assert await bank.transfer_many([]) == []
    assert await bank.transfer_many([], atomic=True) == []


async def test_transfer_many_idempotent_items_replay(bank: TokenBank) -> None:
    first = await bank.transfer_many([TransferRequest("treasury", "alice", 3, idempotency_key="k1")])
    again = await bank.transfer_many(
        [TransferRequest("treasury", "alice", 3, idempotency_key="k1"), TransferRequest("treasury", "bob", 1)],
        atomic=True,
    )
    assert again[0].transaction == first[0].transaction
    assert await bank.get_balances(["alice", "bob"]) == {"alice": 3, "bob": 1}
