"""Initial ledger schema: tokens, accounts, transactions, holds, audit; immutability triggers.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tokenbank.storage.sql.migrations.sqlfile import statements

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UNITS = sa.BigInteger()
# Byte-order collation on PostgreSQL, so ties on the leaderboard and rank order ids the same way as SQLite
# and Redis (and independently of the database's locale).
ACCOUNT = sa.String(128).with_variant(sa.String(128, collation="C"), "postgresql")
TIME = sa.DateTime(timezone=True)
IMMUTABLE_TABLES = ("tb_transactions", "tb_audit")


def upgrade() -> None:
    op.create_table(
        "tb_tokens",
        sa.Column("symbol", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("decimals", sa.Integer, nullable=False),
        sa.Column("emoji", sa.String(16)),
        sa.Column("treasury_account", sa.String(128), nullable=False),
        sa.Column("initial_supply", UNITS, nullable=False),
        sa.Column("max_supply", UNITS),
        sa.Column("total_supply", UNITS, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.CheckConstraint("total_supply >= 0", name="ck_tb_tokens_supply_non_negative"),
    )
    op.create_table(
        "tb_accounts",
        sa.Column("token", sa.String(16), primary_key=True),
        sa.Column("user_id", ACCOUNT, primary_key=True),
        sa.Column("balance", UNITS, nullable=False),
        sa.Column("held", UNITS, nullable=False),
        sa.CheckConstraint("balance >= 0", name="ck_tb_accounts_balance_non_negative"),
        sa.CheckConstraint("held >= 0", name="ck_tb_accounts_held_non_negative"),
    )
    # Leaderboard: an index walk from the top, ties broken by user id.
    op.create_index("ix_tb_accounts_leaderboard", "tb_accounts", ["token", sa.text("balance DESC"), "user_id"])
    op.create_table(
        "tb_transactions",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(36), nullable=False, unique=True),
        sa.Column("token", sa.String(16), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("from_user_id", sa.String(128)),
        sa.Column("to_user_id", sa.String(128)),
        sa.Column("amount", UNITS, nullable=False),
        sa.Column("from_balance_after", UNITS),
        sa.Column("to_balance_after", UNITS),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("metadata", sa.Text),
        sa.Column("idempotency_key", sa.String(128)),
        sa.Column("request_hash", sa.String(64)),
        sa.Column("reason", sa.Text),
        sa.Column("hold_id", sa.String(36)),
        sa.Column("reverses_id", sa.String(36)),
        sa.CheckConstraint("amount > 0", name="ck_tb_transactions_amount_positive"),
    )
    # History pages: one index per side, each walked newest first and merged (see reads.history).
    op.create_index("ix_tb_transactions_from", "tb_transactions", ["token", "from_user_id", "seq"])
    op.create_index("ix_tb_transactions_to", "tb_transactions", ["token", "to_user_id", "seq"])
    op.create_index("ix_tb_transactions_time", "tb_transactions", ["token", "created_at"])
    op.create_index("ux_tb_transactions_idempotency", "tb_transactions", ["token", "idempotency_key"], unique=True)
    op.create_index("ux_tb_transactions_reverses", "tb_transactions", ["token", "reverses_id"], unique=True)
    op.create_table(
        "tb_holds",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("token", sa.String(16), nullable=False),
        sa.Column("from_user_id", sa.String(128), nullable=False),
        sa.Column("to_user_id", sa.String(128), nullable=False),
        sa.Column("amount", UNITS, nullable=False),
        sa.Column("captured_amount", UNITS, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("metadata", sa.Text),
    )
    op.create_index("ix_tb_holds_expiry", "tb_holds", ["token", "status", "expires_at"])
    op.create_table(
        "tb_audit",
        sa.Column("id", SEQ, primary_key=True, autoincrement=True),
        sa.Column("token", sa.String(16), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
    )
    op.create_index("ix_tb_audit_token", "tb_audit", ["token", "id"])
    if op.get_context().dialect.name == "postgresql":
        _postgres_triggers_and_functions()
    else:
        _sqlite_triggers()


def _postgres_triggers_and_functions() -> None:
    op.execute(
        """
        CREATE OR REPLACE FUNCTION tb_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'tokenbank: % on % is refused: ledger history is immutable', TG_OP, TG_TABLE_NAME
                USING ERRCODE = 'TB002';
        END;
        $$
        """
    )
    for table in IMMUTABLE_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION tb_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION tb_refuse_change()"
        )
    for statement in statements("0001_initial.sql"):  # tb_apply, tb_event_payload, tb_apply_one
        op.execute(statement)


def _sqlite_triggers() -> None:
    for table in IMMUTABLE_TABLES:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'tokenbank: {action} on {table} is refused: "
                "ledger history is immutable'); END"
            )
