"""The sync worker: drain equality under load, exactly-once despite redelivery and crashes, claims, the lease."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.hybrid.conftest import BankFactory, SettingsFactory
from tests.hybrid.support import assert_stores_equal, drain, fund, postgres_accounts, redis_accounts, store_of, two_of
from tokenbank import ConfigurationError, TokenBank, TransferRequest
from tokenbank.storage.hybrid import stream
from tokenbank.storage.hybrid.backend import HybridStorage
from tokenbank.storage.hybrid.replicate import sync_state
from tokenbank.storage.hybrid.status import SyncOptions
from tokenbank.storage.hybrid.stream import GROUP
from tokenbank.storage.hybrid.worker import SyncWorker

pytestmark = [pytest.mark.redis, pytest.mark.postgres]
USERS = [f"u{i:03d}" for i in range(40)]


async def _mixed_load(bank: TokenBank, rounds: int, seed: int = 7) -> None:
    """Every kind of write, from 8 concurrent tasks."""
    rng = random.Random(seed)

    async def one(task: int) -> None:
        for _ in range(rounds):
            a, b = rng.sample(USERS, 2)
            kind = rng.random()
            try:
                if kind < 0.5:
                    await bank.transfer(a, b, rng.randint(1, 500))
                elif kind < 0.6:
                    tx = await bank.transfer(a, b, rng.randint(1, 200))
                    await bank.reverse(tx.id, reason="test")
                elif kind < 0.7:
                    amount = rng.randint(2, 300)
                    hold = await bank.hold(a, b, amount, expires_in=60)
                    capture = rng.random() < 0.5
                    await (bank.capture(hold.id, rng.randint(1, amount)) if capture else bank.void(hold.id))
                elif kind < 0.75:
                    await bank.hold(a, b, rng.randint(1, 50), expires_in=60)  # left pending
                elif kind < 0.85:
                    await bank.mint(a, rng.randint(1, 100), reason="load")
                elif kind < 0.9:
                    await bank.burn(a, rng.randint(1, 50), reason="load")
                else:
                    requests = [TransferRequest(*two_of(rng, USERS), rng.randint(1, 20)) for _ in range(20)]
                    await bank.transfer_many(requests, atomic=rng.random() < 0.5)
            except Exception as exc:  # refusals (insufficient balance...) are part of the load
                assert getattr(exc, "code", None) in {"insufficient_balance", "batch_aborted"}, exc

    await asyncio.gather(*(one(task) for task in range(8)))


async def test_postgres_equals_redis_account_by_account_after_a_mixed_load(make_bank: BankFactory) -> None:
    bank = await make_bank(initial_supply=10_000_000)
    await fund(bank, USERS, 5_000)
    await _mixed_load(bank, rounds=40)
    store = store_of(bank)
    await assert_stores_equal(store)
    report = await bank.verify()
    assert report.ok, report
    assert any(c.name == "postgresql: held == pending holds" for c in report.checks)
    state = await sync_state(store.sql)
    assert state is not None and state["applied"] == await store.redis.client.hlen(store.redis.keys.tx)
    # the audit log made it too (mints, burns, reversals and the token's creation)
    audit = await store.sql.audit_log(1000, None)
    assert len(audit) == len(await store.redis.audit_log(1000, None))


async def test_the_same_entries_delivered_twice_apply_once(make_bank: BankFactory) -> None:
    bank = await make_bank(enable_synchronization=False)
    for i in range(30):
        await bank.transfer("treasury", f"a{i % 3}", 1 + i)
    hold = await bank.hold("a1", "a2", 5, expires_in=60)
    await bank.capture(hold.id, 2)
    await bank.mint("a0", 7)
    store = store_of(bank)
    worker = SyncWorker(store.redis, store.sql, SyncOptions(consumer="twice"))
    await worker.prepare()
    entries = await worker._next_entries()
    payloads = await worker._payloads(entries)
    first = await worker.replicator.write(payloads, [], None)
    second = await worker.replicator.write(payloads, [], None)  # redelivered after a lost XACK
    assert first.inserted == len(entries) == 35 and second.inserted == 0
    assert await postgres_accounts(store) == await redis_accounts(store)
    await worker.ack([e.stream_id for e in entries])
    await worker.close()


async def test_a_crash_between_commit_and_ack_does_not_apply_twice(make_bank: BankFactory) -> None:
    bank = await make_bank(enable_synchronization=False)
    for i in range(20):
        await bank.transfer("treasury", "alice", 1 + i)
    store = store_of(bank)
    crashed = SyncWorker(store.redis, store.sql, SyncOptions(consumer="w1"))
    await crashed.prepare()
    entries = await crashed._next_entries()
    await crashed.replicator.write(await crashed._payloads(entries), [], None)  # committed; then "killed": no XACK
    await crashed.close()
    before = await postgres_accounts(store)

    restarted = SyncWorker(store.redis, store.sql, SyncOptions(consumer="w1"))  # same name: resumes its pending
    await restarted.prepare()
    assert await restarted.step() == len(entries)
    assert restarted.status.synced == 0 and restarted.status.duplicates == len(entries)
    assert await postgres_accounts(store) == before == await redis_accounts(store)
    await restarted.close()
    await assert_stores_equal(store)


async def test_a_dead_consumers_entries_are_claimed_after_the_idle_timeout(make_bank: BankFactory) -> None:
    bank = await make_bank(enable_synchronization=False)
    for i in range(10):
        await bank.transfer("treasury", "bob", 1 + i)
    store = store_of(bank)
    dead = SyncWorker(store.redis, store.sql, SyncOptions(consumer="dead"))
    await dead.prepare()
    taken = await dead._next_entries()
    assert len(taken) == 11  # the initial mint and 10 transfers, now pending for "dead"
    await dead.close()
    heir = SyncWorker(store.redis, store.sql, SyncOptions(consumer="heir", claim_idle_ms=200, block_ms=50))
    await heir.prepare()
    assert await heir.step() == 0  # too early: not idle long enough, and nothing new
    await asyncio.sleep(0.3)
    heir._next_claim = 0
    assert await heir.step() == 11
    assert heir.status.synced == 11
    assert await stream.forget_idle_consumers(heir.client, store.redis.keys, keep="heir", idle_ms=0) == 1
    assert [c["name"] for c in await heir.client.xinfo_consumers(store.redis.keys.stream, GROUP)] == ["heir"]
    await heir.close()
    await assert_stores_equal(store)


async def test_one_worker_holds_the_lease_the_other_stands_by(make_bank: BankFactory) -> None:
    bank = await make_bank(enable_synchronization=False)
    store = store_of(bank)
    first = SyncWorker(store.redis, store.sql, SyncOptions(block_ms=50, lease_ms=500, consumer="first"))
    second = SyncWorker(store.redis, store.sql, SyncOptions(block_ms=50, lease_ms=500, consumer="second"))
    stop_first, stop_second = asyncio.Event(), asyncio.Event()
    tasks = [asyncio.create_task(first.run(stop_first))]
    await asyncio.sleep(0.2)
    tasks.append(asyncio.create_task(second.run(stop_second)))
    for i in range(20):
        await bank.transfer("treasury", "carol", 1 + i)
    await drain(store, 10)
    assert (first.status.role, second.status.role) == ("active", "standby")
    assert second.status.synced == 0
    stop_first.set()  # a clean stop releases the lease: the standby takes over at once
    await tasks[0]
    await bank.transfer("treasury", "carol", 1)
    await drain(store, 10)
    assert second.status.role == "active" and second.status.synced == 1
    stop_second.set()
    await tasks[1]
    for worker in (first, second):
        await worker.close()
    await assert_stores_equal(store)


async def test_hybrid_needs_postgresql(hybrid_settings: SettingsFactory) -> None:
    with pytest.raises(ConfigurationError, match="DATABASE_URL"):
        HybridStorage(hybrid_settings(database_url="sqlite+aiosqlite:///x.db"))


async def test_a_fresh_ledger_starts_with_the_token_row_at_zero_supply_then_syncs(make_bank: BankFactory) -> None:
    bank = await make_bank()
    store = store_of(bank)
    await drain(store)
    assert await store.sql.get_balances(["treasury"]) == {"treasury": 100_000}
    token = await store.sql.get_token()
    assert token is not None and token.total_supply == 100_000 and token.name == "Hybrid"
    await bank.close()
    renamed = await make_bank()
    await renamed.configure_token(name="Renamed", emoji="⭐")  # reaches PostgreSQL with its audit entry
    await drain(store_of(renamed))
    await asyncio.sleep(0.6)  # audit entries are picked up between two reads of the stream
    token = await store_of(renamed).sql.get_token()
    assert token is not None and (token.name, token.emoji) == ("Renamed", "⭐")
    actions = [entry.action for entry in await store_of(renamed).sql.audit_log(10, None)]
    assert actions[0] == "token.configure" and "token.initialize" in actions


async def test_seq_is_the_same_in_both_stores_and_keeps_growing_in_postgresql(make_bank: BankFactory) -> None:
    bank = await make_bank()
    txs = [await bank.transfer("treasury", "dora", Decimal(i)) for i in range(1, 6)]
    store = store_of(bank)
    await drain(store)
    for tx in txs:
        found = await store.sql.get_transaction(tx.id)
        assert found is not None and found.seq == tx.seq
    # the journal's own sequence is past every replicated seq (a sql-mode bank continues after them)
    value = await store.sql.run_sync(
        lambda conn: conn.scalar(sa.text("SELECT last_value FROM tb_transactions_seq_seq"))
    )
    assert int(value) >= txs[-1].seq
