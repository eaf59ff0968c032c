"""Hybrid mode with a read replica: Redis still serves balances, the leaderboard and recent history; what hybrid reads
from PostgreSQL (balance_at, analytics, history past Redis's retention) may come from the replica, after it has
replayed what the sync wrote."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest

from tests.backends import REDIS_SESSION_PREFIX, REDIS_URL
from tests.hybrid.support import drain, store_of
from tests.replica.cluster import ReplicatedCluster
from tests.replica.conftest import SettingsFactory, superuser
from tests.replica.test_replica import Opener
from tokenbank.services.analytics import AnalyticsService
from tokenbank.storage.sql.replica import ReplicaReader

pytestmark = pytest.mark.redis


async def test_hybrid_reads_its_ledger_of_record_from_the_replica(
    running: ReplicatedCluster, replica_settings: SettingsFactory, open_banks: Opener
) -> None:
    settings = replica_settings(
        storage_mode="hybrid",
        redis_url=REDIS_URL,
        key_prefix=REDIS_SESSION_PREFIX + "r" + secrets.token_hex(5),
        replica_wait_ms=100,
        decimals=0,
    )
    bank = await open_banks(settings)
    store = store_of(bank)
    replica = store.sql.replica
    assert isinstance(replica, ReplicaReader)
    await bank.transfer("treasury", "alice", 10)
    await drain(store)
    reads = replica.stats.reads
    assert await bank.get_balance_at("alice", datetime.now(UTC)) == 10
    since = datetime.now(UTC) - timedelta(hours=1)
    assert await AnalyticsService(bank).get_active_accounts(since) == 2
    assert replica.stats.reads == reads + 2

    standby = await superuser(running.replica.dsn)
    try:
        await standby.execute("SELECT pg_wal_replay_pause()")
        await bank.transfer("treasury", "alice", 5)
        lagged = replica.stats.lag_fallbacks
        # The sync wrote the transfer to the primary; the paused replica lacks it, so the primary answers.
        assert await bank.get_balance_at("alice", datetime.now(UTC)) == 15
        assert replica.stats.lag_fallbacks == lagged + 1
        names = {check.name: check.status for check in (await bank.health()).checks}
        assert names["replica"] == "ok" and "sync" in names
    finally:
        await standby.execute("SELECT pg_wal_replay_resume()")
        await standby.close()
