"""Account controls: freezes, closed accounts, maximum balances and spend limits per rolling window.

Revision ID: 0008
Revises: 0007

- ``tb_account_controls``: one row per account that has any control (none: no row). The write paths check them
  inside the write, after the account rows are locked: SQLite's writer in Python, PostgreSQL in ``tb_apply``
  (0008_account_controls.sql), which keeps its set-based path for calls whose accounts have no controls.
- ``tb_account_spends``: the debits a spend window counts, per account, pruned as they leave the window.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tokenbank.storage.sql.migrations.sqlfile import statements

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UNITS = sa.BigInteger()
TIME = sa.DateTime(timezone=True)


def _user_id() -> sa.types.TypeEngine[str]:
    return sa.String(128).with_variant(sa.String(128, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "tb_account_controls",
        sa.Column("token", sa.String(16), primary_key=True),
        sa.Column("user_id", _user_id(), primary_key=True),
        sa.Column("debits_frozen", sa.Boolean, nullable=False),
        sa.Column("credits_frozen", sa.Boolean, nullable=False),
        sa.Column("frozen_until", TIME),
        sa.Column("freeze_reason", sa.Text),
        sa.Column("closed", sa.Boolean, nullable=False),
        sa.Column("max_balance", UNITS),
        sa.Column("window_amount", UNITS),
        sa.Column("window_seconds", sa.Integer),
    )
    op.create_table(
        "tb_account_spends",
        sa.Column("token", sa.String(16), primary_key=True),
        sa.Column("user_id", _user_id(), primary_key=True),
        sa.Column("tx_id", sa.String(36), primary_key=True),
        sa.Column("amount", UNITS, nullable=False),
        sa.Column("at", TIME, nullable=False),
    )
    op.create_index("ix_tb_account_spends_window", "tb_account_spends", ["token", "user_id", "at"])
    if op.get_context().dialect.name == "postgresql":
        for statement in statements("0008_account_controls.sql"):
            op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for statement in statements("0003_lean_apply.sql"):  # tb_apply and tb_apply_transfers as 0003 has them
            op.execute(statement)
        op.execute("DROP FUNCTION tb_apply_controlled(text, jsonb)")
        op.execute("DROP FUNCTION tb_controls_refusal(text, jsonb, timestamptz)")
    op.drop_table("tb_account_spends")
    op.drop_table("tb_account_controls")
