"""PostgreSQL: a seq still in flight below one that committed holds the feed back instead of being skipped.

A transaction that drew seq n stays open while another commits seq n+1. A feed reader that returned n+1 and moved
its cursor on would never see n; the feed must wait for the open transaction and then return n before n+1.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.backends import BACKENDS, PG_SCHEMA, POSTGRES_URL, BoundBackend, Scope
from tokenbank import TokenBank
from tokenbank.ids import new_id
from tokenbank.storage.base import OpKind, WriteOp
from tokenbank.storage.wire import SQL

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg(tmp_path: object) -> BoundBackend:
    [backend] = [b for b in BACKENDS if b.name == "postgres"]
    return backend.bind(Scope(tmp_path))  # type: ignore[arg-type]


async def test_the_feed_waits_for_a_lower_seq_in_flight(pg: BoundBackend, clean_env: object) -> None:
    async with TokenBank(pg.settings(initial_supply=1000)) as bank:
        raw = await asyncpg.connect(POSTGRES_URL.replace("+asyncpg", ""), server_settings={"search_path": PG_SCHEMA})
        try:
            await bank.transfer("treasury", "alice", 10)
            await bank.transfer("treasury", "bob", 10)
            await bank.events.consume_once("c", lambda tx: None)
            before = await bank.events.cursor("c")
            # Different accounts, so the second writer does not wait for the first one's row locks.
            op = WriteOp(kind=OpKind.TRANSFER, tx_id=new_id(), from_user_id="alice", to_user_id="slow", amount=1)
            open_tx = raw.transaction()
            await open_tx.start()
            await raw.fetchval("SELECT tb_apply($1, $2::jsonb, false)::text", bank.settings.symbol, SQL.ops([op]))
            later = await bank.transfer("bob", "fast", 1)  # commits while the first is still open
            seen: list[str] = []
            reader = asyncio.create_task(bank.events.consume_once("c", lambda tx: seen.append(tx.id)))
            await asyncio.sleep(0.5)
            assert not reader.done(), "the feed returned while a lower seq was in flight"
            await open_tx.commit()
            assert await asyncio.wait_for(reader, 30) == 2
            assert seen == [op.tx_id, later.id]
            assert await bank.events.cursor("c") == later.seq > before
        finally:
            await raw.close()
