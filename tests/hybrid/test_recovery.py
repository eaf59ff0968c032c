"""Recovery tools on the shared servers: reconcile (and repair), rebuild-cache, quarantine, health."""

from __future__ import annotations

import asyncio

import pytest

from tests.backends import REDIS_URL
from tests.hybrid.conftest import BankFactory, SettingsFactory, delete_keys
from tests.hybrid.support import assert_stores_equal, drain, postgres_accounts, redis_accounts, store_of
from tokenbank import StorageError, TokenBank, TransferRequest
from tokenbank.storage.hybrid.backend import HybridStorage
from tokenbank.storage.hybrid.rebuild import rebuild_cache
from tokenbank.storage.hybrid.reconcile import reconcile

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


async def _ledger(bank: TokenBank) -> dict[str, str]:
    keyed = await bank.transfer("treasury", "alice", 300, idempotency_key="k-1")
    await bank.transfer_many([TransferRequest("treasury", f"p{i}", 10 + i) for i in range(30)])
    old = await bank.transfer("alice", "bob", 40)
    pending = await bank.hold("alice", "carol", 25, expires_in=3600)
    settled = await bank.hold("alice", "carol", 10, expires_in=3600)
    await bank.capture(settled.id, 4)
    await bank.mint("dora", 12, reason="prize")
    return {"keyed": keyed.id, "old": old.id, "pending": pending.id}


async def test_reconcile_names_drifted_accounts_and_repair_fixes_redis_with_an_audit_entry(
    make_bank: BankFactory,
) -> None:
    bank = await make_bank()
    await _ledger(bank)
    store = store_of(bank)
    assert (await reconcile(store)).ok
    keys, client = store.redis.keys, store.redis.client
    await client.hset(keys.bal, "bob", "999999")  # drift behind the scripts' back
    await client.hincrby(keys.token, "total_supply", 5)

    report = await reconcile(store)
    assert [d.user_id for d in report.drifted] == ["bob"]
    assert (report.drifted[0].redis_balance, report.drifted[0].postgres_balance) == (999999, 4000)
    assert report.supply_drift == 5 and not report.ok

    repaired = await reconcile(store, repair=True)
    assert repaired.repaired and any("1 accounts" in line for line in repaired.repairs)
    assert (await reconcile(store)).ok
    assert await bank.get_balance("bob") == 40
    assert (await bank.get_top_holders(3))[0].user_id == "alice"
    [entry, *_] = await bank.get_audit_log()
    assert entry.action == "reconcile.repair" and entry.details["accounts"] == ["bob"]
    assert (await bank.verify()).ok


async def test_rebuild_cache_restores_redis_from_postgresql(
    make_bank: BankFactory, hybrid_settings: SettingsFactory, key_prefix: str
) -> None:
    bank = await make_bank(history_retention=100, initial_supply=100_000)
    ids = await _ledger(bank)
    for _ in range(110):
        await bank.transfer("treasury", "heavy", 1)
    store = store_of(bank)
    await drain(store)
    expected = await postgres_accounts(store)
    top = await bank.get_top_holders(10)
    audit = [(e.action, e.details) for e in await bank.get_audit_log(limit=100)]
    await bank.close()

    await delete_keys(REDIS_URL, key_prefix)  # Redis lost everything
    with pytest.raises(StorageError, match="rebuild-cache"):
        await make_bank(history_retention=100, initial_supply=100_000)  # no new ledger over the one PostgreSQL holds

    raw = HybridStorage(hybrid_settings(history_retention=100, initial_supply=100_000, enable_synchronization=False))
    await raw.open()
    try:
        report = await rebuild_cache(raw)
    finally:
        await raw.close()
    assert report.accounts == len(expected) and report.trimmed_accounts == 2 and report.transactions > 140

    restored = await make_bank(history_retention=100, initial_supply=100_000)
    assert await redis_accounts(store_of(restored)) == expected
    assert await restored.get_top_holders(10) == top
    assert [(e.action, e.details) for e in await restored.get_audit_log(limit=100)][1:] == audit
    hold = await restored.get_hold(ids["pending"])
    assert hold.status.value == "pending"
    page = await restored.transactions.get_transaction_history("heavy", limit=200)
    assert len(page.items) == 110  # 100 from Redis's index, the rest from PostgreSQL
    replay = await restored.transfer("treasury", "alice", 300, idempotency_key="k-1")
    assert replay.id == ids["keyed"]
    await restored.reverse(ids["old"], reason="after rebuild")
    verified = await restored.verify()
    assert verified.ok, verified
    await assert_stores_equal(store_of(restored))


async def test_rebuild_cache_refuses_while_redis_still_holds_the_ledger(make_bank: BankFactory) -> None:
    bank = await make_bank()
    with pytest.raises(StorageError, match="--force"):
        await rebuild_cache(store_of(bank))


async def test_health_degrades_when_the_sync_lags(make_bank: BankFactory) -> None:
    bank = await make_bank(enable_synchronization=False, sync_lag_degraded_seconds=0.2)
    await bank.transfer("treasury", "gus", 1)
    await asyncio.sleep(0.3)
    report = await bank.health()
    assert report.status == "degraded"
    sync = next(c for c in report.checks if c.name == "sync")
    assert sync.status == "degraded" and "backlog 2 entries" in sync.detail
    store_of(bank).start_worker()
    await drain(store_of(bank))
    assert (await bank.health()).status == "ok"


async def test_entries_that_collide_with_postgresql_are_quarantined_not_lost(make_bank: BankFactory) -> None:
    """What a Redis that lost acknowledged writes does: reuse a seq PostgreSQL already has. The worker puts the
    entry aside in tb_sync_conflicts, health and verify say so, and the stream moves on."""
    bank = await make_bank()
    await bank.transfer("treasury", "hal", 5)
    store = store_of(bank)
    await drain(store)
    await store.stop_worker()
    await store.redis.client.decr(store.redis.keys.seq)  # as if the last write was lost
    collided = await bank.transfer("treasury", "ivy", 7)
    after = await bank.transfer("treasury", "ivy", 1)
    store.start_worker()
    await drain(store)
    report = await reconcile(store)
    assert report.missing_in_postgres == [collided.id] and report.conflicts == 1
    assert await store.sql.get_transaction(after.id) is not None
    health = await bank.health()
    assert health.status == "degraded" and any(c.name == "sync.conflicts" for c in health.checks)
    assert not (await bank.verify()).ok
