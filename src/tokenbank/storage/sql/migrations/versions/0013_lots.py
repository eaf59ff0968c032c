"""Credit lots: grants that expire or mature, spent soonest expiry first by every debit.

Revision ID: 0013
Revises: 0012

- ``tb_lots``: one row per lot (its id is the grant's transaction id), ``remaining`` what is left of it.
- ``tb_accounts.has_lots``: set by an account's first lot, so debits of the other accounts read no lot row.
- ``tb_transactions.lots`` / ``tb_holds.lots``: what a transaction or a hold took from lots (JSON), and a grant's
  ``expires_at``, ``available_at`` and ``category``.
PostgreSQL's write functions learn lots in 0013_lots.sql; SQLite's writer does the same in Python.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tokenbank.storage.sql.migrations.sqlfile import statements

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

UNITS = sa.BigInteger()
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    user_id = sa.String(128).with_variant(sa.String(128, collation="C"), "postgresql")
    op.create_table(
        "tb_lots",
        sa.Column("token", sa.String(16), primary_key=True),
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", user_id, nullable=False),
        sa.Column("amount", UNITS, nullable=False),
        sa.Column("remaining", UNITS, nullable=False),
        sa.Column("expires_at", TIME),
        sa.Column("available_at", TIME),
        sa.Column("category", sa.String(64)),
        sa.Column("created_at", TIME, nullable=False),
    )
    left = sa.text("remaining > 0")
    for name, columns in (("owner", ["token", "user_id"]), ("expiry", ["token", "expires_at"])):
        op.create_index(f"ix_tb_lots_{name}", "tb_lots", columns, postgresql_where=left, sqlite_where=left)
    op.add_column("tb_accounts", sa.Column("has_lots", sa.Boolean, nullable=False, server_default=sa.false()))
    for column in (sa.Column("lots", sa.Text), sa.Column("expires_at", TIME), sa.Column("available_at", TIME),
                   sa.Column("category", sa.String(64))):  # fmt: skip
        op.add_column("tb_transactions", column)
    op.add_column("tb_holds", sa.Column("lots", sa.Text))
    if op.get_context().dialect.name == "postgresql":
        for statement in statements("0013_lots.sql"):
            op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for statement in _functions_before():
            op.execute(statement)
        for signature in _NEW_FUNCTIONS:
            op.execute(f"DROP FUNCTION {signature}")
    with op.batch_alter_table("tb_holds") as holds:
        holds.drop_column("lots")
    with op.batch_alter_table("tb_transactions") as transactions:
        for column in ("category", "available_at", "expires_at", "lots"):
            transactions.drop_column(column)
    with op.batch_alter_table("tb_accounts") as accounts:
        accounts.drop_column("has_lots")
    op.drop_table("tb_lots")


_NEW_FUNCTIONS = (
    "tb_lots_locked(text, text, timestamptz)",
    "tb_lots_take(text, text, bigint, timestamptz)",
    "tb_lots_give_back(text, text, bigint, boolean)",
    "tb_lots_json(jsonb)",
)

_BEFORE = {
    "0011_overdraft_room.sql": ("tb_apply_one",),
    "0010_overdraft.sql": ("tb_apply_controlled", "tb_apply_transfers"),
    "0009_spend_totals.sql": ("tb_controls_refusal",),
    "0008_account_controls.sql": ("tb_apply",),
    "0012_replicate_upsert.sql": ("tb_replicate_batch",),
}


def _functions_before() -> list[str]:
    """The functions 0013_lots.sql replaces, as the revisions before it define them."""
    return [
        statement
        for filename, names in _BEFORE.items()
        for statement in statements(filename)
        if any(f"FUNCTION {name}(" in statement for name in names)
    ]
