"""Spend windows in O(1): a running total per account instead of summing the window's rows on every debit.

Revision ID: 0009
Revises: 0008

- ``tb_account_controls`` gains ``spent_total``, ``spent_through`` and ``spent_oldest``: the spends an account's
  window counts, added up as they are made and reduced as they leave it (see 0009_spend_totals.sql for the
  rule that keeps the total exact). A NULL ``spent_through`` means "not counted yet": the next check sums the
  window's rows once, so existing accounts need no backfill.
- ``tb_account_spends`` is keyed by ``(token, user_id, at, tx_id)``, which serves the window's range reads, in place
  of a key by transaction and a second index by time: one B-tree to write per spend instead of two (on SQLite,
  where the table is rebuilt WITHOUT ROWID, one instead of three).
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
    _key_spends(("token", "user_id", "at", "tx_id"), rowid=False, window_index=False)
    if op.get_context().dialect.name == "postgresql":
        for statement in statements("0009_spend_totals.sql"):
            op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP FUNCTION tb_window_spent(text, tb_account_controls, timestamptz)")
        op.execute("DROP FUNCTION tb_spend_refresh(text, text[], timestamptz)")
        for statement in statements("0008_account_controls.sql"):  # the functions as 0008 has them
            op.execute(statement)
    _key_spends(("token", "user_id", "tx_id"), rowid=True, window_index=True)
    with op.batch_alter_table("tb_account_controls") as batch:
        batch.drop_column("spent_oldest")
        batch.drop_column("spent_through")
        batch.drop_column("spent_total")


def _key_spends(key: tuple[str, ...], *, rowid: bool, window_index: bool) -> None:
    """Give ``tb_account_spends`` the primary key ``key`` (and the time index or not), keeping its rows."""
    if op.get_context().dialect.name == "postgresql":
        op.drop_constraint("tb_account_spends_pkey", "tb_account_spends", type_="primary")
        op.create_primary_key("tb_account_spends_pkey", "tb_account_spends", list(key))
        if window_index:
            op.create_index("ix_tb_account_spends_window", "tb_account_spends", ["token", "user_id", "at"])
        else:
            op.drop_index("ix_tb_account_spends_window", table_name="tb_account_spends")
        return
    # SQLite cannot change a key in place: a new table, the rows copied over, then renamed.
    op.execute(
        "CREATE TABLE tb_account_spends_0009 (token VARCHAR(16) NOT NULL, user_id VARCHAR(128) NOT NULL, "
        "tx_id VARCHAR(36) NOT NULL, amount BIGINT NOT NULL, at DATETIME NOT NULL, "
        f"PRIMARY KEY ({', '.join(key)})){'' if rowid else ' WITHOUT ROWID'}"
    )
    op.execute(
        "INSERT INTO tb_account_spends_0009 (token, user_id, tx_id, amount, at) "
        "SELECT token, user_id, tx_id, amount, at FROM tb_account_spends"
    )
    op.execute("DROP TABLE tb_account_spends")
    op.execute("ALTER TABLE tb_account_spends_0009 RENAME TO tb_account_spends")
    if window_index:
        op.create_index("ix_tb_account_spends_window", "tb_account_spends", ["token", "user_id", "at"])
