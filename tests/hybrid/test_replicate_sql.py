"""The live ``tb_replicate_batch`` against the versions before it (0002's, 0007's), on batches of every kind of
entry: the same rows inserted, the same balances, held amounts, holds, supply and sync state, and nothing applied
twice; and its plans, made on a new schema, still read no account row by a scan once the token has thousands."""

from __future__ import annotations

import json
import re
import uuid
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


async def _apply_twice(
    conn: asyncpg.Connection, function: str, payloads: list[str]
) -> tuple[list[int], dict[str, Any]]:
    """Each batch applied, then delivered again; the counts and the state after, all rolled back."""
    async with conn.transaction():
        counts = [
            await conn.fetchval(f"SELECT {function}('HY', $1::jsonb)", payload) for payload in payloads for _ in "12"
        ]
        state = await _state(conn)
        raise _Rollback(counts, state)


class _Rollback(Exception):
    def __init__(self, counts: list[int], state: dict[str, Any]) -> None:
        self.counts, self.state = counts, state


async def _outcome(conn: asyncpg.Connection, function: str, *payloads: str) -> tuple[list[int], dict[str, Any]]:
    try:
        await _apply_twice(conn, function, list(payloads))
    except _Rollback as done:
        return done.counts, done.state
    raise AssertionError("unreachable")


async def _read_batch(worker: SyncWorker) -> tuple[int, str]:
    """The entries not read yet, as tb_replicate_batch reads them (holds as Redis has them now)."""
    entries = await worker._next_entries()
    return len(entries), await worker._payloads(entries)


async def _function_of(conn: asyncpg.Connection, filename: str, name: str) -> None:
    """``filename``'s tb_replicate_batch, as ``pg_temp.<name>`` (this connection's own)."""
    (sql,) = [s for s in statements(filename) if "FUNCTION tb_replicate_batch(" in s]
    await conn.execute(sql.replace("FUNCTION tb_replicate_batch(", f"FUNCTION pg_temp.{name}("))


async def test_0012_applies_batches_exactly_as_0007_did(make_bank: BankFactory, pg_schema: str) -> None:
    """Two batches: the second settles holds of the first (held falls: the second upsert) and has accounts
    whose entries cancel out, existing (s0, s1) and new (s6); each batch is also delivered twice."""
    bank = await make_bank(enable_synchronization=False)
    store = store_of(bank)
    worker = SyncWorker(store.redis, store.sql, SyncOptions(consumer="sql"))
    await worker.prepare()
    await fund(bank, USERS[:4], 500)
    pending = await bank.hold("s0", "s1", 40, expires_in=60)
    captured = await bank.hold("s1", "s2", 30, expires_in=60)
    voided = await bank.hold("s2", "s3", 20, expires_in=60)
    await bank.transfer("s3", "s4", 25)
    first = await _read_batch(worker)
    await bank.capture(captured.id, 12)
    await bank.void(voided.id)
    await bank.transfer("s0", "s1", 7)
    await bank.transfer("s1", "s0", 7)
    await bank.transfer("s4", "s6", 5)
    await bank.transfer("s6", "s4", 5)
    await bank.transfer_many([TransferRequest(USERS[i % 4], USERS[(i + 1) % 6], 2) for i in range(12)])
    second = await _read_batch(worker)
    await worker.close()

    conn = await asyncpg.connect(POSTGRES_URL.replace("+asyncpg", ""), server_settings={"search_path": pg_schema})
    try:
        await _function_of(conn, "0007_lean_replicate.sql", "tb_replicate_batch_0007")
        before = await _state(conn)
        new_counts, new_state = await _outcome(conn, "tb_replicate_batch", first[1], second[1])
        old_counts, old_state = await _outcome(conn, "pg_temp.tb_replicate_batch_0007", first[1], second[1])
        assert await _state(conn) == before  # both rolled back
    finally:
        await conn.close()
    assert new_counts == old_counts == [first[0], 0, second[0], 0]
    assert new_state == old_state
    holds = {row[0]: row[1] for row in new_state["holds"]}
    assert holds == {pending.id: "pending", captured.id: "captured", voided.id: "voided"}
    accounts = {row[0]: row[1:] for row in new_state["accounts"]}
    assert accounts["s6"] == (0, 0) and accounts["s1"][1] == 0 and accounts["s0"][1] == 4000  # 40.00 held


def _entry(seq: int, kind: str, sender: str | None, receiver: str, amount: int) -> str:
    """A stream entry as the write scripts encode it (every field a string)."""
    fields = {"type": kind, "id": str(uuid.uuid4()), "created_at": str(1_700_000_000_000_000 + seq),
              "to_user_id": receiver, "amount": str(amount), "seq": str(seq), "to_balance_after": "0"}  # fmt: skip
    if sender is not None:
        fields.update(from_user_id=sender, from_balance_after="0")
    return json.dumps(fields)


async def test_0012_plans_made_on_a_new_schema_read_no_account_by_a_scan(
    make_bank: BankFactory, pg_schema: str
) -> None:
    """A worker's connection plans tb_replicate_batch's statements on its first calls and keeps the plans: made
    while the token had two accounts and no statistics, they must still reach each account of a batch through the
    primary key once it has thousands (0007's lock and update then read every account of the token by a scan)."""
    await make_bank(enable_synchronization=False)
    conn = await asyncpg.connect(POSTGRES_URL.replace("+asyncpg", ""), server_settings={"search_path": pg_schema})
    seq = iter(range(1000, 10**6))
    call = "SELECT tb_replicate_batch('HY', $1::jsonb)"
    try:
        for _ in range(8):  # past the plan cache's first five custom plans: a generic plan is kept
            await conn.fetchval(call, f"[{_entry(next(seq), 'mint', None, 'x0', 5)},"
                                      f"{_entry(next(seq), 'transfer', 'x0', 'x1', 1)}]")  # fmt: skip
        users = [f"u{i:05d}" for i in range(3000)]
        await conn.fetchval(call, "[" + ",".join(_entry(next(seq), "mint", None, u, 100) for u in users) + "]")
        try:
            await conn.execute("LOAD 'auto_explain'")
        except asyncpg.PostgresError as exc:
            pytest.skip(f"auto_explain is not available: {exc}")
        plans: list[str] = []
        conn.add_log_listener(lambda _conn, message: plans.append(str(message.message)))
        await conn.execute(
            "SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on; "
            "SET auto_explain.log_level = 'notice'"
        )
        transfers = [_entry(next(seq), "transfer", users[i], users[-1 - i], 1) for i in range(20)]
        assert await conn.fetchval(call, "[" + ",".join(transfers) + "]") == 20
        await conn.execute("SET auto_explain.log_min_duration = -1")
    finally:
        await conn.close()
    assert any("Insert on tb_accounts" in plan for plan in plans), plans
    scans = [plan for plan in plans if re.search(r"Scan\b.* on tb_accounts\b", plan)]
    assert not scans, scans


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
