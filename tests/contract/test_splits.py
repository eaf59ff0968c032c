"""``transfer_split`` on every backend: exact legs in one atomic store call, a shared split id, the rounding rule,
idempotent replays, and refusals that change nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.support import assert_error, history, snapshot
from tokenbank import (
    IdempotencyConflictError,
    InsufficientBalanceError,
    InvalidAmountError,
    TokenBank,
    TransactionType,
)

ACCOUNTS = ("treasury", "alice", "bob", "carol", "dave")


def paid(txs: list[Any]) -> list[tuple[str, str]]:
    return [(tx.to_user_id, format(tx.amount, "f")) for tx in txs]


async def test_a_split_pays_every_leg_in_one_atomic_store_call(
    bank: TokenBank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The creator platform of docs/splits.md: 10 % fee, 2.5 % referral, a fixed 4.99, the rest to the creator."""
    calls: list[tuple[int, bool]] = []
    apply = bank.storage.apply

    async def counted(ops: Any, *, atomic: bool = False) -> Any:
        calls.append((len(ops), atomic))
        return await apply(ops, atomic=atomic)

    monkeypatch.setattr(bank.storage, "apply", counted)
    txs = await bank.transfer_split(
        "treasury", "100.00", [("platform", "10%"), ("referrer", "2.5%"), ("shipping", "4.99")],
        remainder_to="creator", metadata={"order": 42}, reason="purchase",
    )  # fmt: skip
    assert calls == [(4, True)]
    assert paid(txs) == [("platform", "10.00"), ("referrer", "2.50"), ("shipping", "4.99"), ("creator", "82.51")]
    split_id = txs[0].split_id
    assert split_id and all(tx.split_id == split_id for tx in txs)
    for tx in txs:
        assert (tx.type, tx.from_user_id, tx.reason) == (TransactionType.TRANSFER, "treasury", "purchase")
        assert not tx.replayed
        assert tx.metadata == {"order": 42, "split_id": split_id}
        assert tx.idempotency_key is None
    assert await bank.get_balance("treasury") == Decimal("900.00")
    assert await bank.get_balance("creator") == Decimal("82.51")
    sent = [tx for tx in await history(bank, "treasury") if tx.split_id == split_id]
    assert sorted(tx.id for tx in sent) == sorted(tx.id for tx in txs)
    assert await bank.transactions.get_transaction_by_id(txs[3].id) == txs[3]


ROUNDING: list[tuple[str, str, list[tuple[str, str]], str | None, list[tuple[str, str]]]] = [
    # label, amount, legs, remainder_to, expected payments (legs of 0 units write nothing)
    ("thirds-of-1.00", "1.00", [("a", "33.33%"), ("b", "33.33%"), ("c", "33.33%")], None,
     [("a", "0.34"), ("b", "0.33"), ("c", "0.33")]),
    ("thirds-remainder-elsewhere", "1.00", [("a", "33.33%"), ("b", "33.33%"), ("c", "33.33%")], "d",
     [("a", "0.33"), ("b", "0.33"), ("c", "0.33"), ("d", "0.01")]),
    ("one-unit-tie-goes-to-the-earlier-leg", "0.01", [("a", "50%"), ("b", "50%")], "c", [("a", "0.01")]),
    ("odd-units", "0.03", [("a", "50%"), ("b", "50%")], None, [("a", "0.02"), ("b", "0.01")]),
    ("largest-fraction-first", "0.10", [("a", "14%"), ("b", "17%"), ("c", "69%")], None,
     [("a", "0.01"), ("b", "0.02"), ("c", "0.07")]),
    ("remainder-to-a-leg", "10.00", [("a", "1.00"), ("b", "10%")], "b", [("a", "1.00"), ("b", "9.00")]),
    ("all-to-the-remainder", "0.01", [("a", "10%")], "b", [("b", "0.01")]),
]  # fmt: skip


async def test_rounding_is_exact_and_follows_the_rule(bank: TokenBank) -> None:
    """Every case on one bank per backend: legs as the rule says, and exactly the amount leaves the sender."""
    for label, amount, legs, remainder_to, expected in ROUNDING:
        before = await bank.get_balance("treasury")
        txs = await bank.transfer_split("treasury", amount, legs, remainder_to=remainder_to)
        assert paid(txs) == expected, label
        assert sum(tx.amount for tx in txs) == Decimal(amount), label
        assert before - await bank.get_balance("treasury") == Decimal(amount), label
    # 100 legs of 1 % of 0.99: 0.0099 each, so 99 legs get one unit in leg order and the last one none.
    legs = [(f"user-{n:03}", "1%") for n in range(100)]
    txs = await bank.transfer_split("treasury", "0.99", legs)
    assert [tx.to_user_id for tx in txs] == [f"user-{n:03}" for n in range(99)]
    assert {tx.amount for tx in txs} == {Decimal("0.01")}


async def test_a_refused_split_changes_nothing(bank: TokenBank) -> None:
    await bank.transfer("treasury", "alice", "10.00")
    before = await snapshot(bank, ACCOUNTS)
    # The first leg alone is covered; the split as a whole is not.
    with pytest.raises(InsufficientBalanceError) as caught:
        await bank.transfer_split("alice", "10.01", [("bob", "90%"), ("carol", "10%")])
    error = caught.value
    assert_error(error, InsufficientBalanceError)
    assert (error.user_id, error.available, error.requested, error.param) == (
        "alice", Decimal("10.00"), Decimal("10.01"), "amount"
    )  # fmt: skip
    assert await snapshot(bank, ACCOUNTS) == before
    # A later leg refused by the store (its key was used before): the split fails with that leg's own error.
    await bank.transfer("treasury", "dave", "1", idempotency_key="order-7:1")
    before = await snapshot(bank, ACCOUNTS)
    with pytest.raises(IdempotencyConflictError) as conflict:
        await bank.transfer_split("alice", "2", [("bob", "50%"), ("carol", "50%")], idempotency_key="order-7")
    assert_error(conflict.value, IdempotencyConflictError)
    assert conflict.value.param == "idempotency_key"
    assert await snapshot(bank, ACCOUNTS) == before
    with pytest.raises(InvalidAmountError):
        await bank.transfer_split("alice", "1", [("bob", "60%"), ("carol", "0.50")])
    assert await snapshot(bank, ACCOUNTS) == before


async def test_an_idempotent_split_replays_whole_and_a_changed_one_conflicts(bank: TokenBank) -> None:
    legs = [("bob", "25%"), ("carol", "0.10")]
    first = await bank.transfer_split("treasury", "3.00", legs, remainder_to="dave", idempotency_key="cart-1")
    assert [tx.idempotency_key for tx in first] == ["cart-1:0", "cart-1:1", "cart-1:2"]
    again = await bank.transfer_split("treasury", "3.00", legs, remainder_to="dave", idempotency_key="cart-1")
    assert [tx.id for tx in again] == [tx.id for tx in first]
    assert all(tx.replayed for tx in again) and again[0].split_id == first[0].split_id
    assert await bank.get_balances(["bob", "carol", "dave"]) == {
        "bob": Decimal("0.75"), "carol": Decimal("0.10"), "dave": Decimal("2.15")
    }  # fmt: skip
    before = await snapshot(bank, ACCOUNTS)
    for changed in (
        {"legs": [("bob", "25%"), ("carol", "0.11")], "remainder_to": "dave"},
        {"legs": legs, "remainder_to": None},  # the remainder now goes to bob: other legs
        {"legs": legs[:1], "remainder_to": "dave"},
    ):
        with pytest.raises(IdempotencyConflictError):
            await bank.transfer_split("treasury", "3.00", idempotency_key="cart-1", **changed)
        assert await snapshot(bank, ACCOUNTS) == before
    # A key too long for the ":n" suffix is hashed, and still replays.
    long_key = "k" * 128
    keyed = await bank.transfer_split("treasury", "1", [("bob", "50%"), ("carol", "50%")], idempotency_key=long_key)
    assert all(
        tx.idempotency_key is not None and len(tx.idempotency_key) <= 128 and tx.idempotency_key != long_key
        for tx in keyed
    )
    replayed = await bank.transfer_split("treasury", "1", [("bob", "50%"), ("carol", "50%")], idempotency_key=long_key)
    assert [tx.id for tx in replayed] == [tx.id for tx in keyed] and replayed[0].replayed
