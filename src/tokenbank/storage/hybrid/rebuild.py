"""Rebuild Redis from PostgreSQL after Redis lost its data (``tokenbank rebuild-cache``).

Order matters: the token hash goes first (from then on every write script answers "token not initialized",
so nothing is written into a half-built ledger) and comes back last, when balances, held amounts, the
leaderboard, transactions, idempotency keys, reversals, holds, the audit log and the counters are in place.

Every transaction goes back into the ``:tx`` hash (as in normal operation, where Redis keeps them all): replays
of idempotency keys and reversals of old transfers read the original there. Each account's history index gets
its newest ``history_retention`` entries; older pages come from PostgreSQL, as for any trimmed account.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import Connection

from tokenbank.chain.encoding import GENESIS, chain_hash
from tokenbank.errors import StorageError
from tokenbank.storage.hybrid import stream
from tokenbank.storage.hybrid.backfill import Progress
from tokenbank.storage.hybrid.records import audit_json, fetch, stored_hold, stored_transaction
from tokenbank.storage.hybrid.reports import RebuildReport
from tokenbank.storage.redis import layout
from tokenbank.storage.redis.codec import token_fields
from tokenbank.storage.redis.errors import translated
from tokenbank.storage.sql import reads
from tokenbank.storage.sql.controls import controls_record
from tokenbank.storage.sql.schema import account_controls, accounts, audit, holds, lots, transactions
from tokenbank.storage.wire import SQL

if TYPE_CHECKING:
    from tokenbank.storage.hybrid.pair import StorePair

CHUNK = 5000
_AUDIT_SYNCED = sa.text(
    "INSERT INTO tb_sync_state (token, audit_synced) VALUES (:token, :n) "
    "ON CONFLICT (token) DO UPDATE SET audit_synced = :n, updated_at = now()"
)


async def rebuild_cache(store: StorePair, *, force: bool = False, progress: Progress | None = None) -> RebuildReport:
    """Restore the token's Redis ledger from PostgreSQL. Refuses (StorageError) while Redis still holds the
    token, unless ``force``: what Redis has not synced yet would be lost. ``progress(phase, done, total)`` is
    called per chunk. Raises StorageError / StorageUnavailableError."""
    started = time.perf_counter()
    redis, sql = store.redis, store.sql
    client, keys = redis.client, redis.keys
    token = await sql.get_token()
    if token is None:
        raise StorageError(f"PostgreSQL has no token {sql.token}: nothing to rebuild Redis from")
    if await redis.get_token() is not None and not force:
        raise StorageError(
            f"Redis still holds token {sql.token}; rebuilding would drop what it has not synced yet "
            "(run `tokenbank reconcile` first, or pass --force)"
        )
    async with translated():
        await layout.drop_token(client, keys)
    totals = await sql.run_sync(lambda conn: _totals(conn, sql.token))
    n_accounts = await _accounts(store, totals, progress)
    n_tx, trimmed = await _transactions(store, totals, progress)
    n_holds = await _holds(store, totals, progress)
    n_audit = await _audit(store, totals, progress)
    await _controls(store)
    await _lots(store)
    top_seq = await sql.run_sync(lambda conn: _max_seq(conn, sql.token))
    async with translated():
        await layout.set_counter(client, keys.seq, top_seq)
    await stream.ensure_group(client, keys)
    details = {"accounts": n_accounts, "transactions": n_tx, "holds": n_holds, "audit_entries": n_audit}
    await redis.append_audit("cache.rebuild", json.dumps(details))
    fields = {**token_fields(token), "total_supply": str(token.total_supply)}
    async with translated():
        await layout.put_token(client, keys, fields)
    return RebuildReport(n_accounts, n_tx, n_holds, n_audit, trimmed, time.perf_counter() - started)


async def _controls(store: StorePair) -> None:
    """Every account's controls (spend windows start empty: PostgreSQL keeps no spends of hybrid mode)."""
    sql = store.sql
    stmt = sa.select(account_controls).where(account_controls.c.token == sql.token)
    rows: Sequence[Any] = await fetch(sql, stmt)
    entries = {row.user_id: controls_record(row).to_json(row.user_id) for row in rows}
    if entries:
        async with translated():
            await layout.put_controls(store.redis.client, store.redis.keys, entries)


async def _lots(store: StorePair) -> None:
    """Every credit lot, CHUNK accounts at a time. Used-up lots come too: a void or a reversal may still give back
    to them."""
    sql, after = store.sql, ""
    while True:
        users_stmt = (
            sa.select(lots.c.user_id).distinct().where(lots.c.token == sql.token, lots.c.user_id > after)
            .order_by(lots.c.user_id).limit(CHUNK)
        )  # fmt: skip
        users = [row.user_id for row in await fetch(sql, users_stmt)]
        if not users:
            return
        rows: Sequence[Any] = await fetch(
            sql, sa.select(lots).where(lots.c.token == sql.token, lots.c.user_id.in_(users))
        )
        async with translated(), store.redis.client.pipeline(transaction=False) as pipe:
            layout.put_lots(pipe, store.redis.keys, map(SQL.lot, rows))
            await pipe.execute()
        after = users[-1]


def _totals(conn: Connection, token: str) -> dict[str, int]:
    def count(table: sa.Table) -> int:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(table).where(table.c.token == token)) or 0)

    return {"accounts": count(accounts), "transactions": count(transactions), "holds": count(holds),
            "audit": count(audit)}  # fmt: skip


def _max_seq(conn: Connection, token: str) -> int:
    return int(conn.scalar(sa.select(sa.func.max(transactions.c.seq)).where(transactions.c.token == token)) or 0)


async def _accounts(store: StorePair, totals: dict[str, int], progress: Progress | None) -> int:
    keys, token = store.redis.keys, store.sql.token
    after, done = "", 0
    while True:
        rows: Sequence[Any] = await fetch(store.sql, reads.accounts_after(token, after, CHUNK))
        if not rows:
            return done
        async with translated(), store.redis.client.pipeline(transaction=False) as pipe:
            layout.put_accounts(pipe, keys, ((row.user_id, row.balance, row.held) for row in rows))
            await pipe.execute()
        after, done = rows[-1].user_id, done + len(rows)
        if progress:
            progress("accounts", done, totals["accounts"])


async def _transactions(store: StorePair, totals: dict[str, int], progress: Progress | None) -> tuple[int, int]:
    keys, token = store.redis.keys, store.sql.token
    per_account: dict[str, int] = defaultdict(int)
    after, done = 0, 0
    chain_prev: str | None = None  # the hash chain, restored from the first hashed row on (see _chain)
    while True:
        stmt = sa.select(transactions).where(transactions.c.token == token, transactions.c.seq > after)
        stmt = stmt.order_by(transactions.c.seq).limit(CHUNK)
        rows: Sequence[Any] = await fetch(store.sql, stmt)
        if not rows:
            break
        async with translated(), store.redis.client.pipeline(transaction=False) as pipe:
            entries = [stored_transaction(row) for row in rows]
            layout.put_transactions(pipe, keys, entries)
            chain_prev = _chain(pipe, keys, token, rows, chain_prev)
            await pipe.execute()
        for entry in entries:
            for user in entry.accounts:
                per_account[user] += 1
        after, done = rows[-1].seq, done + len(rows)
        if progress:
            progress("transactions", done, totals["transactions"])
    keep = store.settings.history_retention
    trimmed = [user for user, count in per_account.items() if count > keep]
    for start in range(0, len(trimmed), 1000):
        async with translated(), store.redis.client.pipeline(transaction=False) as pipe:
            layout.trim_histories(pipe, keys, {user: per_account[user] for user in trimmed[start : start + 1000]}, keep)
            await pipe.execute()
    return done, len(trimmed)


def _chain(pipe: Any, keys: Any, token: str, rows: Sequence[Any], prev: str | None) -> str | None:
    """Queue the chain list and its hashes from PostgreSQL's rows: from the first hashed row on, each row's hash
    (a row the hashes had not been copied to yet is hashed from its content, which is what Redis had hashed).
    Returns the last hash (None while no row is hashed). Checkpoints lived in Redis only and are not restored."""
    items, hashes = [], []
    for row in rows:
        if row.hash is None and prev is None:
            continue  # older than the chain
        prev = row.hash or chain_hash(prev or GENESIS, token, SQL.tx(row))
        items.append(f"{row.seq}:{row.id}")
        hashes.append(prev)
    if items:
        pipe.rpush(keys.chain, *items)
        pipe.rpush(keys.chain_hashes, *hashes)
    return prev


async def _holds(store: StorePair, totals: dict[str, int], progress: Progress | None) -> int:
    keys, token = store.redis.keys, store.sql.token
    after, done = "", 0
    while True:
        stmt = sa.select(holds).where(holds.c.token == token, holds.c.id > after).order_by(holds.c.id).limit(CHUNK)
        rows: Sequence[Any] = await fetch(store.sql, stmt)
        if not rows:
            return done
        async with translated(), store.redis.client.pipeline(transaction=False) as pipe:
            layout.put_holds(pipe, keys, map(stored_hold, rows))
            await pipe.execute()
        after, done = rows[-1].id, done + len(rows)
        if progress:
            progress("holds", done, totals["holds"])


async def _audit(store: StorePair, totals: dict[str, int], progress: Progress | None) -> int:
    """The audit log, renumbered 1..n in PostgreSQL's order. The sync state learns n BEFORE Redis gets the
    entries, so a worker running meanwhile never copies them back into PostgreSQL."""
    keys, sql = store.redis.keys, store.sql
    n = totals["audit"]
    await sql.run_sync(lambda conn: conn.execute(_AUDIT_SYNCED, {"token": sql.token, "n": n}), write=True)
    after, done = 0, 0
    while True:
        stmt = sa.select(audit).where(audit.c.token == sql.token, audit.c.id > after).order_by(audit.c.id).limit(CHUNK)
        rows: Sequence[Any] = await fetch(sql, stmt)
        if not rows or done >= n:
            break
        rows = rows[: n - done]
        async with translated():
            await layout.put_audit(
                store.redis.client, keys, {str(done + i + 1): audit_json(row) for i, row in enumerate(rows)}
            )
        after, done = rows[-1].id, done + len(rows)
        if progress:
            progress("audit", done, n)
    async with translated():
        await layout.set_counter(store.redis.client, keys.auditseq, done)
    return done
