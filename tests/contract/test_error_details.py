"""Support-grade refusals on every store: an insufficient balance says what was available and what was
requested, and every error names the argument at fault (``param``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.support import assert_error, snapshot
from tokenbank import (
    BatchAbortedError,
    HoldNotFoundError,
    HoldStateError,
    IdempotencyConflictError,
    InsufficientBalanceError,
    InvalidAccountError,
    InvalidAmountError,
    InvalidRequestError,
    SupplyCapExceededError,
    TokenBank,
    TransactionNotFoundError,
    TransactionStateError,
    TransferRequest,
)
from tokenbank.status import Status


@pytest.fixture
async def funded(bank: TokenBank) -> TokenBank:
    await bank.transfer("treasury", "alice", "12.50")
    return bank


def _insufficient(exc: BaseException, user: str, available: str, requested: str, param: str = "amount") -> None:
    assert_error(exc, InsufficientBalanceError)
    assert isinstance(exc, InsufficientBalanceError)
    assert (exc.user_id, exc.available, exc.requested, exc.param) == (
        user,
        Decimal(available),
        Decimal(requested),
        param,
    )
    assert type(exc.available) is Decimal and type(exc.requested) is Decimal
    assert exc.status is Status.INSUFFICIENT_BALANCE
    assert f"{available} available" in str(exc) and f"{requested} requested" in str(exc)


async def test_transfer_says_available_and_requested(funded: TokenBank) -> None:
    before = await snapshot(funded)
    with pytest.raises(InsufficientBalanceError) as caught:
        await funded.transfer("alice", "bob", "30")
    _insufficient(caught.value, "alice", "12.50", "30.00")
    assert str(caught.value) == "insufficient balance: 'alice' has 12.50 available, 30.00 requested"
    assert await snapshot(funded) == before


async def test_held_funds_are_not_available(funded: TokenBank) -> None:
    await funded.hold("alice", "bob", "10", expires_in=60)
    with pytest.raises(InsufficientBalanceError) as caught:
        await funded.hold("alice", "carol", "2.51", expires_in=60)
    _insufficient(caught.value, "alice", "2.50", "2.51")
    with pytest.raises(InsufficientBalanceError) as caught:
        await funded.burn("alice", "3")
    _insufficient(caught.value, "alice", "2.50", "3.00")


async def test_an_empty_account_has_zero_available(bank: TokenBank) -> None:
    with pytest.raises(InsufficientBalanceError) as caught:
        await bank.transfer("nobody", "bob", "0.01")
    _insufficient(caught.value, "nobody", "0.00", "0.01")


async def test_reversal_blames_the_transaction(funded: TokenBank) -> None:
    tx = await funded.transfer("alice", "bob", "5")
    await funded.transfer("bob", "carol", "4")
    with pytest.raises(InsufficientBalanceError) as caught:
        await funded.reverse(tx.id, reason="refund")
    _insufficient(caught.value, "bob", "1.00", "5.00", param="transaction_id")


async def test_batch_results_carry_the_details(funded: TokenBank) -> None:
    requests = [
        TransferRequest("alice", "bob", "10"),
        TransferRequest("alice", "bob", "5"),  # 2.50 left after the first
        TransferRequest("carol", "bob", "1"),
        TransferRequest("alice", "alice", "1"),
    ]
    results = await funded.transfer_many(requests)
    assert [r.ok for r in results] == [True, False, False, False]
    assert results[1].error is not None and results[2].error is not None
    _insufficient(results[1].error, "alice", "2.50", "5.00")
    _insufficient(results[2].error, "carol", "0.00", "1.00")
    assert isinstance(results[3].error, InvalidAccountError) and results[3].error.param == "to_user_id"


async def test_atomic_batch_culprit_sees_the_balance_before_the_batch(funded: TokenBank) -> None:
    before = await snapshot(funded)
    results = await funded.transfer_many(
        [TransferRequest("alice", "bob", "10"), TransferRequest("alice", "bob", "5")], atomic=True
    )
    assert results[0].error is not None and results[1].error is not None
    assert_error(results[0].error, BatchAbortedError)
    assert results[0].error.param is None
    _insufficient(results[1].error, "alice", "12.50", "5.00")  # nothing applied: all 12.50 still there
    assert await snapshot(funded) == before


CALLS: list[tuple[str, Any, type[Exception], str]] = [
    ("amount", lambda b: b.transfer("treasury", "bob", 0.5), InvalidAmountError, "amount"),
    ("sender", lambda b: b.transfer("", "bob", 1), InvalidAccountError, "from_user_id"),
    ("receiver", lambda b: b.transfer("treasury", "x" * 129, 1), InvalidAccountError, "to_user_id"),
    ("self", lambda b: b.transfer("treasury", "treasury", 1), InvalidAccountError, "to_user_id"),
    ("metadata", lambda b: b.transfer("treasury", "bob", 1, metadata=[1]), InvalidRequestError, "metadata"),
    ("reason", lambda b: b.transfer("treasury", "bob", 1, reason="\x00"), InvalidRequestError, "reason"),
    ("key", lambda b: b.transfer("treasury", "bob", 1, idempotency_key=""), InvalidRequestError, "idempotency_key"),
    ("expiry", lambda b: b.hold("treasury", "bob", 1, expires_in=0), InvalidRequestError, "expires_in"),
    ("mint", lambda b: b.mint("\n", 1), InvalidAccountError, "to_user_id"),
    ("burn", lambda b: b.burn(7, 1), InvalidAccountError, "user_id"),
    ("hold id", lambda b: b.capture("", 1), InvalidRequestError, "hold_id"),
    ("no hold", lambda b: b.void("no-such-hold"), HoldNotFoundError, "hold_id"),
    ("get hold", lambda b: b.get_hold("no-such-hold"), HoldNotFoundError, "hold_id"),
    ("no tx", lambda b: b.reverse("no-such-tx", reason="x"), TransactionNotFoundError, "transaction_id"),
    ("no reason", lambda b: b.reverse("no-such-tx", reason=""), InvalidRequestError, "reason"),
    ("get tx", lambda b: b.transactions.get_transaction_by_id("nope"), TransactionNotFoundError, "transaction_id"),
    ("balance", lambda b: b.get_balance(""), InvalidAccountError, "user_id"),
]


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(("call", "error", "param"), [c[1:] for c in CALLS], ids=[c[0] for c in CALLS])
async def test_errors_name_the_argument(shared_bank: TokenBank, call: Any, error: type[Exception], param: str) -> None:
    """One bank per backend for the whole table: every call is refused and must change nothing."""
    before = await snapshot(shared_bank)
    with pytest.raises(error) as caught:
        await call(shared_bank)
    assert getattr(caught.value, "param", None) == param
    assert await snapshot(shared_bank) == before


async def test_refusals_from_the_store_name_the_argument(funded: TokenBank) -> None:
    bank = funded
    await bank.transfer("alice", "bob", 1, idempotency_key="k1")
    with pytest.raises(IdempotencyConflictError) as conflict:
        await bank.transfer("alice", "bob", 2, idempotency_key="k1")
    assert conflict.value.param == "idempotency_key"
    hold = await bank.hold("alice", "bob", 1, expires_in=60)
    with pytest.raises(InvalidAmountError) as too_much:
        await bank.capture(hold.id, 2)
    assert too_much.value.param == "amount"
    await bank.void(hold.id)
    with pytest.raises(HoldStateError) as state:
        await bank.capture(hold.id)
    assert state.value.param == "hold_id"
    mint = await bank.mint("bob", 1)
    with pytest.raises(TransactionStateError) as not_reversible:
        await bank.reverse(mint.id, reason="no")
    assert not_reversible.value.param == "transaction_id"


async def test_supply_cap_names_the_argument(bank: TokenBank) -> None:
    await bank.configure_token(max_supply=1000)
    with pytest.raises(SupplyCapExceededError) as mint:
        await bank.mint("bob", 1)
    assert mint.value.param == "amount"
    with pytest.raises(SupplyCapExceededError) as cap:
        await bank.configure_token(max_supply=999)
    assert cap.value.param == "max_supply"


async def test_a_reversal_conflict_names_the_key(funded: TokenBank) -> None:
    first = await funded.transfer("alice", "bob", 1)
    second = await funded.transfer("alice", "bob", 2)
    await funded.reverse(first.id, reason="refund", idempotency_key="rev")
    with pytest.raises(IdempotencyConflictError) as caught:
        await funded.reverse(second.id, reason="refund", idempotency_key="rev")
    assert caught.value.param == "idempotency_key"
    with pytest.raises(TransactionStateError) as twice:
        await funded.reverse(first.id, reason="again")
    assert twice.value.param == "transaction_id"
