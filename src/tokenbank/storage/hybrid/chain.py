"""Hybrid's chain: Redis gives each entry its seq and (through its sealer) its hash; PostgreSQL's copies of the
rows take the same hashes here, once the sync has copied them."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy import Connection

from tokenbank.storage.sql import chain as sql_chain
from tokenbank.storage.sql.schema import transactions

if TYPE_CHECKING:
    from tokenbank.storage.hybrid.backend import HybridStorage

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
        found = await store.redis.chain_entries(seqs[0] - 1, seqs[-1] - seqs[0] + 1)
        wanted = set(seqs)
        hashes = {e.tx.seq: e.hash for e in found if e.hash is not None and e.tx.seq in wanted}
        if not hashes:
            return carried  # older than the chain, or not sealed in Redis yet
        moved = await store.sql.run_sync(functools.partial(sql_chain.carry, token=token, hashes=hashes), write=True)
        carried += moved
        if len(hashes) < len(seqs) or not moved:
            return carried
