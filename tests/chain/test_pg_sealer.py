"""PostgreSQL's sealer under concurrent writes: two banks write one token from many tasks (with rolled-back atomic
batches leaving seq gaps) while sealers run in a loop; every committed row ends up hashed, in one intact chain."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.backends import POSTGRES_URL, BoundBackend, by_name, params
from tokenbank import TokenBank, TransferRequest
from tokenbank.storage.capabilities import ChainStore
from tokenbank.storage.wire import SQL


@pytest.mark.parametrize("backend", params(by_name("postgres")), indirect=True)
async def test_sealing_while_writing_keeps_one_exact_chain(backend: BoundBackend) -> None:
    async with (
        TokenBank(backend.settings(initial_supply=100_000)) as one,
        TokenBank(backend.settings()) as two,
    ):
        done = asyncio.Event()

        async def write(bank: TokenBank, n: int) -> None:
            for i in range(n):
                await bank.transfer("treasury", f"u{i % 7}", 1)
                if i % 10 == 0:  # an atomic batch that fails: its seqs are taken and rolled back
                    results = await bank.transfer_many(
                        [TransferRequest("treasury", "x", 1), TransferRequest("nobody", "y", 5)], atomic=True
                    )
                    assert results[1].error is not None

        async def seal(bank: TokenBank) -> int:
            rounds = 0
            while not done.is_set():
                await bank.chain.seal()
                rounds += 1
                await asyncio.sleep(0)
            return rounds

        sealers = [asyncio.create_task(seal(one)), asyncio.create_task(seal(two))]
        await asyncio.gather(*(write(bank, 30) for bank in (one, two) for _ in range(4)))
        done.set()
        assert all(rounds > 0 for rounds in await asyncio.gather(*sealers))
        await one.chain.seal()
        store = one.storage
        assert isinstance(store, ChainStore)
        entries = await store.chain_entries(0, 10_000)
        assert len(entries) == 1 + 8 * 30 and all(e.hash for e in entries)
        report = await one.verify()
        assert report.ok, report


@pytest.mark.parametrize("backend", params(by_name("postgres")), indirect=True)
async def test_the_sealer_waits_for_a_write_in_flight_below_committed_ones(backend: BoundBackend) -> None:
    settings = backend.settings(initial_supply=1000)
    async with TokenBank(settings) as bank:
        await bank.transfer("treasury", "alice", 50)
        # From accounts of its own: the later writes must not wait for its row locks.
        op = bank.ledger.ops.transfer("alice", "slow", 7, None, None, None)
        dsn = POSTGRES_URL.replace("+asyncpg", "")
        conn = await asyncpg.connect(dsn, server_settings={"search_path": settings.database_schema or "public"})
        try:
            slow = conn.transaction()
            await slow.start()
            answer = await conn.fetchval("SELECT tb_apply($1, $2::jsonb, false)::text", settings.symbol, SQL.ops([op]))
            [result] = SQL.results(answer)
            slow_seq = result.transactions[0].seq  # taken, not committed
            later = [await bank.transfer("treasury", f"u{i}", 1) for i in range(3)]
            assert all(tx.seq > slow_seq for tx in later)
            sealing = asyncio.create_task(bank.chain.seal())
            await asyncio.sleep(0.3)
            assert not sealing.done()  # the horizon waits for the write in flight
            await slow.commit()
            await asyncio.wait_for(sealing, 10)
        finally:
            await conn.close()
        store = bank.storage
        assert isinstance(store, ChainStore)
        entries = await store.chain_entries(0, 100)
        assert [e.tx.seq for e in entries if e.tx.id == op.tx_id] == [slow_seq]
        assert all(e.hash for e in entries)
        report = await bank.verify()
        assert report.ok, report
