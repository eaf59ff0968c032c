"""Hybrid sync: per-token seq key, sync state, quarantine of conflicting entries, tb_replicate (PostgreSQL only).

Revision ID: 0002
Revises: 0001

Why the primary key of ``tb_transactions`` becomes ``(token, seq)``: in hybrid mode the journal row keeps the
seq that Redis gave the transaction (a per-token counter), so that a history cursor means the same in
both stores. Two tokens in one database then both have a seq 1, which the old key (``seq`` alone) refused.
SQL mode is unaffected: its seqs come from the same global sequence as before, unique per token a fortiori.
SQLite never runs hybrid mode, so nothing changes there.
"""

from __future__ import annotations

from alembic import op

from tokenbank.storage.sql.migrations.sqlfile import statements

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE tb_transactions DROP CONSTRAINT tb_transactions_pkey")
    op.execute("ALTER TABLE tb_transactions ADD CONSTRAINT tb_transactions_pkey PRIMARY KEY (token, seq)")
    for statement in statements("0002_hybrid_sync.sql"):  # tables, tb_from_us, tb_replicate(_batch)
        op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for name in ("tb_replicate(text, jsonb, jsonb, jsonb, boolean)", "tb_replicate_batch(text, jsonb)",
                 "tb_from_us(bigint)"):  # fmt: skip
        op.execute(f"DROP FUNCTION IF EXISTS {name}")
    op.execute("DROP TABLE IF EXISTS tb_sync_conflicts")
    op.execute("DROP TABLE IF EXISTS tb_sync_state")
    op.execute("ALTER TABLE tb_transactions DROP CONSTRAINT tb_transactions_pkey")
    op.execute("ALTER TABLE tb_transactions ADD CONSTRAINT tb_transactions_pkey PRIMARY KEY (seq)")
