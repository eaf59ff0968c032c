"""The migration path: a redis-mode ledger switched to hybrid is backfilled; a sql-mode bank then reads the same
ledger from PostgreSQL (history, balances, supply, holds) and carries on writing after it."""

from __future__ import annotations

from typing import cast

import pytest

from tests.hybrid.conftest import BankFactory
from tests.hybrid.support import assert_stores_equal, drain, postgres_accounts, postgres_ids, store_of
from tokenbank import TokenBank, TransferRequest
from tokenbank.storage.hybrid import stream
from tokenbank.storage.hybrid.backend import HybridStorage
from tokenbank.storage.hybrid.replicate import sync_state

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


async def _redis_mode_history(bank: TokenBank) -> dict[str, str]:
    """Every kind of entry; returns ids worth looking at afterwards."""
    paid = await bank.transfer("treasury", "dave", 10, idempotency_key="order-1", metadata={"order": 1})
    await bank.transfer("treasury", "alice", 100)
    await bank.transfer("alice", "bob", 30)
    await bank.mint("carol", 50, reason="bonus")
    await bank.burn("carol", 5, reason="fee")
    captured = await bank.hold("alice", "bob", 20, expires_in=60)
    await bank.capture(captured.id, 15)
    pending = await bank.hold("alice", "carol", 7, expires_in=3600)
    reversal = await bank.reverse(paid.id, reason="refund")
    await bank.transfer_many([TransferRequest("treasury", f"m{i}", i + 1) for i in range(50)])
    return {"paid": paid.id, "pending_hold": pending.id, "reversal": reversal.id}


async def test_a_redis_ledger_switched_to_hybrid_is_backfilled(make_bank: BankFactory) -> None:
    redis_bank = await make_bank(storage_mode="redis", stream_maxlen=10)  # a trimmed stream: the tx hash is the source
    ids = await _redis_mode_history(redis_bank)
    await redis_bank.close()

    hybrid = await make_bank(storage_mode="hybrid")
    store = store_of(hybrid)
    state = await sync_state(store.sql)
    assert (
        state is not None
        and state["backfilled_seq"] == int(cast(str, await store.redis.client.get(store.redis.keys.seq))) > 0
    )
    await hybrid.transfer("bob", "dora", 3)  # after the switch: through the stream
    await assert_stores_equal(store)
    assert (await hybrid.verify()).ok
    held = await store.sql.get_hold(ids["pending_hold"])
    assert held is not None and held.status == "pending" and held.amount == 700
    # the audit log came across as well (initialize, mint, burn, reverse)
    actions = [entry.action for entry in await store.sql.audit_log(100, None)]
    assert {"token.initialize", "mint", "burn", "reverse"} <= set(actions)


async def test_backfilled_stream_entries_are_skipped_by_the_idempotent_insert(make_bank: BankFactory) -> None:
    """A consumer group that starts before the snapshot point (here: moved back to the very start) re-reads
    entries the backfill already wrote: they are skipped, and nothing is applied twice."""
    redis_bank = await make_bank(storage_mode="redis", stream_maxlen=0)  # 0: the redis store keeps its default cap
    await _redis_mode_history(redis_bank)
    await redis_bank.close()
    hybrid = await make_bank(storage_mode="hybrid", enable_synchronization=False)
    store = store_of(hybrid)
    before = await postgres_accounts(store)
    await stream.position_group(store.redis.client, store.redis.keys, "0")
    worker = store.start_worker()
    await drain(store)
    assert worker.status.delivered > 0 and worker.status.synced == 0
    assert await postgres_accounts(store) == before
    await assert_stores_equal(store)


async def test_a_sql_mode_bank_reads_the_same_ledger_after_the_drain(make_bank: BankFactory) -> None:
    hybrid = await make_bank(initial_supply=10_000)
    ids = await _redis_mode_history(hybrid)
    for i in range(120):
        await hybrid.transfer("treasury", "alice", 1 + i % 5)
    store = store_of(hybrid)
    await drain(store)
    sql = await make_bank(storage_mode="sql")

    for user in ("treasury", "alice", "bob", "carol", "m7"):
        assert await sql.get_balance(user) == await hybrid.get_balance(user)
        assert await sql.get_held_balance(user) == await hybrid.get_held_balance(user)
        cursor_h, cursor_s = None, None
        while True:  # every page, with the same cursors
            page_h = await hybrid.transactions.get_transaction_history(user, limit=17, cursor=cursor_h)
            page_s = await sql.transactions.get_transaction_history(user, limit=17, cursor=cursor_s)
            assert page_h.items == page_s.items
            assert page_h.next_cursor == page_s.next_cursor
            if page_h.next_cursor is None:
                break
            cursor_h, cursor_s = page_h.next_cursor, page_s.next_cursor
    assert await sql.get_total_supply() == await hybrid.get_total_supply()
    assert await sql.get_top_holders(20) == await hybrid.get_top_holders(20)
    assert await sql.transactions.get_transaction_by_id(ids["reversal"]) == (
        await hybrid.transactions.get_transaction_by_id(ids["reversal"])
    )
    assert await sql.get_hold(ids["pending_hold"]) == await hybrid.get_hold(ids["pending_hold"])
    assert (await sql.verify()).ok

    # PostgreSQL-only from here on: the sql bank numbers its entries after every replicated seq
    await hybrid.close()
    last = max((await postgres_ids(store)).values())
    tx = await sql.transfer("alice", "bob", 1)
    assert tx.seq > last
    replay = await sql.transfer("treasury", "dave", 10, idempotency_key="order-1", metadata={"order": 1})
    assert replay.id == ids["paid"]  # idempotency keys recorded in hybrid mode still replay


async def test_history_continues_from_postgresql_past_what_redis_keeps(make_bank: BankFactory) -> None:
    hybrid = await make_bank(history_retention=100)
    sent = [await hybrid.transfer("treasury", "erin", 1) for _ in range(130)]
    store = store_of(hybrid)
    await drain(store)
    assert await store.redis.client.zcard(store.redis.keys.history("erin")) == 100
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await hybrid.transactions.get_transaction_history("erin", limit=40, cursor=cursor)
        seen.extend(tx.id for tx in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [tx.id for tx in reversed(sent)]
    # lookups of transactions reach PostgreSQL too (here all are still in Redis's :tx hash)
    assert (await hybrid.transactions.get_transaction_by_id(sent[0].id)).id == sent[0].id


async def test_balance_at_reads_the_ledger_of_record(make_bank: BankFactory) -> None:
    hybrid = await make_bank()
    first = await hybrid.transfer("treasury", "fay", 10)
    second = await hybrid.transfer("treasury", "fay", 5)
    assert await hybrid.get_balance_at("fay", first.timestamp) == 10
    assert await hybrid.get_balance_at("fay", second.timestamp) == 15
    assert isinstance(hybrid.storage, HybridStorage)
