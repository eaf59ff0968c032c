"""The sync worker's read-ahead: behind on a backlog it reads the next batch while PostgreSQL writes the current
one. Batches still commit in stream order, each acknowledged only after its commit, and a write that fails or is
cancelled with a batch read ahead loses nothing and applies nothing twice."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import cast

import asyncpg
import pytest

from tests.backends import POSTGRES_URL
from tests.hybrid.conftest import BankFactory, SettingsFactory
from tests.hybrid.support import TcpProxy, assert_stores_equal, fund, postgres_ids, store_of
from tokenbank import TokenBank, TokenBankError, TransferRequest
from tokenbank.storage.hybrid.backend import HybridStorage
from tokenbank.storage.hybrid.status import SyncOptions
from tokenbank.storage.hybrid.stream import GROUP
from tokenbank.storage.hybrid.worker import SyncWorker

pytestmark = [pytest.mark.redis, pytest.mark.postgres]
USERS = [f"r{i:02d}" for i in range(12)]
BATCH = 10


async def _backlog(bank: TokenBank) -> None:
    """About 130 entries of every kind (holds captured, voided and left pending), written with the sync off."""
    await fund(bank, USERS, 1_000)
    for i, user in enumerate(USERS):
        other = USERS[(i + 1) % len(USERS)]
        await bank.transfer(user, other, 5 + i)
        hold = await bank.hold(user, other, 30, expires_in=60)
        if i % 3 == 0:
            await bank.capture(hold.id, 10)
        elif i % 3 == 1:
            await bank.void(hold.id)
        await bank.mint(user, 3, reason="test")
        await bank.burn(other, 2, reason="test")
    paid = await bank.transfer(USERS[0], USERS[1], 7)
    await bank.reverse(paid.id, reason="test")
    await bank.transfer_many([TransferRequest(USERS[i % 12], USERS[(i + 5) % 12], 1) for i in range(30)])


async def _stream_order(store: HybridStorage) -> list[int]:
    """The seq of every ledger stream entry, in stream order."""
    entries = cast("list[tuple[str, dict[str, str]]]", await store.redis.client.xrange(store.redis.keys.stream))
    return [int(json.loads(fields["tx"])["seq"]) for _, fields in entries]


async def _assert_a_prefix_is_committed(store: HybridStorage, order: list[int]) -> int:
    """PostgreSQL holds exactly the first n entries of the stream (batches committed in stream order). Read
    over a connection of its own: the store's pool may hold connections a test cut."""
    conn = await asyncpg.connect(POSTGRES_URL.replace("+asyncpg", ""), timeout=10)
    try:
        schema = store.settings.database_schema
        rows = await conn.fetch(f'SELECT seq FROM "{schema}".tb_transactions WHERE token = $1', store.token)
    finally:
        await conn.close()
    committed = sorted(int(row["seq"]) for row in rows)
    assert committed == sorted(order[: len(committed)])
    return len(committed)


async def _pending(worker: SyncWorker) -> int:
    summary = await worker.client.xpending(worker.keys.stream, GROUP)
    return int(summary["pending"])


async def test_behind_a_backlog_the_worker_reads_ahead_and_commits_in_stream_order(make_bank: BankFactory) -> None:
    bank = await make_bank(enable_synchronization=False)
    await _backlog(bank)
    store = store_of(bank)
    order = await _stream_order(store)
    assert len(order) > 10 * BATCH
    worker = SyncWorker(store.redis, store.sql, SyncOptions(batch_size=BATCH, block_ms=50, consumer="ahead"))
    await worker.prepare()
    read_ahead = 0
    while await worker.step():
        await _assert_a_prefix_is_committed(store, order)
        ahead = worker._ahead
        # acknowledged right after its commit: only the batch read ahead is still pending
        assert await _pending(worker) == (len(ahead.entries) if ahead else 0)
        read_ahead += ahead is not None
    assert read_ahead >= len(order) // BATCH - 2
    assert worker.status.synced == len(order) and worker.status.duplicates == 0
    await worker.close()
    await assert_stores_equal(store)


async def test_a_write_cancelled_with_a_batch_read_ahead_loses_nothing(make_bank: BankFactory) -> None:
    bank = await make_bank(enable_synchronization=False)
    await _backlog(bank)
    store = store_of(bank)
    order = await _stream_order(store)
    worker = SyncWorker(store.redis, store.sql, SyncOptions(batch_size=BATCH, block_ms=50, consumer="cancelled"))
    await worker.prepare()
    await worker.step()  # a full batch: the next one is read ahead from now on
    for delay in (0.0, 0.001, 0.003, 0.01, 0.03):
        task = asyncio.create_task(worker.step())
        await asyncio.sleep(delay)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await worker.step()
        await _assert_a_prefix_is_committed(store, order)
    await worker.finish(within=30)  # a clean stop: writes what it holds, leaves the group
    await _assert_a_prefix_is_committed(store, order)
    assert await _pending(worker) == 0
    await worker.close()
    heir = SyncWorker(store.redis, store.sql, SyncOptions(batch_size=BATCH, block_ms=50, consumer="heir"))
    await heir.prepare()
    while await heir.step():
        await _assert_a_prefix_is_committed(store, order)
    await heir.close()
    await assert_stores_equal(store)
    assert sorted((await postgres_ids(store)).values()) == sorted(order)


async def test_a_failed_write_with_a_batch_read_ahead_is_retried_in_order(hybrid_settings: SettingsFactory) -> None:
    proxy = TcpProxy(("127.0.0.1", 5432))
    await proxy.start()
    url = POSTGRES_URL.replace(":5432/", f":{proxy.port}/")
    bank = TokenBank(hybrid_settings(database_url=url, enable_synchronization=False))
    await bank.open()
    store = store_of(bank)
    try:
        await _backlog(bank)
        order = await _stream_order(store)
        worker = SyncWorker(store.redis, store.sql, SyncOptions(batch_size=BATCH, block_ms=50, consumer="failed"))
        await worker.prepare()
        await worker.step()
        assert worker._ahead is not None
        proxy.cut()
        with pytest.raises(TokenBankError):
            await worker.step()  # the batch read ahead is in flight; the one after it was being read
        assert worker._inflight is not None and worker._ahead is None
        proxy.restore()
        while await worker.step():
            await _assert_a_prefix_is_committed(store, order)
        assert await _pending(worker) == 0
        await worker.close()
        async with TokenBank(hybrid_settings(enable_synchronization=False)) as direct:  # a pool the cut spared
            await assert_stores_equal(store_of(direct))
    finally:
        await bank.close()
        await proxy.stop()
