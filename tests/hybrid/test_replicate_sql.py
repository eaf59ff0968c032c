"""Revision 0007's ``tb_replicate_batch`` against 0002's, on one batch of every kind of entry: the same rows
inserted, the same balances, held amounts, holds, supply and sync state, and nothing applied twice."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from tests.backends import POSTGRES_URL
from tests.hybrid.conftest import BankFactory
from tests.hybrid.support import fund, store_of
from tokenbank import TransferRequest
from tokenbank.storage.hybrid.status import SyncOptions
from tokenbank.storage.hybrid.worker import SyncWorker
from tokenbank.storage.sql.migrations.sqlfile import statements

pytestmark = [pytest.mark.redis, pytest.mark.postgres]
USERS = [f"s{i}" for i in range(6)]
_STATE = {
    "accounts": "SELECT user_id, balance, held FROM tb_accounts ORDER BY user_id",
    "holds": "SELECT id, status, amount, captured_amount, expires_at FROM tb_holds ORDER BY id",
    "supply": "SELECT total_supply FROM tb_tokens",
    "journal": "SELECT seq, id, type, from_user_id, to_user_id, amount, created_at FROM tb_transactions ORDER BY seq",
    "sync": "SELECT applied, last_seq, last_created_at FROM tb_sync_state",
}


async def _state(conn: asyncpg.Connection) -> dict[str, list[Any]]:
    return {name: [tuple(row) for row in await conn.fetch(query)] for name, query in _STATE.items()}


async def _apply_twice(conn: asyncpg.Connection, function: str, payload: str) -> tuple[list[int], dict[str, Any]]:
    """The batch applied, then delivered again; the counts and the state after, all rolled back."""
    async with conn.transaction():
        counts = [await conn.fetchval(f"SELECT {function}('HY', $1::jsonb)", payload) for _ in range(2)]
        state = await _state(conn)
        raise _Rollback(counts, state)


class _Rollback(Exception):
    def __init__(self, counts: list[int], state: dict[str, Any]) -> None:
        self.counts, self.state = counts, state


async def _outcome(conn: asyncpg.Connection, function: str, payload: str) -> tuple[list[int], dict[str, Any]]:
    try:
        await _apply_twice(conn, function, payload)
    except _Rollback as done:
        return done.counts, done.state
    raise AssertionError("unreachable")


async def test_0007_applies_a_batch_exactly_as_0002_did(make_bank: BankFactory, pg_schema: str) -> None:
    bank = await make_bank(enable_synchronization=False)
    await fund(bank, USERS[:4], 500)  # s4 and s5 have no account row yet: the batch creates them
    pending = await bank.hold("s0", "s1", 40, expires_in=60)
    captured = await bank.hold("s1", "s2", 30, expires_in=60)
    await bank.capture(captured.id, 12)
    voided = await bank.hold("s2", "s3", 20, expires_in=60)
    await bank.void(voided.id)
    paid = await bank.transfer("s3", "s4", 25)
    await bank.reverse(paid.id, reason="test")
    await bank.mint("s5", 9, reason="test")
    await bank.burn("s0", 4, reason="test")
    await bank.transfer_many([TransferRequest(USERS[i % 4], USERS[(i + 1) % 6], 2) for i in range(12)])
    store = store_of(bank)
    worker = SyncWorker(store.redis, store.sql, SyncOptions(consumer="sql"))
    await worker.prepare()
    entries = await worker._next_entries()
    payload = await worker._payloads(entries)
    await worker.close()

    conn = await asyncpg.connect(POSTGRES_URL.replace("+asyncpg", ""), server_settings={"search_path": pg_schema})
    try:
        (old,) = [s for s in statements("0002_hybrid_sync.sql") if "FUNCTION tb_replicate_batch(" in s]
        await conn.execute(old.replace("FUNCTION tb_replicate_batch(", "FUNCTION pg_temp.tb_replicate_batch_0002("))
        before = await _state(conn)
        new_counts, new_state = await _outcome(conn, "tb_replicate_batch", payload)
        old_counts, old_state = await _outcome(conn, "pg_temp.tb_replicate_batch_0002", payload)
        assert await _state(conn) == before  # both rolled back
    finally:
        await conn.close()
    assert new_counts == old_counts == [len(entries), 0]
    assert new_state == old_state
    holds = {row[0]: row[1] for row in new_state["holds"]}
    assert holds == {pending.id: "pending", captured.id: "captured", voided.id: "voided"}
    assert {row[0] for row in new_state["accounts"]} >= {"s4", "s5"}
