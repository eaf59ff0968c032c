"""Overdraft limits: an account may be allowed to go below zero, down to minus its limit.

Revision ID: 0010
Revises: 0009

- ``tb_account_controls`` gains ``overdraft`` (base units; NULL: the account never goes below zero).
- ``tb_accounts`` loses its ``balance >= 0`` check: a balance may now be negative, down to minus the account's
  overdraft, which the write path enforces (the check on ``held`` stays). Hybrid mode's PostgreSQL copy takes
  the negative balances Redis allowed through the same table.
- PostgreSQL: ``tb_apply_one``, ``tb_apply_controlled`` and ``tb_apply_transfers`` check each debit against
  ``-overdraft`` instead of zero (0010_overdraft.sql); SQLite's writer does the same in Python.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tokenbank.storage.sql.migrations.sqlfile import statements

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_BALANCE_CHECK = "ck_tb_accounts_balance_non_negative"


def upgrade() -> None:
    op.add_column("tb_account_controls", sa.Column("overdraft", sa.BigInteger()))
    if op.get_context().dialect.name == "postgresql":
        op.drop_constraint(_BALANCE_CHECK, "tb_accounts", type_="check")
        for statement in statements("0010_overdraft.sql"):
            op.execute(statement)
    else:
        _rebuild_sqlite_accounts(balance_check=False)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP FUNCTION tb_overdraft(text, jsonb, text)")  # after the functions that call it change
        for statement in _functions_before():
            op.execute(statement)
        op.create_check_constraint(_BALANCE_CHECK, "tb_accounts", "balance >= 0")
    else:
        _rebuild_sqlite_accounts(balance_check=True)
    with op.batch_alter_table("tb_account_controls") as batch:
        batch.drop_column("overdraft")


def _functions_before() -> list[str]:
    """The three functions as 0001 (tb_apply_one) and 0009 (the other two) define them."""
    one = [s for s in statements("0001_initial.sql") if "FUNCTION tb_apply_one(" in s]
    nine = [s for s in statements("0009_spend_totals.sql")
            if "FUNCTION tb_apply_controlled(" in s or "FUNCTION tb_apply_transfers(" in s]  # fmt: skip
    return one + nine


def _rebuild_sqlite_accounts(*, balance_check: bool) -> None:
    """SQLite cannot drop or add a check in place: a new table, the rows copied over, then renamed."""
    checks = "CONSTRAINT ck_tb_accounts_held_non_negative CHECK (held >= 0)"
    if balance_check:
        checks = f"CONSTRAINT {_BALANCE_CHECK} CHECK (balance >= 0), {checks}"
    op.execute(
        "CREATE TABLE tb_accounts_0010 (token VARCHAR(16) NOT NULL, user_id VARCHAR(128) NOT NULL, "
        f"balance BIGINT NOT NULL, held BIGINT NOT NULL, PRIMARY KEY (token, user_id), {checks})"
    )
    op.execute("INSERT INTO tb_accounts_0010 (token, user_id, balance, held) SELECT token, user_id, balance, held "
               "FROM tb_accounts")  # fmt: skip
    op.execute("DROP TABLE tb_accounts")
    op.execute("ALTER TABLE tb_accounts_0010 RENAME TO tb_accounts")
    op.execute("CREATE INDEX ix_tb_accounts_leaderboard ON tb_accounts (token, balance DESC, user_id)")
