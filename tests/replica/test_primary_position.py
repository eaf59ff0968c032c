"""The WAL position a writing bank's replica reads wait for, on the tests' own primary: the flushed WAL, as a commit
returns only once its record is flushed; where commits may return earlier (``synchronous_commit = off``), the
inserted WAL. Waiting for the inserted WAL always would also wait for other sessions' unflushed records."""

from __future__ import annotations

import asyncpg

from tests.replica.cluster import ReplicatedCluster
from tokenbank.storage.sql.replica import POSITION_PAST_COMMITS, parse_lsn

POSITIONS = f"SELECT {POSITION_PAST_COMMITS}, pg_current_wal_insert_lsn()::text, pg_current_wal_flush_lsn()::text"


async def test_a_synchronous_commit_is_covered_by_the_flushed_wal(running: ReplicatedCluster) -> None:
    conn = await asyncpg.connect(running.primary.dsn)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS position_probe (n int)")
        await conn.execute("INSERT INTO position_probe VALUES (1)")
        position, _, flushed = await conn.fetchrow(POSITIONS)
        assert position == flushed
    finally:
        await conn.close()


async def test_an_asynchronous_commit_is_covered_by_the_inserted_wal(running: ReplicatedCluster) -> None:
    conn = await asyncpg.connect(running.primary.dsn)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS position_probe (n int)")
        await conn.execute("SET synchronous_commit = off")
        await conn.execute("INSERT INTO position_probe VALUES (1)")  # committed, its record maybe not flushed yet
        position, inserted, flushed = await conn.fetchrow(POSITIONS)
        assert position == inserted
        assert parse_lsn(position) >= parse_lsn(flushed)
    finally:
        await conn.close()
