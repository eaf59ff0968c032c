"""Hot accounts: an account's balance split into slices that concurrent debits lock one each.

Revision ID: 0015
Revises: 0014

``tb_account_shards`` (token, user_id, shard, balance) holds the slices; an account's balance is its
``tb_accounts`` row's plus the sum of its slices. On PostgreSQL, ``tb_hot_configure`` splits an account (or joins
it back), ``tb_apply_transfers`` debits a hot sender from one slice that holds enough (``FOR UPDATE SKIP LOCKED``),
locking all of them only when none does, and ``tb_apply`` gathers a hot account's slices into its row before any
other write and spreads them again after (0015_hot_accounts.sql). SQLite never fills the table: its writes are
applied one at a time, so nothing waits on a row.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tokenbank.storage.sql.migrations.sqlfile import statements

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    user_id = sa.String(128).with_variant(sa.String(128, collation="C"), "postgresql")
    op.create_table(
        "tb_account_shards",
        sa.Column("token", sa.String(16), primary_key=True),
        sa.Column("user_id", user_id, primary_key=True),
        sa.Column("shard", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
    )
    if op.get_context().dialect.name == "postgresql":
        for statement in statements("0015_hot_accounts.sql"):
            op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("UPDATE tb_accounts a SET balance = a.balance + s.total FROM (SELECT token, user_id, "
                   "sum(balance) AS total FROM tb_account_shards GROUP BY token, user_id) s "
                   "WHERE a.token = s.token AND a.user_id = s.user_id")  # fmt: skip
        for statement in statements("0014_lot_spend_order.sql"):
            if "FUNCTION tb_apply_transfers(" in statement:
                op.execute(statement)
        for statement in statements("0013_lots.sql"):
            if "FUNCTION tb_apply(" in statement:
                op.execute(statement)
        for name in ("tb_hot_configure(text, text, int)", "tb_hot_gather(text, text[])", "tb_hot_spread(text, text[])",
                     "tb_hot_spread_total(text, text, bigint)"):  # fmt: skip
            op.execute(f"DROP FUNCTION IF EXISTS {name}")
    op.drop_table("tb_account_shards")
