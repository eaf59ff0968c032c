"""Leaderboard exclusions become part of the stored token: ``tb_tokens.leaderboard_exclude``.

Revision ID: 0004
Revises: 0003

Which accounts the leaderboard and the circulating supply leave out is a property of the ledger, like its
treasury, so it is stored with the token rather than read from each process's settings. The column holds a JSON
array of account ids; NULL means "the treasury account alone", which is what every token created before this
revision used by default, so existing tokens keep their behaviour.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tb_tokens", sa.Column("leaderboard_exclude", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tb_tokens") as batch:
        batch.drop_column("leaderboard_exclude")
