"""Reads served by a PostgreSQL streaming replica: which reads go there, read-your-writes while replay is paused,
the way back once it resumes, and a replica that is down (reads answer from the primary, health degrades)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.replica.cluster import ReplicatedCluster
from tests.replica.conftest import SettingsFactory, sql_store, superuser
from tests.support import history
from tokenbank import TokenBank
from tokenbank.services.analytics import AnalyticsService
from tokenbank.storage.sql.replica import DOWN_RETRY_SECONDS, ReplicaReader, ReplicaStats

Opener = Callable[..., Awaitable[TokenBank]]


def reader_of(bank: TokenBank) -> ReplicaReader:
    replica = sql_store(bank).replica
    assert replica is not None
    return replica


def stats(bank: TokenBank) -> ReplicaStats:
    s = reader_of(bank).stats
    return ReplicaStats(s.reads, s.lag_fallbacks, s.down_fallbacks, s.waits)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def ids(bank: TokenBank, account: str) -> list[str]:
    return [tx.id for tx in await history(bank, account)]


async def board(bank: TokenBank) -> dict[str, int]:
    return {h.user_id: int(h.balance) for h in await bank.get_top_holders(limit=100)}


async def test_the_reads_a_replica_serves_come_from_it(
    running: ReplicatedCluster, replica_settings: SettingsFactory, open_banks: Opener
) -> None:
    bank = await open_banks(replica_settings(replica_wait_ms=10_000, decimals=0))
    tx = await bank.transfer("treasury", "alice", 10)
    replica = reader_of(bank)
    async with replica.engine.connect() as conn:
        in_recovery, port = (await conn.execute(sa.text("SELECT pg_is_in_recovery(), inet_server_port()"))).one()
    assert in_recovery is True and port == running.replica.port
    primary_port = await sql_store(bank).run_sync(lambda c: c.scalar(sa.text("SELECT inet_server_port()")))
    assert primary_port == running.primary.port != port

    before = stats(bank)
    assert await ids(bank, "alice") == [tx.id]  # waited for the replica to replay the transfer, then read it there
    assert await board(bank) == {"alice": 10}
    assert await bank.get_rank("alice") == 1
    assert await bank.get_balance_at("alice", datetime.now(UTC)) == 10
    assert await AnalyticsService(bank).get_active_accounts(datetime.now(UTC) - timedelta(hours=1)) == 2
    after = stats(bank)
    assert after.reads == before.reads + 5
    assert (after.lag_fallbacks, after.down_fallbacks) == (before.lag_fallbacks, before.down_fallbacks)
    assert after.waits <= before.waits + 1  # one wait covers the write; later reads know the replica is past it

    # balances, token info and lookups stay on the primary
    assert await bank.get_balance("alice") == 10
    assert await bank.transactions.get_transaction_by_id(tx.id) == tx
    await bank.get_token_info()
    assert stats(bank).reads == after.reads


async def test_a_bank_reads_its_own_writes_while_replay_is_paused(
    running: ReplicatedCluster, replica_settings: SettingsFactory, open_banks: Opener, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tokenbank")
    writer = await open_banks(replica_settings(replica_wait_ms=100, decimals=0))
    reader = await open_banks(replica_settings(replica_wait_ms=100, decimals=0))  # same token, never writes
    first = await writer.transfer("treasury", "alice", 10)

    async def reader_sees(tx_id: str) -> bool:
        return tx_id in await ids(reader, "alice")

    await eventually(lambda: reader_sees(first.id))
    standby = await superuser(running.replica.dsn)
    try:
        await standby.execute("SELECT pg_wal_replay_pause()")
        second = await writer.transfer("treasury", "alice", 5)
        now = datetime.now(UTC)

        w0, r0 = stats(writer), stats(reader)
        started = time.perf_counter()
        assert await ids(writer, "alice") == [second.id, first.id]  # the primary, after waiting 100 ms in vain
        waited = time.perf_counter() - started
        assert (await board(writer))["alice"] == 15
        assert await writer.get_balance_at("alice", now) == 15
        w1 = stats(writer)
        assert w1.lag_fallbacks == w0.lag_fallbacks + 3 and w1.reads == w0.reads
        assert waited >= 0.1
        assert sum("replica behind this bank's last write" in r.getMessage() for r in caplog.records) == 3

        # A bank with no writes of its own is served by the paused replica: it sees the stale ledger, which is
        # what the writer would have seen without the wait.
        assert await ids(reader, "alice") == [first.id]
        assert (await board(reader))["alice"] == 10
        assert await reader.get_balance_at("alice", now) == 10
        assert stats(reader).reads == r0.reads + 3

        [check] = [c for c in (await writer.health()).checks if c.name == "replica"]
        assert check.status == "ok" and not check.detail.startswith("lag 0 bytes"), check.detail
    finally:
        await standby.execute("SELECT pg_wal_replay_resume()")
        await standby.close()

    await eventually(lambda: reader_sees(second.id))
    before = stats(writer)
    assert await ids(writer, "alice") == [second.id, first.id]
    after = stats(writer)
    assert after.reads == before.reads + 1 and after.lag_fallbacks == before.lag_fallbacks  # back on the replica


async def test_a_replica_that_is_down_leaves_reads_to_the_primary(
    running: ReplicatedCluster, replica_settings: SettingsFactory, open_banks: Opener, caplog: pytest.LogCaptureFixture
) -> None:
    bank = await open_banks(replica_settings(replica_wait_ms=10_000, decimals=0))
    tx = await bank.transfer("treasury", "alice", 10)
    assert await ids(bank, "alice") == [tx.id]
    assert reader_of(bank).stats.reads >= 1
    running.stop_replica()
    try:
        before = stats(bank)
        assert await ids(bank, "alice") == [tx.id]
        assert await board(bank) == {"alice": 10}
        assert await bank.get_rank("alice") == 1
        assert stats(bank).down_fallbacks == before.down_fallbacks + 3
        assert stats(bank).reads == before.reads
        failed = [r.levelno for r in caplog.records if "read replica failed" in r.getMessage()]
        assert failed == [logging.WARNING]  # one per outage, not one per read

        report = await bank.health()
        [check] = [c for c in report.checks if c.name == "replica"]
        assert check.status == "degraded" and "unreachable" in check.detail, check
        assert report.status == "degraded" and report.ok
    finally:
        running.start_replica()

    async def served_by_replica() -> bool:
        reads = reader_of(bank).stats.reads
        assert await ids(bank, "alice") == [tx.id]
        return reader_of(bank).stats.reads == reads + 1

    await eventually(served_by_replica, within=DOWN_RETRY_SECONDS + 15)
    [check] = [c for c in (await bank.health()).checks if c.name == "replica"]
    assert check.status == "ok", check
