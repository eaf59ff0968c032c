"""Hybrid's chain: Redis gives each entry its seq and (through its sealer) its hash; PostgreSQL's copies of the
rows take the same hashes here, once the sync has copied them."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy import Connection

from tokenbank.chain.encoding import GENESIS, chain_hash
from tokenbank.storage.sql import chain as sql_chain
from tokenbank.storage.sql.schema import transactions

if TYPE_CHECKING:
    from tokenbank.storage.hybrid.backend import HybridStorage
    from tokenbank.storage.hybrid.pair import StorePair

BATCH = 5000


async def carry_hashes(store: HybridStorage) -> int:
    """Copy Redis's hashes to PostgreSQL rows that have none yet, oldest first; how many rows took one."""
    token, carried = store.token, 0
    while True:

        def unhashed(conn: Connection) -> list[int]:
            query = (
                sa.select(transactions.c.seq)
                .where(transactions.c.token == token, transactions.c.hash.is_(None))
                .order_by(transactions.c.seq)
                .limit(BATCH)
            )
            return [int(seq) for seq in conn.scalars(query)]

        seqs = await store.sql.run_sync(unhashed)
        if not seqs:
            return carried
        sealed = await store.redis.chain_hashes(seqs[0] - 1, seqs[-1] - seqs[0] + 1)
        hashes = {seq: sealed[seq] for seq in seqs if seq in sealed}
        if not hashes:
            return carried  # older than the chain, or not sealed in Redis yet
        moved = await store.sql.run_sync(functools.partial(sql_chain.carry, token=token, hashes=hashes), write=True)
        carried += moved
        if len(hashes) < len(seqs) or not moved:
            return carried


RECENT = 10_000
"""Entries compared by a reconcile that is not ``full``: the newest ones, where a copy is most likely to differ."""


async def compare_chains(store: StorePair, *, full: bool = False) -> list[int]:
    """Seqs whose PostgreSQL row does not hash to Redis's hash for that seq (each row on its own: its content after
    Redis's previous hash), and seqs Redis hashed that PostgreSQL lacks. Only entries both stores could hold
    (sealed in Redis, up to PostgreSQL's newest row); with ``full`` all of them, else the newest :data:`RECENT`."""
    await store.redis.chain_seal()
    token = store.redis.settings.symbol
    after = 0
    if not full:
        count = await store.redis.client.llen(store.redis.keys.chain_hashes)
        if count > RECENT:
            first = await store.redis.chain.entries_at(count - RECENT - 1, 1)
            after = first[0].tx.seq if first else 0
    newest_pg = await store.sql.run_sync(
        lambda conn: conn.scalar(sa.select(sa.func.max(transactions.c.seq)).where(transactions.c.token == token))
    )
    redis_side = [e for e in await store.redis.chain_entries(after, 1_000_000) if e.hash is not None]
    if not redis_side or newest_pg is None:
        return []
    pg_rows = {e.tx.seq: e.tx for e in await store.sql.chain_entries(redis_side[0].tx.seq - 1, len(redis_side) * 2)}
    prev = await _hash_before(store, redis_side[0].tx.seq)
    differing = []
    for item in redis_side:
        if item.tx.seq > newest_pg:
            break
        row = pg_rows.get(item.tx.seq)
        if row is None or chain_hash(prev, token, row) != item.hash:
            differing.append(item.tx.seq)
        prev = item.hash or prev
    return differing


async def _hash_before(store: StorePair, seq: int) -> str:
    """Redis's hash of the entry before ``seq`` (genesis for the chain's first)."""
    position = await store.redis.chain.position(seq - 1)
    if position == 0:
        return GENESIS
    before = await store.redis.chain.entries_at(position - 1, 1)
    return before[0].hash if before and before[0].hash else GENESIS
