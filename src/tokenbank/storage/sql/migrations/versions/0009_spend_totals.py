"""Spend windows in O(1): a running total per account instead of summing the window's rows on every debit.

Revision ID: 0009
Revises: 0008

- ``tb_account_controls`` gains ``spent_total``, ``spent_through`` and ``spent_oldest``: the spends an account's
  window counts, added up as they are made and reduced as they leave it (see 0009_spend_totals.sql for the
  rule that keeps the total exact). A NULL ``spent_through`` means "not counted yet": the next check sums the
  window's rows once, so existing accounts need no backfill.
- PostgreSQL: ``tb_controls_refusal``, ``tb_apply_controlled`` and ``tb_apply_transfers`` read and keep the
  totals (0009_spend_totals.sql); SQLite's writer does the same in Python.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tokenbank.storage.sql.migrations.sqlfile import statements

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("tb_account_controls", sa.Column("spent_total", sa.BigInteger(), nullable=False, server_default="0"))
    op.add_column("tb_account_controls", sa.Column("spent_through", TIME))
    op.add_column("tb_account_controls", sa.Column("spent_oldest", TIME))
    if op.get_context().dialect.name == "postgresql":
        for statement in statements("0009_spend_totals.sql"):
            op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP FUNCTION tb_window_spent(text, tb_account_controls, timestamptz)")
        op.execute("DROP FUNCTION tb_spend_refresh(text, text[], timestamptz)")
        for statement in statements("0008_account_controls.sql"):  # the functions as 0008 has them
            op.execute(statement)
    with op.batch_alter_table("tb_account_controls") as batch:
        batch.drop_column("spent_oldest")
        batch.drop_column("spent_through")
        batch.drop_column("spent_total")
