"""Concurrency: the scripts are atomic, so a balance never goes below zero under any interleaving."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from tests.redis.conftest import BankFactory
from tokenbank import TransferRequest
from tokenbank.errors import InsufficientBalanceError

pytestmark = pytest.mark.redis


async def test_1000_concurrent_transfers_from_an_account_covering_500(make_bank: BankFactory) -> None:
    bank = await make_bank(decimals=0, initial_supply="500")
    other = await make_bank(decimals=0, initial_supply="500")  # a second client on the same token
    await bank.transfer("treasury", "payer", 500)

    async def pay(i: int) -> bool:
        try:
            await (bank if i % 2 else other).transfer("payer", f"payee-{i % 7}", 1, idempotency_key=f"pay-{i}")
        except InsufficientBalanceError:
            return False
        return True

    outcomes = await asyncio.gather(*(pay(i) for i in range(1000)))
    assert sum(outcomes) == 500
    assert await bank.get_balance("payer") == 0
    payees = await bank.get_balances([f"payee-{i}" for i in range(7)])
    assert sum(payees.values()) == Decimal(500)
    assert all(check.ok for check in (await bank.verify()).checks)


async def test_concurrent_atomic_batches_and_reversals(make_bank: BankFactory) -> None:
    bank = await make_bank(decimals=0, initial_supply="1000")
    tx = await bank.transfer("treasury", "a", 100)
    reversals = await asyncio.gather(*(bank.reverse(tx.id, reason="race") for _ in range(20)), return_exceptions=True)
    assert sum(1 for r in reversals if not isinstance(r, Exception)) == 1

    async def batch(i: int) -> bool:
        results = await bank.transfer_many(
            [TransferRequest("treasury", f"b{i}", 10), TransferRequest("treasury", f"c{i}", 10)], atomic=True
        )
        return all(r.ok for r in results)

    outcomes = await asyncio.gather(*(batch(i) for i in range(60)))
    assert sum(outcomes) == 50  # 1000 in the treasury pays 50 batches of 20
    assert await bank.get_balance("treasury") == 0
    assert all(check.ok for check in (await bank.verify()).checks)


async def test_more_unbatched_writers_than_connections_all_get_through(make_bank: BankFactory) -> None:
    """64 tasks looping on 2 connections: every write waits its turn, none fails for waiting. (The pool alone
    woke its waiters in no order: a caller that came back first took the connection, and some waited past the
    server timeout and failed with StorageUnavailableError.)"""
    bank = await make_bank(decimals=0, initial_supply="1000000", batch_writes=False, pool_size=2)
    done = 0
    deadline = asyncio.get_running_loop().time() + 4

    async def writer(n: int) -> None:
        nonlocal done
        while asyncio.get_running_loop().time() < deadline:
            await bank.transfer("treasury", f"w{n % 8}", 1)
            done += 1

    await asyncio.gather(*(writer(n) for n in range(64)))
    assert await bank.get_balance("treasury") == 1_000_000 - done
