"""Idempotency keys: same request -> the first result, applied once; different request -> conflict."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.support import assert_error, history, snapshot
from tokenbank import IdempotencyConflictError, TokenBank


async def test_same_key_same_transfer_returns_the_first_transaction_once(bank: TokenBank) -> None:
    first = await bank.transfer("treasury", "alice", 5, idempotency_key="order-42", metadata={"order": 42})
    again = await bank.transfer("treasury", "alice", "5.00", idempotency_key="order-42", metadata={"order": 42})
    assert again == first
    assert first.idempotency_key == "order-42"
    assert await bank.get_balance("alice") == 5
    assert len(await history(bank, "alice")) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"amount": 6},
        {"to_user_id": "bob"},
        {"from_user_id": "bob"},
        {"metadata": {"order": 43}},
        {"metadata": None},
        {"reason": "other"},
    ],
    ids=["amount", "receiver", "sender", "metadata", "no-metadata", "reason"],
)
async def test_same_key_different_transfer_conflicts(bank: TokenBank, change: dict[str, Any]) -> None:
    await bank.transfer("treasury", "bob", 50)
    request: dict[str, Any] = {
        "from_user_id": "treasury",
        "to_user_id": "alice",
        "amount": 5,
        "metadata": {"order": 42},
    }
    await bank.transfer(**request, idempotency_key="order-42")
    before = await snapshot(bank)
    with pytest.raises(IdempotencyConflictError) as caught:
        await bank.transfer(**{**request, **change}, idempotency_key="order-42")
    assert_error(caught.value, IdempotencyConflictError)
    assert await snapshot(bank) == before


async def test_key_of_a_failed_request_stays_free(bank: TokenBank) -> None:
    await bank.transfer("treasury", "alice", 1)
    with pytest.raises(Exception, match="insufficient"):
        await bank.transfer("alice", "bob", 2, idempotency_key="retry-me")
    await bank.transfer("treasury", "alice", 1)
    tx = await bank.transfer("alice", "bob", 2, idempotency_key="retry-me")
    assert await bank.get_balance("bob") == 2
    assert (await bank.transfer("alice", "bob", 2, idempotency_key="retry-me")) == tx


async def test_mint_burn_and_hold_keys(bank: TokenBank) -> None:
    mint = await bank.mint("alice", 10, reason="bonus", idempotency_key="mint-1")
    assert await bank.mint("alice", 10, reason="bonus", idempotency_key="mint-1") == mint
    burn = await bank.burn("alice", 3, idempotency_key="burn-1")
    assert await bank.burn("alice", 3, idempotency_key="burn-1") == burn
    hold = await bank.hold("alice", "bob", 2, expires_in=60, idempotency_key="hold-1")
    assert await bank.hold("alice", "bob", 2, expires_in=60, idempotency_key="hold-1") == hold
    assert await bank.get_balance("alice") == 5
    assert await bank.get_held_balance("alice") == 2
    assert await bank.get_total_supply() == 1007
    attempts: list[Callable[[], Awaitable[object]]] = [
        lambda: bank.mint("alice", 11, reason="bonus", idempotency_key="mint-1"),
        lambda: bank.burn("alice", 1, idempotency_key="burn-1"),
        lambda: bank.hold("alice", "bob", 1, expires_in=60, idempotency_key="hold-1"),
        lambda: bank.hold("alice", "bob", 2, expires_in=61, idempotency_key="hold-1"),
        lambda: bank.transfer("alice", "bob", 10, idempotency_key="mint-1"),  # keys are shared across kinds
        lambda: bank.mint("alice", 3, idempotency_key="burn-1"),
    ]
    before = await snapshot(bank)
    for attempt in attempts:
        with pytest.raises(IdempotencyConflictError):
            await attempt()
    assert await snapshot(bank) == before


async def test_replayed_hold_shows_its_current_state(bank: TokenBank) -> None:
    await bank.transfer("treasury", "alice", 10)
    hold = await bank.hold("alice", "bob", 4, expires_in=60, idempotency_key="h")
    await bank.capture(hold.id)
    replay = await bank.hold("alice", "bob", 4, expires_in=60, idempotency_key="h")
    assert replay.id == hold.id
    assert replay.status == "captured"
    assert await bank.get_balances(["alice", "bob"]) == {"alice": 6, "bob": 4}


async def test_reverse_key(bank: TokenBank) -> None:
    tx = await bank.transfer("treasury", "alice", 10)
    reversal = await bank.reverse(tx.id, reason="refund", idempotency_key="rev-1")
    assert await bank.reverse(tx.id, reason="refund", idempotency_key="rev-1") == reversal
    assert await bank.get_balance("alice") == 0
