"""Credit lots read along indexes: an account's open lots in spend order, and its pending ones.

Revision ID: 0014
Revises: 0013

``ix_tb_lots_spend`` (token, user_id, expires_at, id), replacing ``ix_tb_lots_owner`` (token, user_id), gives an
account's unexpired lots soonest expiry first and its expired ones as a range; ``ix_tb_lots_pending`` (token,
user_id, available_at) its lots not yet available. So a debit of an account with many lots reads the lots it
takes from and the ones that are locked, not every lot (SQLite's writer, storage/sql/lots_sqlite.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

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


def downgrade() -> None:
    op.create_index("ix_tb_lots_owner", "tb_lots", ["token", "user_id"], postgresql_where=LEFT, sqlite_where=LEFT)
    op.drop_index("ix_tb_lots_pending", "tb_lots")
    op.drop_index("ix_tb_lots_spend", "tb_lots")
