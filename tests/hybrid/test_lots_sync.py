"""Hybrid mode copies credit lots into PostgreSQL: after the sync drains, PostgreSQL's lots, lot moves and account
flags are Redis's (tb_replicate_batch of revision 0013); reconcile compares the lots, rebuild_cache restores them,
and a bank in ``sql`` mode on the same database reads the same lots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.hybrid.conftest import BankFactory, SettingsFactory
from tests.hybrid.support import assert_stores_equal, drain, store_of
from tokenbank import TokenBank
from tokenbank.ids import new_id
from tokenbank.status import Status
from tokenbank.storage.base import OpKind, WriteOp
from tokenbank.storage.hybrid.backend import HybridStorage
from tokenbank.storage.wire import lot_moves
from tokenbank.testing import ManualClock

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


async def _rows(store: HybridStorage, query: str) -> list[Any]:
    """PostgreSQL's rows of this token."""
    statement = sa.text(query).bindparams(token=store.sql.token)
    return await store.sql.run_sync(lambda conn: list(conn.execute(statement)))


async def test_postgresql_keeps_the_lots_redis_keeps_after_every_kind_of_move(
    hybrid_settings: SettingsFactory,
) -> None:
    clock = ManualClock(START)
    async with TokenBank(hybrid_settings(decimals=0), clock=clock) as bank:
        store = store_of(bank)

        def op(kind: OpKind, **fields: Any) -> WriteOp:
            fields.setdefault("tx_id", new_id())
            return WriteOp(kind=kind, timestamp=clock.now(), **fields)

        a, b, c = new_id(), new_id(), new_id()
        hold_void, hold_capture = new_id(), new_id()
        transfer = op(OpKind.TRANSFER, from_user_id="alice", to_user_id="bob", amount=60)
        steps = [
            op(OpKind.GRANT, tx_id=a, to_user_id="alice", amount=50, expires_at=START + HOUR, category="promo"),
            op(OpKind.GRANT, tx_id=b, to_user_id="alice", amount=30, available_at=START),
            op(OpKind.GRANT, tx_id=c, from_user_id="treasury", to_user_id="bob", amount=20),
            transfer,
            op(OpKind.HOLD, from_user_id="alice", to_user_id="shop", amount=15, hold_id=hold_void,
               expires_at=START + 5 * HOUR),
            op(OpKind.VOID, hold_id=hold_void, reason="no"),
            op(OpKind.HOLD, from_user_id="alice", to_user_id="shop", amount=10, hold_id=hold_capture,
               expires_at=START + 5 * HOUR),
            op(OpKind.CAPTURE, hold_id=hold_capture, amount=4),
            op(OpKind.REVERSE, reverses_id=transfer.tx_id, reason="refund"),
        ]  # fmt: skip
        for step in steps:
            (result,) = await store.apply([step])
            assert result.status is Status.OK, (step.kind, result.status)
        clock.advance(2 * HOUR)
        (expired,) = await store.apply([op(OpKind.EXPIRE, lot_id=a, from_user_id="alice", to_user_id="breakage")])
        assert expired.transactions[0].amount == 50

        await assert_stores_equal(store)
        rows = await _rows(store, "SELECT id, user_id, amount, remaining, expires_at, available_at, category "
                                  "FROM tb_lots WHERE token = :token")  # fmt: skip
        postgres_lots = {r.id: (r.user_id, r.amount, r.remaining, r.expires_at, r.available_at, r.category)
                         for r in rows if r.remaining > 0}  # fmt: skip
        redis_lots = {
            lot.id: (lot.user_id, lot.amount, lot.remaining, lot.expires_at, lot.available_at, lot.category)
            for user in ("alice", "bob", "treasury")
            for lot in await store.redis.get_lots(user)
        }
        assert postgres_lots == redis_lots and set(postgres_lots) == {b}
        journal = await _rows(store, "SELECT id, lots FROM tb_transactions WHERE token = :token")
        for row in journal:
            tx = await store.redis.get_transaction(row.id)
            assert tx is not None and lot_moves(row.lots) == tx.lots, row.id
        assert sum(1 for row in journal if row.lots) >= 7
        holds = {
            r.id: lot_moves(r.lots) for r in await _rows(store, "SELECT id, lots FROM tb_holds WHERE token = :token")
        }
        assert holds == {hold_void: ((b, 15),), hold_capture: ((b, 10),)}
        flags = dict(await _rows(store, "SELECT user_id, has_lots FROM tb_accounts WHERE token = :token"))
        assert flags["alice"] and flags["bob"] and not flags["treasury"] and not flags["breakage"]


async def test_a_sql_bank_reads_the_lots_and_a_rebuilt_cache_keeps_spending_them(make_bank: BankFactory) -> None:
    """What hybrid mode granted is what a ``sql``-mode bank on the same database sees once synced; a lot drift is
    reported by reconcile; after rebuild_cache, Redis spends the same lots in the same order and a void gives back
    to a lot a hold took before the rebuild."""
    bank = await make_bank()
    store = store_of(bank)
    soon = await bank.grant("alice", 30, expires_at=datetime.now(UTC) + HOUR, category="promo")
    later = await bank.grant("alice", 40, expires_at=datetime.now(UTC) + 2 * HOUR)
    await bank.transfer("alice", "bob", 10)
    hold = await bank.hold("alice", "shop", 25, expires_in=3600)  # 20 of soon, 5 of later
    await drain(store)
    sql_bank = await make_bank(storage_mode="sql")
    assert await sql_bank.get_lots("alice") == await bank.get_lots("alice")
    assert await sql_bank.get_balance_detail("alice") == await bank.get_balance_detail("alice")
    assert (await bank.reconcile()).lot_mismatches == []

    client, keys = store.redis.client, store.redis.keys
    for lot in await bank.get_lots("alice"):  # Redis loses alice's lots
        await client.hdel(keys.lots, lot.id)
    await client.delete(keys.lot_order("alice"), keys.lot_avail("alice"))
    assert (await bank.reconcile()).lot_mismatches == [later.id]
    await bank.rebuild_cache(force=True)
    assert [(lot.id, lot.amount) for lot in await bank.get_lots("alice")] == [(later.id, 35)]
    await bank.void(hold.id)
    assert [(lot.id, lot.amount) for lot in await bank.get_lots("alice")] == [(soon.id, 20), (later.id, 40)]
    await drain(store)
    assert await sql_bank.get_lots("alice") == await bank.get_lots("alice")
    assert (await bank.reconcile()).ok
