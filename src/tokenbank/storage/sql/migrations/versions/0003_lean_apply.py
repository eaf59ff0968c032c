"""Leaner PostgreSQL write path: set-based tb_apply for plain transfers, a json answer, partial unique indexes.

Revision ID: 0003
Revises: 0002

Why (measured on PostgreSQL 15, docs/performance.md): tb_apply spent its time per op, not per call — two account
updates (each a new row version plus two index entries: the leaderboard index holds the balance, so no update is
HOT), a journal row with seven index entries, and a jsonb result re-encoded per op. Now a call of plain transfers
(0003_lean_apply.sql, ``tb_apply_transfers``) runs its ops on the locked balances in memory, then writes each
changed account once, inserts the journal rows in one statement and answers in ``json``, which is built as text
(``jsonb`` built per op cost more than the journal insert). Other calls run op by op as before.

``ux_tb_transactions_idempotency`` and ``ux_tb_transactions_reverses`` become partial (``WHERE ... IS NOT NULL``):
most rows have neither, and NULLs never conflicted, so the indexes keep every guarantee and lookup while a plain
transfer writes two index entries less. SQLite keeps its indexes and its writer (nothing changes there).
"""

from __future__ import annotations

from alembic import op

from tokenbank.storage.sql.migrations.sqlfile import statements

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_PARTIAL = (("ux_tb_transactions_idempotency", "idempotency_key"), ("ux_tb_transactions_reverses", "reverses_id"))


def _unique_indexes(partial: bool) -> None:
    for name, column in _PARTIAL:
        where = f" WHERE {column} IS NOT NULL" if partial else ""
        op.execute(f"CREATE UNIQUE INDEX {name}_new ON tb_transactions (token, {column}){where}")
        op.execute(f"DROP INDEX {name}")
        op.execute(f"ALTER INDEX {name}_new RENAME TO {name}")


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    _unique_indexes(partial=True)
    op.execute("DROP FUNCTION tb_apply(text, jsonb, boolean)")  # its result type changes: jsonb -> json
    for statement in statements("0003_lean_apply.sql"):
        op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION tb_apply_transfers(text, jsonb, boolean)")
    op.execute("DROP FUNCTION tb_apply(text, jsonb, boolean)")
    for statement in statements("0001_initial.sql"):  # tb_apply as 0001 defined it
        op.execute(statement)
    _unique_indexes(partial=False)
