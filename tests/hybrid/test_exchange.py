"""Hybrid mode: an exchange is one Redis script over the ledger group's hash tag; each token's stream carries its
own leg, so the sync lands both legs in PostgreSQL exactly, where sql-mode banks read them linked."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from tests.hybrid.conftest import BankFactory
from tests.hybrid.support import assert_stores_equal, postgres_accounts, postgres_supply, store_of
from tokenbank import InsufficientBalanceError, exchange

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


async def test_both_legs_reach_postgresql_exactly_and_sql_banks_read_them(make_bank: BankFactory) -> None:
    coins = await make_bank(symbol="COIN", ledger_group="game")
    gems = await make_bank(symbol="GEM", ledger_group="game", initial_supply=500, decimals=0)
    await coins.transfer("treasury", "alice", 10)
    await gems.transfer("treasury", "shop", 300)
    outcomes = await asyncio.gather(
        *(exchange((coins, "alice", "0.50"), (gems, "shop", 2), idempotency_key=f"buy-{n}") for n in range(60)),
        return_exceptions=True,
    )
    applied = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(applied) == 20
    assert all(isinstance(o, InsufficientBalanceError) for o in outcomes if isinstance(o, BaseException))
    for bank in (coins, gems):
        await assert_stores_equal(store_of(bank))
    assert await postgres_accounts(store_of(coins)) == {"treasury": (99_000, 0), "shop": (1_000, 0)}
    assert await postgres_accounts(store_of(gems)) == {"treasury": (200, 0), "shop": (260, 0), "alice": (40, 0)}
    assert await postgres_supply(store_of(coins)) == 100_000
    assert await postgres_supply(store_of(gems)) == 500

    sql_coins = await make_bank(symbol="COIN", storage_mode="sql")
    sql_gems = await make_bank(symbol="GEM", storage_mode="sql", decimals=0)
    ex = applied[0]
    pay = await sql_coins.transactions.get_transaction_by_id(ex.pay.id)
    receive = await sql_gems.transactions.get_transaction_by_id(ex.receive.id)
    assert (pay, receive) == (ex.pay, ex.receive)
    assert pay.metadata is not None and pay.metadata["exchange_tx_id"] == receive.id
    assert receive.metadata is not None and receive.metadata["exchange_tx_id"] == pay.id
    assert await sql_gems.get_balance("alice") == 40
    assert (await sql_coins.verify()).ok and (await sql_gems.verify()).ok
    # A replay after the sync answers from Redis with the first exchange, and PostgreSQL still holds it once.
    again = await exchange((coins, "alice", "0.50"), (gems, "shop", 2), idempotency_key=ex.pay.idempotency_key)
    assert again.replayed
    assert (again.id, again.pay, again.receive) == (ex.id, ex.pay, ex.receive)
    await assert_stores_equal(store_of(gems))
    assert await sql_gems.get_balance("alice") == Decimal(40)
