"""Credit lots read along indexes: an account's open lots in spend order, and its pending ones.

Revision ID: 0014
Revises: 0013

``ix_tb_lots_spend`` (token, user_id, expires_at, id), replacing ``ix_tb_lots_owner`` (token, user_id), gives an
account's unexpired lots soonest expiry first and its expired ones as a range; ``ix_tb_lots_pending`` (token,
user_id, available_at) its lots not yet available. So a debit of an account with many lots reads the lots it
takes from and the ones that are locked, not every lot: SQLite's writer (storage/sql/lots_sqlite.py), and
PostgreSQL's tb_apply_transfers and tb_lots_locked (0014_lot_spend_order.sql).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tokenbank.storage.sql.migrations.sqlfile import statements

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

LEFT = sa.text("remaining > 0")
PENDING = sa.text("remaining > 0 AND available_at IS NOT NULL")


def upgrade() -> None:
    op.create_index("ix_tb_lots_spend", "tb_lots", ["token", "user_id", "expires_at", "id"],
                    postgresql_where=LEFT, sqlite_where=LEFT)  # fmt: skip
    op.create_index("ix_tb_lots_pending", "tb_lots", ["token", "user_id", "available_at"],
                    postgresql_where=PENDING, sqlite_where=PENDING)  # fmt: skip
    op.drop_index("ix_tb_lots_owner", "tb_lots")
    if op.get_context().dialect.name == "postgresql":
        for statement in statements("0014_lot_spend_order.sql"):
            op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":  # the two functions as 0013 defined them
        for statement in statements("0013_lots.sql"):
            if "FUNCTION tb_lots_locked(" in statement or "FUNCTION tb_apply_transfers(" in statement:
                op.execute(statement)
    op.create_index("ix_tb_lots_owner", "tb_lots", ["token", "user_id"], postgresql_where=LEFT, sqlite_where=LEFT)
    op.drop_index("ix_tb_lots_pending", "tb_lots")
    op.drop_index("ix_tb_lots_spend", "tb_lots")
