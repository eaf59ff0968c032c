"""Every write kind through the public facade on the Redis store, with the SQL stores' semantics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.redis.conftest import BankFactory
from tokenbank import TokenBank, TransferRequest
from tokenbank.errors import (
    BatchAbortedError,
    HoldNotFoundError,
    HoldStateError,
    IdempotencyConflictError,
    InsufficientBalanceError,
    InvalidAmountError,
    SupplyCapExceededError,
    TransactionNotFoundError,
    TransactionStateError,
)
from tokenbank.services.transactions import TransactionImport

pytestmark = pytest.mark.redis


async def test_initialize_is_idempotent_and_mints_initial_supply(bank: TokenBank, make_bank: BankFactory) -> None:
    info = await bank.get_token_info()
    assert info.total_supply == Decimal("1000.00")
    assert await bank.get_balance("treasury") == Decimal("1000.00")
    again = await make_bank()  # same prefix and symbol: the token exists already
    assert (await again.get_token_info()).total_supply == Decimal("1000.00")
    assert [e.action for e in await bank.get_audit_log()] == ["mint", "token.initialize"]


async def test_settings_changes_are_applied_with_an_audit_entry(bank: TokenBank, make_bank: BankFactory) -> None:
    reopened = await make_bank(name="Taro Coin", emoji="🪙", max_supply="5000")  # settings never change the token
    assert (await reopened.get_token_info()).name != "Taro Coin"
    info = await reopened.configure_token(name="Taro Coin", emoji="🪙", max_supply="5000")
    assert info == await reopened.get_token_info()
    assert (info.name, info.emoji, info.max_supply) == ("Taro Coin", "🪙", Decimal("5000.00"))
    entry = (await bank.get_audit_log(limit=1))[0]
    assert entry.action == "token.configure"
    assert entry.details["max_supply"] == "500000"


async def test_transfer_mint_burn(bank: TokenBank) -> None:
    tx = await bank.transfer("treasury", "alice", "12.5", metadata={"order": 42}, reason="prize")
    assert (tx.type.value, tx.amount, tx.metadata, tx.reason) == ("transfer", Decimal("12.50"), {"order": 42}, "prize")
    minted = await bank.mint("alice", "7.25", reason="bonus")
    burned = await bank.burn("alice", "0.75", reason="fee")
    assert (minted.type.value, burned.type.value) == ("mint", "burn")
    assert await bank.get_balance("alice") == Decimal("19.00")
    assert await bank.get_total_supply() == Decimal("1006.50")
    assert await bank.get_circulating_supply() == Decimal("19.00")
    assert tx.seq < minted.seq < burned.seq
    assert await bank.transactions.get_transaction_by_id(tx.id) == tx
    with pytest.raises(InsufficientBalanceError):
        await bank.transfer("alice", "bob", "19.01")
    with pytest.raises(InsufficientBalanceError):
        await bank.burn("bob", "1")
    assert [e.action for e in await bank.get_audit_log(limit=2)] == ["burn", "mint"]
    assert all(check.ok for check in (await bank.verify()).checks)


async def test_supply_cap(make_bank: BankFactory) -> None:
    bank = await make_bank(max_supply="1000.50")
    await bank.mint("alice", "0.5")
    with pytest.raises(SupplyCapExceededError):
        await bank.mint("alice", "0.01")
    assert await bank.get_total_supply() == Decimal("1000.50")


async def test_idempotent_replay_and_conflict(bank: TokenBank) -> None:
    first = await bank.transfer("treasury", "alice", "10", idempotency_key="order-1")
    again = await bank.transfer("treasury", "alice", "10", idempotency_key="order-1")
    assert again == first
    assert await bank.get_balance("alice") == Decimal("10.00")
    with pytest.raises(IdempotencyConflictError):
        await bank.transfer("treasury", "alice", "11", idempotency_key="order-1")
    with pytest.raises(IdempotencyConflictError):
        await bank.mint("alice", "10", idempotency_key="order-1")
    hold = await bank.hold("treasury", "bob", "3", expires_in=60, idempotency_key="hold-1")
    assert await bank.hold("treasury", "bob", "3", expires_in=60, idempotency_key="hold-1") == hold
    assert await bank.get_held_balance("treasury") == Decimal("3.00")


async def test_resent_write_is_not_applied_twice(bank: TokenBank) -> None:
    """A write resent after a lost reply (same op id) answers with the first outcome instead of redoing it."""
    from tokenbank.status import Status
    from tokenbank.storage.base import OpKind, WriteOp

    op = WriteOp(kind=OpKind.TRANSFER, tx_id="0190f0f0-0000-7000-8000-000000000001", from_user_id="treasury",
                 to_user_id="alice", amount=100)  # fmt: skip
    [first] = await bank.storage.apply([op])
    [second] = await bank.storage.apply([op])
    assert first.status is Status.OK and second.status is Status.REPLAYED
    assert second.transactions == first.transactions
    assert await bank.get_balance("alice") == Decimal("1.00")


async def test_atomic_batch_rolls_back_everything(bank: TokenBank) -> None:
    await bank.transfer("treasury", "alice", "10")
    before = await bank.get_balances(["treasury", "alice", "bob", "carol"])
    results = await bank.transfer_many(
        [
            TransferRequest("treasury", "bob", "5", idempotency_key="b-1"),
            TransferRequest("bob", "carol", "5"),  # funded by the first item
            TransferRequest("alice", "carol", "10.01"),  # the culprit
            TransferRequest("alice", "carol", "1"),
        ],
        atomic=True,
    )
    assert [type(r.error) for r in results] == [
        BatchAbortedError, BatchAbortedError, InsufficientBalanceError, BatchAbortedError,
    ]  # fmt: skip
    assert await bank.get_balances(["treasury", "alice", "bob", "carol"]) == before
    page = await bank.transactions.get_transaction_history("bob")
    assert page.items == []
    assert await bank.get_top_holders() == [(await bank.get_top_holders())[0]]
    # the idempotency key of a rolled-back item is free again
    ok = await bank.transfer_many([TransferRequest("treasury", "bob", "5", idempotency_key="b-1")], atomic=True)
    assert ok[0].ok
    assert all(check.ok for check in (await bank.verify()).checks)


async def test_non_atomic_batch_applies_in_order(bank: TokenBank) -> None:
    results = await bank.transfer_many(
        [
            TransferRequest("treasury", "bob", "5"),
            TransferRequest("bob", "carol", "6"),
            TransferRequest("bob", "carol", "5"),
            TransferRequest("treasury", "dave", "1", idempotency_key="k"),
            TransferRequest("treasury", "dave", "1", idempotency_key="k"),
        ]
    )
    assert [r.ok for r in results] == [True, False, True, True, True]
    assert isinstance(results[1].error, InsufficientBalanceError)
    assert results[3].transaction == results[4].transaction
    assert await bank.get_balances(["bob", "carol", "dave"]) == {
        "bob": Decimal("0.00"), "carol": Decimal("5.00"), "dave": Decimal("1.00"),
    }  # fmt: skip


async def test_holds_capture_void_and_expiry(bank: TokenBank) -> None:
    await bank.transfer("treasury", "alice", "100")
    hold = await bank.hold("alice", "shop", "30", expires_in=60, metadata={"cart": 1})
    assert await bank.get_balance("alice") == Decimal("70.00")
    assert await bank.get_held_balance("alice") == Decimal("30.00")
    with pytest.raises(InsufficientBalanceError):
        await bank.transfer("alice", "bob", "70.01")  # held funds are not spendable
    captured = await bank.capture(hold.id, "20")
    assert (captured.status.value, captured.captured_amount) == ("captured", Decimal("20.00"))
    assert await bank.get_balances(["alice", "shop"]) == {"alice": Decimal("80.00"), "shop": Decimal("20.00")}
    assert await bank.get_held_balance("alice") == Decimal("0.00")
    with pytest.raises(HoldStateError):
        await bank.capture(hold.id)
    with pytest.raises(HoldStateError):
        await bank.void(hold.id)
    history = await bank.transactions.get_transaction_history("alice", limit=2)
    assert [(t.type.value, t.amount, t.reason) for t in history.items] == [
        ("void", Decimal("10.00"), "released by partial capture"), ("capture", Decimal("20.00"), None),
    ]  # fmt: skip

    voided = await bank.void((await bank.hold("alice", "shop", "5", expires_in=60)).id)
    assert voided.status.value == "voided"
    full = await bank.capture((await bank.hold("alice", "shop", "5", expires_in=60)).id)
    assert full.captured_amount == Decimal("5.00")
    with pytest.raises(InvalidAmountError):
        await bank.capture((await bank.hold("alice", "shop", "5", expires_in=60)).id, "6")
    with pytest.raises(HoldNotFoundError):
        await bank.capture("no-such-hold")

    expiring = await bank.hold("alice", "shop", "1", expires_in=0.05)
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert expiring.id in await bank.storage.expired_holds(later, 10)
    assert await bank.expire_holds(later) == 1  # the 60 s hold refused above stays pending
    assert (await bank.get_hold(expiring.id)).status.value == "voided"
    assert await bank.get_held_balance("alice") == Decimal("5.00")
    assert await bank.storage.expired_holds(later, 10) == []
    assert all(check.ok for check in (await bank.verify()).checks)


async def test_capture_after_expiry_is_refused(bank: TokenBank) -> None:
    hold = await bank.hold("treasury", "shop", "1", expires_in=0.01)
    await _sleep(0.05)
    with pytest.raises(HoldStateError):
        await bank.capture(hold.id)
    assert (await bank.void(hold.id)).status.value == "voided"


async def test_reversal_once(bank: TokenBank) -> None:
    tx = await bank.transfer("treasury", "alice", "10")
    reversal = await bank.reverse(tx.id, reason="chargeback")
    assert (reversal.type.value, reversal.from_user_id, reversal.to_user_id) == ("reversal", "alice", "treasury")
    assert reversal.reverses_id == tx.id
    assert await bank.get_balance("alice") == Decimal("0.00")
    with pytest.raises(TransactionStateError):
        await bank.reverse(tx.id, reason="again")
    with pytest.raises(TransactionStateError):
        await bank.reverse(reversal.id, reason="reversal of a reversal")
    with pytest.raises(TransactionNotFoundError):
        await bank.reverse("0190f0f0-0000-7000-8000-00000000dead", reason="x")
    spent = await bank.transfer("treasury", "bob", "10")
    await bank.transfer("bob", "carol", "5")
    with pytest.raises(InsufficientBalanceError):
        await bank.reverse(spent.id, reason="bob spent it")
    assert [e.action for e in await bank.get_audit_log(limit=1)] == ["reverse"]


async def test_history_paging_filters_and_balance_at(bank: TokenBank) -> None:
    stamps = []
    for i in range(1, 8):
        await bank.transfer("treasury", "alice", str(i))
        stamps.append((await bank.transactions.get_transaction_history("alice", limit=1)).items[0].timestamp)
    await bank.burn("alice", "1")
    seen, cursor = [], None
    while True:
        page = await bank.transactions.get_transaction_history("alice", limit=3, cursor=cursor)
        seen += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [t.type.value for t in seen] == ["burn"] + ["transfer"] * 7
    assert [t.seq for t in seen] == sorted((t.seq for t in seen), reverse=True)
    burns = await bank.transactions.get_transaction_history("alice", types=["burn"])
    assert [t.amount for t in burns.items] == [Decimal("1.00")]
    window = await bank.transactions.get_transaction_history("alice", since=stamps[2], until=stamps[4])
    assert [t.amount for t in window.items] == [Decimal("4.00"), Decimal("3.00")]
    assert await bank.get_balance_at("alice", stamps[2]) == Decimal("6.00")
    assert await bank.get_balance_at("alice", stamps[0] - timedelta(seconds=1)) == Decimal("0.00")
    assert await bank.get_balance_at("treasury", stamps[0]) == Decimal("999.00")


async def test_import_with_explicit_id_and_time(bank: TokenBank) -> None:
    at = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    dto = TransactionImport(type="mint", amount="5", to_user_id="alice", id="0190f0f0-0000-7000-8000-0000000000aa",
                            timestamp=at)  # fmt: skip
    tx = await bank.transactions.record_transaction(dto)
    assert (tx.id, tx.timestamp) == (dto.id, at)
    with pytest.raises(IdempotencyConflictError):
        await bank.transactions.record_transaction(dto)
    assert await bank.get_balance("alice") == Decimal("5.00")
    assert (await bank.get_audit_log(limit=1))[0].action == "import.mint"
    assert await bank.get_balance_at("alice", at) == Decimal("5.00")


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)
