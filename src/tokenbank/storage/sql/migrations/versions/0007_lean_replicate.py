"""Leaner hybrid sync: ``tb_replicate_batch`` sums the rows it inserted in the INSERT's own statement.

Revision ID: 0007
Revises: 0006

Why (measured on PostgreSQL 15, docs/performance.md): once the sync worker reads its next batch while PostgreSQL
writes the current one, the drain of a backlog is as fast as ``tb_replicate``. 0002's version turned the rows it
inserted into jsonb and parsed that three times (account deltas, holds, supply), ran its hold and supply
statements for every batch, and upserted every account it touched before locking them; that was a fifth of its
PostgreSQL CPU per batch of plain transfers (246 -> 196 ms for 5,000 entries over 6,354 accounts). The contract
is the same (0007_lean_replicate.sql): insert the entries not seen before, by id, and apply exactly those.
PostgreSQL only, like 0002.
"""

from __future__ import annotations

from alembic import op

from tokenbank.storage.sql.migrations.sqlfile import statements

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for statement in statements("0007_lean_replicate.sql"):
        op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for statement in statements("0002_hybrid_sync.sql"):  # tb_replicate_batch as 0002 defined it
        if "FUNCTION tb_replicate_batch(" in statement:
            op.execute(statement)
