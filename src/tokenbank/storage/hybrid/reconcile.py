"""Compare Redis with PostgreSQL account by account, and optionally repair Redis from the store of record.

PostgreSQL only ever receives what Redis wrote, so once the backlog is drained the two must agree: every
difference is drift. Under live writes a first pass also sees entries still in flight, so each drifted account
is read again after the next drain, and only differences that persist are reported.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import Connection

from tokenbank.storage.hybrid import stream
from tokenbank.storage.hybrid.backfill import Progress
from tokenbank.storage.hybrid.chain import compare_chains
from tokenbank.storage.hybrid.checks import store_figures
from tokenbank.storage.hybrid.records import fetch
from tokenbank.storage.hybrid.repair import repair_redis
from tokenbank.storage.hybrid.replicate import conflict_count
from tokenbank.storage.hybrid.reports import AccountDrift, ReconcileReport
from tokenbank.storage.redis import lots as redis_lots
from tokenbank.storage.redis.errors import translated
from tokenbank.storage.sql import reads
from tokenbank.storage.sql.schema import accounts, lots, transactions

if TYPE_CHECKING:
    from tokenbank.storage.hybrid.pair import StorePair

DRAIN_TIMEOUT = 30.0
CHUNK = 5000
SAMPLE = 1000
RECHECKS = 3


async def reconcile(
    store: StorePair,
    *,
    repair: bool = False,
    drain_timeout: float = DRAIN_TIMEOUT,
    full: bool = False,
    progress: Progress | None = None,
) -> ReconcileReport:
    """Wait (at most ``drain_timeout`` s) for the sync backlog, then compare the stores: balances and held
    amounts of every account (HSCAN chunks against a keyset scan), total supply, and transactions by id
    (``full``, or whenever the counts differ; else a sample). ``repair``: make Redis agree with
    PostgreSQL (balances, held, leaderboard, supply, missing transactions and holds) with a
    ``reconcile.repair`` audit entry. Raises StorageError / StorageUnavailableError."""
    client, keys = store.redis.client, store.redis.keys
    drained = await stream.wait_drained(client, keys, drain_timeout)
    backlog = (await stream.read_backlog(client, keys)).entries
    redis_side = await _redis_accounts(store, progress)
    pg_side = await _postgres_accounts(store, progress)
    users = sorted(set(redis_side) | set(pg_side))
    suspects = [u for u in users if redis_side.get(u, (0, 0)) != pg_side.get(u, (0, 0))]
    drifted = await _confirm(store, suspects, drain_timeout)
    (r_supply, r_count), (p_supply, p_count) = await store_figures(store)
    for _ in range(RECHECKS if (r_supply, r_count) != (p_supply, p_count) else 0):
        await stream.wait_drained(client, keys, drain_timeout)
        (r_supply, r_count), (p_supply, p_count) = await store_figures(store)
    if full or r_count != p_count:
        missing_redis, missing_pg = await _all_ids(store, progress)
        mode = "full"
    else:
        missing_redis, missing_pg = await _sampled_ids(store)
        mode = "sampled"
    report = ReconcileReport(
        drained=drained, backlog=backlog, accounts_checked=len(users), drifted=drifted,
        redis_total_supply=r_supply, postgres_total_supply=p_supply, redis_transactions=r_count,
        postgres_transactions=p_count, missing_in_redis=missing_redis, missing_in_postgres=missing_pg,
        transactions_compared=mode, conflicts=await conflict_count(store.sql),
        chain_mismatches=await compare_chains(store, full=full), lot_mismatches=await _lot_mismatches(store),
    )  # fmt: skip
    if repair:
        report.repairs = await repair_redis(store, report)
        report.repaired = True
    return report


async def _lot_mismatches(store: StorePair) -> list[str]:
    """Open lots whose owner or remainder differs between Redis and PostgreSQL (after the drain), by id."""
    redis_side: dict[str, tuple[str, int]] = {}
    async with translated():
        async for _, text in store.redis.client.hscan_iter(store.redis.keys.lots, count=CHUNK):
            lot = redis_lots.decode(text)
            redis_side[lot.id] = (lot.user_id, lot.remaining)
    stmt = sa.select(lots.c.id, lots.c.user_id, lots.c.remaining).where(lots.c.token == store.sql.token,
                                                                         lots.c.remaining > 0)  # fmt: skip
    pg_side = {row.id: (row.user_id, int(row.remaining)) for row in await fetch(store.sql, stmt)}
    return sorted(lot_id for lot_id in set(redis_side) | set(pg_side) if redis_side.get(lot_id) != pg_side.get(lot_id))


async def _redis_accounts(store: StorePair, progress: Progress | None) -> dict[str, tuple[int, int]]:
    keys, client = store.redis.keys, store.redis.client
    out: dict[str, list[int]] = {}
    async with translated():
        async for user, value in client.hscan_iter(keys.bal, count=CHUNK):
            out.setdefault(user, [0, 0])[0] = int(value)
            if progress and len(out) % CHUNK == 0:
                progress("redis accounts", len(out), None)
        async for user, value in client.hscan_iter(keys.held, count=CHUNK):
            out.setdefault(user, [0, 0])[1] = int(value)
    return {user: (b, h) for user, (b, h) in out.items() if b or h}


async def _postgres_accounts(store: StorePair, progress: Progress | None) -> dict[str, tuple[int, int]]:
    token, after = store.sql.token, ""
    out: dict[str, tuple[int, int]] = {}
    while True:
        rows: Sequence[Any] = await fetch(store.sql, reads.accounts_after(token, after, CHUNK))
        if not rows:
            return out
        out.update({row.user_id: (int(row.balance), int(row.held)) for row in rows if row.balance or row.held})
        after = rows[-1].user_id
        if progress:
            progress("postgresql accounts", len(out), None)


async def _pair(store: StorePair, users: Sequence[str]) -> tuple[dict[str, tuple[int, int]], ...]:
    keys = store.redis.keys
    async with translated(), store.redis.client.pipeline(transaction=True) as pipe:
        pipe.hmget(keys.bal, list(users))
        pipe.hmget(keys.held, list(users))
        bal, held = await pipe.execute()
    redis_side = {u: (int(b or 0), int(h or 0)) for u, b, h in zip(users, bal, held, strict=True)}

    def read(conn: Connection) -> dict[str, tuple[int, int]]:
        rows = conn.execute(
            sa.select(accounts.c.user_id, accounts.c.balance, accounts.c.held).where(
                accounts.c.token == store.sql.token, accounts.c.user_id.in_(list(users))
            )
        )
        return {row.user_id: (int(row.balance), int(row.held)) for row in rows}

    return redis_side, await store.sql.run_sync(read)


async def _confirm(store: StorePair, suspects: list[str], drain_timeout: float) -> list[AccountDrift]:
    """Re-read suspects after each drain until their difference persists (or vanishes: it was in flight)."""
    client, keys = store.redis.client, store.redis.keys
    found: dict[str, AccountDrift] = {}
    for attempt in range(RECHECKS):
        if not suspects:
            break
        if attempt:
            await stream.wait_drained(client, keys, drain_timeout)
        still: list[str] = []
        for start in range(0, len(suspects), CHUNK):
            chunk = suspects[start : start + CHUNK]
            redis_side, pg_side = await _pair(store, chunk)
            for user in chunk:
                (rb, rh), (pb, ph) = redis_side.get(user, (0, 0)), pg_side.get(user, (0, 0))
                if (rb, rh) != (pb, ph):
                    still.append(user)
                    found[user] = AccountDrift(user, rb, pb, rh, ph)
        stable = set(still) == set(suspects) and attempt > 0
        suspects = still
        if stable:
            break
    return [found[user] for user in suspects]


async def _all_ids(store: StorePair, progress: Progress | None) -> tuple[list[str], list[str]]:
    """Every transaction id on both sides (HSCAN against a keyset scan by seq)."""
    redis_ids: dict[str, int] = {}
    async with translated():
        async for tx_id, row in store.redis.client.hscan_iter(store.redis.keys.tx, count=CHUNK):
            redis_ids[tx_id] = int(json.loads(row)["seq"])
            if progress and len(redis_ids) % CHUNK == 0:
                progress("redis transactions", len(redis_ids), None)
    pg_ids: dict[str, int] = {}
    after = 0
    while True:
        stmt = (
            sa.select(transactions.c.seq, transactions.c.id)
            .where(transactions.c.token == store.sql.token, transactions.c.seq > after)
            .order_by(transactions.c.seq)
            .limit(CHUNK * 4)
        )
        rows: Sequence[Any] = await fetch(store.sql, stmt)
        if not rows:
            break
        pg_ids.update({row.id: int(row.seq) for row in rows})
        after = rows[-1].seq
        if progress:
            progress("postgresql transactions", len(pg_ids), None)
    missing_pg = [i for i in redis_ids if i not in pg_ids]
    if missing_pg:  # may still be in flight: ask PostgreSQL again after the next drain
        await stream.wait_drained(store.redis.client, store.redis.keys, DRAIN_TIMEOUT)
        present = await _present_in_postgres(store, missing_pg)
        missing_pg = [i for i in missing_pg if i not in present]
    return (
        sorted((i for i in pg_ids if i not in redis_ids), key=pg_ids.__getitem__),
        sorted(missing_pg, key=redis_ids.__getitem__),
    )


async def _present_in_postgres(store: StorePair, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), CHUNK):
        chunk = list(ids[start : start + CHUNK])
        stmt = sa.select(transactions.c.id).where(transactions.c.token == store.sql.token, transactions.c.id.in_(chunk))
        found.update(row.id for row in await fetch(store.sql, stmt))
    return found


async def _sampled_ids(store: StorePair) -> tuple[list[str], list[str]]:
    """Equal counts: check a random sample of each side's ids in the other."""
    keys = store.redis.keys
    async with translated():
        redis_sample = [str(tx_id) for tx_id in await store.redis.client.hrandfield(keys.tx, SAMPLE) or []]
    present_pg = await _present_in_postgres(store, redis_sample)
    missing_pg = [i for i in redis_sample if i not in present_pg]

    def pg_sample(conn: Connection) -> list[str]:
        top = int(conn.scalar(sa.select(sa.func.max(transactions.c.seq)).where(
            transactions.c.token == store.sql.token)) or 0)  # fmt: skip
        seqs = sorted({random.randint(1, top) for _ in range(SAMPLE)}) if top else []
        stmt = sa.select(transactions.c.id).where(transactions.c.token == store.sql.token, transactions.c.seq.in_(seqs))
        return list(conn.scalars(stmt))

    sample = await store.sql.run_sync(pg_sample)
    async with translated():
        present = await store.redis.client.hmget(keys.tx, sample) if sample else []
    missing_redis = [i for i, row in zip(sample, present, strict=True) if row is None]
    return missing_redis, missing_pg
