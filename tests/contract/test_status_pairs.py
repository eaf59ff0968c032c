"""Outcomes that share one exception class are told apart by ``status``, on every store.

``HoldStateError`` stands for HOLD_NOT_PENDING and HOLD_EXPIRED, ``TransactionStateError`` for NOT_REVERSIBLE
and ALREADY_REVERSED, ``IdempotencyConflictError`` for IDEMPOTENCY_CONFLICT and DUPLICATE_TRANSACTION. Each
store (the SQLite writer, PL/pgSQL, Lua) writes these numbers itself, so a store answering the other number of
a pair would still raise the right class: these tests pin the number.
"""

from __future__ import annotations

import asyncio

import pytest

from tokenbank import HoldStateError, IdempotencyConflictError, TokenBank, TransactionStateError
from tokenbank.status import Status


async def _status_of(call: object, expected: type[Exception]) -> Status | None:
    with pytest.raises(expected) as caught:
        await call  # type: ignore[misc]
    return getattr(caught.value, "status", None)


async def test_hold_no_longer_pending(bank: TokenBank) -> None:
    await bank.transfer("treasury", "alice", 50)
    hold = await bank.hold("alice", "bob", 10, expires_in=60)
    await bank.void(hold.id)
    assert await _status_of(bank.capture(hold.id), HoldStateError) is Status.HOLD_NOT_PENDING
    assert await _status_of(bank.void(hold.id), HoldStateError) is Status.HOLD_NOT_PENDING


async def test_hold_expired(bank: TokenBank) -> None:
    await bank.transfer("treasury", "alice", 50)
    hold = await bank.hold("alice", "bob", 10, expires_in=0.05)
    await asyncio.sleep(0.1)
    assert await _status_of(bank.capture(hold.id), HoldStateError) is Status.HOLD_EXPIRED


async def test_not_reversible(bank: TokenBank) -> None:
    mint = await bank.mint("alice", 10)
    assert await _status_of(bank.reverse(mint.id, reason="r"), TransactionStateError) is Status.NOT_REVERSIBLE


async def test_already_reversed(bank: TokenBank) -> None:
    tx = await bank.transfer("treasury", "alice", 10)
    await bank.reverse(tx.id, reason="r")
    assert await _status_of(bank.reverse(tx.id, reason="again"), TransactionStateError) is Status.ALREADY_REVERSED


async def test_idempotency_conflict(bank: TokenBank) -> None:
    await bank.transfer("treasury", "alice", 5, idempotency_key="k")
    call = bank.transfer("treasury", "alice", 6, idempotency_key="k")
    assert await _status_of(call, IdempotencyConflictError) is Status.IDEMPOTENCY_CONFLICT


async def test_duplicate_transaction(bank: TokenBank) -> None:
    entry = {"type": "mint", "amount": 5, "to_user_id": "alice"}
    first = await bank.transactions.record_transaction(entry)
    again = bank.transactions.record_transaction({**entry, "id": first.id})
    assert await _status_of(again, IdempotencyConflictError) is Status.DUPLICATE_TRANSACTION
