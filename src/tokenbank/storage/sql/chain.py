"""The journal's hash chain on SQL: reading entries and checkpoints, and PostgreSQL's sealer.

SQLite hashes each row in the write's own transaction (write_steps_sqlite.py). PostgreSQL takes seq from a sequence,
so concurrent writes commit out of seq order and a hash needing the previous one at write time would serialise
every write of a token on one row. Its rows are written with a NULL hash instead, and :func:`seal` hashes them
afterwards in seq order, but only up to a *horizon*: the sequence's last value, once every transaction that was
running when it was read has ended. Every write path locks rows before it takes a seq, so such a write has a
transaction id by then and shows in the snapshot taken after the read; when they have all ended, each seq up to
the horizon is either committed (visible) or rolled back (a gap forever), and nothing can appear below it later.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from tokenbank.chain.encoding import GENESIS, chain_hash
from tokenbank.chain.proofs import Checkpoint
from tokenbank.errors import StorageError, StorageUnavailableError
from tokenbank.storage.capabilities import ChainEntry
from tokenbank.storage.sql.schema import chain_heads, checkpoints, transactions
from tokenbank.storage.wire import SQL

SEAL_BATCH = 5000
"""Rows hashed per sealing transaction."""

HORIZON_TIMEOUT = 30.0
"""Seconds the sealer waits for transactions that were running when it read the sequence."""

_CHECKPOINT_COLUMNS = [c for c in checkpoints.c if c.name != "token"]


def entries(conn: Connection, token: str, after_seq: int, limit: int) -> list[ChainEntry]:
    rows = conn.execute(
        sa.select(transactions)
        .where(transactions.c.token == token, transactions.c.seq > after_seq)
        .order_by(transactions.c.seq)
        .limit(limit)
    ).mappings()
    return [ChainEntry(SQL.tx(row), row["hash"]) for row in rows]


def entry(conn: Connection, token: str, tx_id: str) -> ChainEntry | None:
    row = (
        conn.execute(sa.select(transactions).where(transactions.c.id == tx_id, transactions.c.token == token))
        .mappings()
        .first()
    )
    return None if row is None else ChainEntry(SQL.tx(row), row["hash"])


def _checkpoint(row: Any) -> Checkpoint:
    return Checkpoint.from_dict(dict(row))


def checkpoint_list(conn: Connection, token: str, after_seq: int, limit: int) -> list[Checkpoint]:
    query = (
        sa.select(checkpoints)
        .where(checkpoints.c.token == token, checkpoints.c.seq > after_seq)
        .order_by(checkpoints.c.seq)
        .limit(limit)
    )
    return [_checkpoint(row) for row in conn.execute(query).mappings()]


def last_checkpoint(conn: Connection, token: str) -> Checkpoint | None:
    query = sa.select(checkpoints).where(checkpoints.c.token == token).order_by(checkpoints.c.seq.desc()).limit(1)
    row = conn.execute(query).mappings().first()
    return None if row is None else _checkpoint(row)


def add_checkpoint(conn: Connection, checkpoint: Checkpoint) -> bool:
    """Insert ``checkpoint`` if the last stored one still ends at its ``previous_seq`` (the token's head row is
    locked first, so two checkpointing processes take turns)."""
    token = checkpoint.token
    _lock_head(conn, token)
    last = last_checkpoint(conn, token)
    if (0 if last is None else last.seq) != checkpoint.previous_seq:
        return False
    conn.execute(sa.insert(checkpoints).values(**checkpoint.as_dict()))
    return True


def _lock_head(conn: Connection, token: str) -> tuple[int, str]:
    """The token's chain head, its row locked until the transaction ends (created at (0, genesis) if missing)."""
    conn.execute(
        sa.text("INSERT INTO tb_chain_heads (token, seq, hash) VALUES (:t, 0, :g) ON CONFLICT (token) DO NOTHING"),
        {"t": token, "g": GENESIS},
    )
    row = conn.execute(
        sa.select(chain_heads.c.seq, chain_heads.c.hash).where(chain_heads.c.token == token).with_for_update()
    ).one()
    return int(row.seq), row.hash


def horizon(conn: Connection, *, timeout: float = HORIZON_TIMEOUT) -> int:
    """PostgreSQL: the highest seq below which no write can still commit (see the module docstring). Runs in a
    read-only transaction; waits (in the database, so the event loop stays free) for transactions in flight."""
    last = conn.scalar(sa.text("SELECT pg_sequence_last_value(pg_get_serial_sequence('tb_transactions', 'seq'))"))
    xip = conn.scalar(sa.text("SELECT array_agg(x::text) FROM pg_snapshot_xip(pg_current_snapshot()) x"))
    running = [int(x) for x in xip or ()]
    if running:
        deadline = time.monotonic() + timeout
        probe = sa.text("SELECT count(*) FROM unnest(CAST(:xids AS xid8[])) x WHERE pg_xact_status(x) = 'in progress'")
        while conn.scalar(probe, {"xids": running}):
            if time.monotonic() > deadline:
                raise StorageUnavailableError(
                    f"the chain sealer waited {timeout:.0f} s for transactions that were running when it started"
                )
            conn.execute(sa.text("SELECT pg_sleep(0.002)"))
    return 0 if last is None else int(last)


def seal_upto(conn: Connection, token: str, upto: int) -> int:
    """Hash the token's unhashed rows with seq up to ``upto``, in seq order, continuing from the head; at most
    :data:`SEAL_BATCH` rows. Returns how many it hashed. Raises StorageError when a stored hash past the head does
    not follow the chain (the journal was changed)."""
    head_seq, head_hash = _lock_head(conn, token)
    rows = conn.execute(
        sa.select(transactions)
        .where(transactions.c.token == token, transactions.c.seq > head_seq, transactions.c.seq <= upto)
        .order_by(transactions.c.seq)
        .limit(SEAL_BATCH)
    ).mappings()
    updates: list[dict[str, Any]] = []
    for row in rows:
        digest = chain_hash(head_hash, token, SQL.tx(row))
        if row["hash"] is None:
            updates.append({"s": row["seq"], "h": digest})
        elif row["hash"] != digest:
            raise StorageError(f"chain broken at seq {row['seq']}: its stored hash does not follow the chain")
        head_seq, head_hash = row["seq"], digest
    _set_hashes(conn, token, updates)
    conn.execute(sa.update(chain_heads).where(chain_heads.c.token == token).values(seq=head_seq, hash=head_hash))
    return len(updates)


def carry(conn: Connection, token: str, hashes: dict[int, str]) -> int:
    """Hybrid: give PostgreSQL's copies the hashes Redis gave the entries (rows replicated and still unhashed).
    Returns how many rows took a hash."""
    rows = conn.execute(
        sa.select(transactions.c.seq).where(
            transactions.c.token == token, transactions.c.seq.in_(list(hashes)), transactions.c.hash.is_(None)
        )
    ).all()
    updates = [{"s": row.seq, "h": hashes[row.seq]} for row in rows]
    _set_hashes(conn, token, updates)
    return len(updates)


def _set_hashes(conn: Connection, token: str, updates: list[dict[str, Any]]) -> None:
    """Fill NULL hashes: one statement on PostgreSQL (a row per statement cost ~10x), executemany on SQLite."""
    if not updates:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.text(
                "UPDATE tb_transactions t SET hash = u.h "
                "FROM unnest(CAST(:s AS bigint[]), CAST(:h AS text[])) AS u(s, h) "
                "WHERE t.token = :t AND t.seq = u.s AND t.hash IS NULL"
            ),
            {"t": token, "s": [u["s"] for u in updates], "h": [u["h"] for u in updates]},
        )
    else:
        conn.execute(
            sa.text("UPDATE tb_transactions SET hash = :h WHERE token = :t AND seq = :s AND hash IS NULL"),
            [{**u, "t": token} for u in updates],
        )
