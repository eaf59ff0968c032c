"""Room for overdrafts: the total supply plus every overdraft limit stays within 2^63-1 base units.

Revision ID: 0011
Revises: 0010

With overdrafts, an account may hold more than the total supply (what the other accounts owe), so without a bound a
credit could pass the largest amount a store holds. Raising an overdraft (controls.py) and minting (here) both keep
the total supply plus every overdraft limit within 2^63-1, which bounds every balance and held amount.

- ``ix_tb_account_controls_overdraft``: a partial index of the accounts that have an overdraft, which the sum reads.
- PostgreSQL: ``tb_overdraft_total`` and ``tb_apply_one`` with the mint's new cap (0011_overdraft_room.sql); SQLite's
  writer does the same in Python.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tokenbank.storage.sql.migrations.sqlfile import statements

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_INDEX = "ix_tb_account_controls_overdraft"
_HAS_OVERDRAFT = sa.text("overdraft IS NOT NULL")


def upgrade() -> None:
    op.create_index(_INDEX, "tb_account_controls", ["token", "overdraft"],
                    postgresql_where=_HAS_OVERDRAFT, sqlite_where=_HAS_OVERDRAFT)  # fmt: skip
    if op.get_context().dialect.name == "postgresql":
        for statement in statements("0011_overdraft_room.sql"):
            op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for statement in statements("0010_overdraft.sql"):
            if "FUNCTION tb_apply_one(" in statement:
                op.execute(statement)
        op.execute("DROP FUNCTION tb_overdraft_total(text)")
    op.drop_index(_INDEX, table_name="tb_account_controls")
