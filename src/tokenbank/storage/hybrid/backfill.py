"""redis -> hybrid: copy a Redis ledger that PostgreSQL does not have yet, before the worker takes the stream.

1. One consistent snapshot in a MULTI: token, balances, held, holds, the seq counter S and the stream's last id
   P. (HGETALL blocks Redis for the length of the hashes: about a second per million accounts; migrate in a
   quiet moment.)
2. Every transaction of the ``:tx`` hash with seq <= S is inserted (chunked; ``ON CONFLICT (id) DO NOTHING``,
   no balance changes: the snapshot already contains their effect). Chunks may be repeated after a crash.
3. One transaction: the token row (only if absent: a concurrent backfill that finished first wins, this one
   stops), accounts and holds from the snapshot, and tb_sync_state (backfilled_seq = S).
4. The consumer group is put at P. Entries after P are exactly the transactions with seq > S, which the worker
   applies with their balance changes. Entries at or before P that a worker still gets (the group existed
   earlier, or a redelivery) are already in PostgreSQL, so the idempotent insert skips them and changes nothing.
Audit entries are not part of it: the worker copies Redis's audit log from its first entry on (audit_synced 0).
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from tokenbank.storage.hybrid import stream
from tokenbank.storage.redis.backend import RedisStorage
from tokenbank.storage.redis.errors import translated
from tokenbank.storage.sql.backend import SqlStorage

Progress = Callable[[str, int, int | None], None]
"""``progress(phase, done, total)``; total None when unknown."""

CHUNK = 5000
TX_COLUMNS = (
    "seq bigint, id text, type text, from_user_id text, to_user_id text, amount bigint, from_balance_after bigint, "
    "to_balance_after bigint, created_at bigint, metadata text, idempotency_key text, request_hash text, "
    "reason text, hold_id text, reverses_id text"
)
INSERT_TRANSACTIONS = sa.text(
    "INSERT INTO tb_transactions (seq, id, token, type, from_user_id, to_user_id, amount, from_balance_after, "
    "to_balance_after, created_at, metadata, idempotency_key, request_hash, reason, hold_id, reverses_id) "
    "OVERRIDING SYSTEM VALUE "
    "SELECT seq, id, :token, type, from_user_id, to_user_id, amount, from_balance_after, to_balance_after, "
    "tb_from_us(created_at), metadata, idempotency_key, request_hash, reason, hold_id, reverses_id "
    f"FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x({TX_COLUMNS}) ORDER BY seq ON CONFLICT (id) DO NOTHING"
)
_INSERT_TOKEN = sa.text(
    "INSERT INTO tb_tokens (symbol, name, decimals, emoji, treasury_account, initial_supply, max_supply, "
    "total_supply, created_at, leaderboard_exclude) VALUES (:symbol, :name, :decimals, :emoji, :treasury_account, "
    ":initial_supply, :max_supply, :total_supply, tb_from_us(:created_at), :leaderboard_exclude) "
    "ON CONFLICT (symbol) DO NOTHING RETURNING symbol"
)
_UPSERT_ACCOUNTS = sa.text(
    "INSERT INTO tb_accounts (token, user_id, balance, held) SELECT :token, user_id, balance, held "
    "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x(user_id text, balance bigint, held bigint) ORDER BY user_id "
    "ON CONFLICT (token, user_id) DO UPDATE SET balance = excluded.balance, held = excluded.held"
)
UPSERT_HOLDS = sa.text(
    "INSERT INTO tb_holds (id, token, from_user_id, to_user_id, amount, captured_amount, status, expires_at, "
    "created_at, metadata) SELECT id, :token, from_user_id, to_user_id, amount, captured_amount, status, "
    "tb_from_us(expires_at), tb_from_us(created_at), metadata FROM jsonb_to_recordset(CAST(:rows AS jsonb)) "
    "AS x(id text, from_user_id text, to_user_id text, amount bigint, captured_amount bigint, status text, "
    "expires_at bigint, created_at bigint, metadata text) ORDER BY id "
    "ON CONFLICT (id) DO UPDATE SET status = excluded.status, captured_amount = excluded.captured_amount"
)
_STATE = sa.text(
    "INSERT INTO tb_sync_state (token, applied, last_seq, backfilled_seq, audit_synced) "
    "VALUES (:token, 0, :seq, :seq, 0) ON CONFLICT (token) DO UPDATE SET backfilled_seq = :seq, "
    "last_seq = greatest(tb_sync_state.last_seq, :seq), updated_at = now()"
)
BUMP_SEQUENCE = sa.text(
    "SELECT pg_advisory_xact_lock(hashtext(pg_get_serial_sequence('tb_transactions', 'seq'))), "
    "setval(pg_get_serial_sequence('tb_transactions', 'seq'), greatest(CAST(:seq AS bigint), "
    "coalesce(pg_sequence_last_value(pg_get_serial_sequence('tb_transactions', 'seq')::regclass), 1)))"
)


@dataclass(frozen=True, slots=True)
class BackfillReport:
    seq: int
    """The snapshot's seq S: PostgreSQL now holds every transaction up to it."""
    stream_id: str
    """Where the consumer group starts (P)."""
    transactions: int
    accounts: int
    holds: int


@dataclass(frozen=True, slots=True)
class _Snapshot:
    token: dict[str, str]
    balances: dict[str, str]
    held: dict[str, str]
    holds: dict[str, str]
    seq: int
    stream_id: str


async def _snapshot(redis: RedisStorage) -> _Snapshot:
    keys = redis.keys
    async with translated(), redis.client.pipeline(transaction=True) as pipe:
        pipe.hgetall(keys.token)
        pipe.hgetall(keys.bal)
        pipe.hgetall(keys.held)
        pipe.hgetall(keys.holds)
        pipe.get(keys.seq)
        pipe.xrevrange(keys.stream, count=1)
        token, balances, held, holds, seq, last = await pipe.execute()
    stream_id = str(last[0][0]) if last else "0-0"
    return _Snapshot(token, balances, held, holds, int(seq or 0), stream_id)


async def backfill_postgres(
    redis: RedisStorage, sql: SqlStorage, *, progress: Progress | None = None
) -> BackfillReport | None:
    """Copy the Redis ledger into PostgreSQL if PostgreSQL has no row for the token (see the module docstring).
    Returns None when there was nothing to do (or a concurrent backfill finished first). Raises StorageError /
    StorageUnavailableError; safe to run again after a failure."""
    if await sql.get_token() is not None:
        return None
    snap = await _snapshot(redis)
    if not snap.token:
        return None
    copied = 0
    async for chunk in _transactions_upto(redis, snap.seq):
        await sql.run_sync(functools.partial(_insert_transactions, token=sql.token, rows=chunk), write=True)
        copied += len(chunk)
        if progress:
            progress("transactions", copied, snap.seq)
    done = await sql.run_sync(lambda conn: _finish(conn, sql.token, snap), write=True)
    if not done:
        return None
    await stream.position_group(redis.client, redis.keys, snap.stream_id)
    if progress:
        progress("snapshot", len(snap.balances), len(snap.balances))
    return BackfillReport(snap.seq, snap.stream_id, copied, len(set(snap.balances) | set(snap.held)), len(snap.holds))


async def _transactions_upto(redis: RedisStorage, seq: int) -> AsyncIterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    async with translated():
        async for _, row in redis.client.hscan_iter(redis.keys.tx, count=CHUNK):
            tx = json.loads(row)
            if int(tx["seq"]) <= seq:
                chunk.append(tx)
            if len(chunk) >= CHUNK:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def _insert_transactions(conn: Connection, token: str, rows: list[dict[str, Any]]) -> None:
    conn.execute(INSERT_TRANSACTIONS, {"token": token, "rows": json.dumps(rows, ensure_ascii=False)})


def _finish(conn: Connection, token: str, snap: _Snapshot) -> bool:
    t = snap.token
    params = {
        "symbol": t["symbol"], "name": t["name"], "decimals": int(t["decimals"]), "emoji": t.get("emoji"),
        "treasury_account": t["treasury_account"], "initial_supply": int(t["initial_supply"]),
        "max_supply": int(t["max_supply"]) if t.get("max_supply") else None,
        "total_supply": int(t["total_supply"]), "created_at": int(t["created_at"]),
        "leaderboard_exclude": t.get("leaderboard_exclude"),
    }  # fmt: skip
    if conn.execute(_INSERT_TOKEN, params).first() is None:
        return False
    users = sorted(set(snap.balances) | set(snap.held))
    accounts = [{"user_id": u, "balance": snap.balances.get(u, "0"), "held": snap.held.get(u, "0")} for u in users]
    for start in range(0, len(accounts), CHUNK):
        rows = json.dumps(accounts[start : start + CHUNK], ensure_ascii=False)
        conn.execute(_UPSERT_ACCOUNTS, {"token": token, "rows": rows})
    holds = [hold_row(json.loads(row)) for row in snap.holds.values()]
    for start in range(0, len(holds), CHUNK):
        conn.execute(UPSERT_HOLDS, {"token": token, "rows": json.dumps(holds[start : start + CHUNK])})
    conn.execute(_STATE, {"token": token, "seq": snap.seq})
    if snap.seq:
        conn.execute(BUMP_SEQUENCE, {"seq": snap.seq})
    return True


def hold_row(hold: Mapping[str, Any]) -> dict[str, Any]:
    """A Redis hold JSON as the columns of tb_holds (times stay microseconds: tb_from_us converts)."""
    return {
        "id": hold["id"], "from_user_id": hold["from_user_id"], "to_user_id": hold["to_user_id"],
        "amount": hold["amount"], "captured_amount": hold.get("captured_amount", "0"), "status": hold["status"],
        "expires_at": hold["expires_at"], "created_at": hold["created_at"], "metadata": hold.get("metadata"),
    }  # fmt: skip
