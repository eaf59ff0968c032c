"""Table definitions (SQLAlchemy Core). Every row is scoped by ``token`` (the symbol).

The schema itself is created by the Alembic migrations in ``migrations/``; a test compares the two (alembic's
``compare_metadata`` after ``upgrade head``, on SQLite and PostgreSQL), so a change to one needs the other.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes on every dialect (SQLite keeps naive UTC text; PostgreSQL timestamptz)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only auto-increments an INTEGER PRIMARY KEY, which is 64-bit there anyway.
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UNITS = sa.BigInteger()
TIME = UtcDateTime()

metadata = sa.MetaData()

tokens = sa.Table(
    "tb_tokens",
    metadata,
    sa.Column("symbol", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("decimals", sa.Integer, nullable=False),
    sa.Column("emoji", sa.String(16)),
    sa.Column("treasury_account", sa.String(128), nullable=False),
    sa.Column("initial_supply", UNITS, nullable=False),
    sa.Column("max_supply", UNITS),
    sa.Column("total_supply", UNITS, nullable=False),
    sa.Column("created_at", TIME, nullable=False),
    # A JSON array of account ids; NULL (also every token created before revision 0004) = the treasury alone.
    sa.Column("leaderboard_exclude", sa.Text),
)

accounts = sa.Table(
    "tb_accounts",
    metadata,
    sa.Column("token", sa.String(16), primary_key=True),
    sa.Column("user_id", sa.String(128).with_variant(sa.String(128, collation="C"), "postgresql"), primary_key=True),
    sa.Column("balance", UNITS, nullable=False),
    sa.Column("held", UNITS, nullable=False),
    # Set by the account's first lot and never cleared: a debit of an account without lots reads no lot row.
    sa.Column("has_lots", sa.Boolean, nullable=False, server_default=sa.false()),
)
# Leaderboard: an index walk from the top, ties broken by user id.
sa.Index("ix_tb_accounts_leaderboard", accounts.c.token, accounts.c.balance.desc(), accounts.c.user_id)

# A hot account's balance split into slices (PostgreSQL only): its balance is its tb_accounts row's plus the sum of
# its slices, so concurrent debits can each lock a slice instead of waiting for one row.
account_shards = sa.Table(
    "tb_account_shards",
    metadata,
    sa.Column("token", sa.String(16), primary_key=True),
    sa.Column("user_id", sa.String(128).with_variant(sa.String(128, collation="C"), "postgresql"), primary_key=True),
    sa.Column("shard", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("balance", UNITS, nullable=False),
)

transactions = sa.Table(
    "tb_transactions",
    metadata,
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
    # What the transaction took from lots (positive) or gave back to them (negative), as JSON
    # ``[["<lot id>", "<units>"], ...]``; NULL when it moved none.
    sa.Column("lots", sa.Text),
    # A grant's lot: its expiry, the moment it becomes spendable and its category (NULL: none).
    sa.Column("expires_at", TIME),
    sa.Column("available_at", TIME),
    sa.Column("category", sa.String(64)),
    # The chain hash (tokenbank.chain.encoding); NULL until PostgreSQL's sealer reaches the row (revision 0006).
    sa.Column("hash", sa.String(64)),
)
# History pages: one index per side, each walked newest first and merged (see reads.history).
sa.Index("ix_tb_transactions_from", transactions.c.token, transactions.c.from_user_id, transactions.c.seq)
sa.Index("ix_tb_transactions_to", transactions.c.token, transactions.c.to_user_id, transactions.c.seq)
sa.Index("ix_tb_transactions_time", transactions.c.token, transactions.c.created_at)
# Partial on PostgreSQL (most rows have neither; NULLs never conflict either way), plain on SQLite.
for _name, _column in (("idempotency", transactions.c.idempotency_key), ("reverses", transactions.c.reverses_id)):
    sa.Index(f"ux_tb_transactions_{_name}", transactions.c.token, _column, unique=True,
             postgresql_where=_column.isnot(None))  # fmt: skip

holds = sa.Table(
    "tb_holds",
    metadata,
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
    sa.Column("lots", sa.Text),  # what the hold reserved from lots (as tb_transactions.lots), given back by a void
)
sa.Index("ix_tb_holds_expiry", holds.c.token, holds.c.status, holds.c.expires_at)

audit = sa.Table(
    "tb_audit",
    metadata,
    sa.Column("id", SEQ, primary_key=True, autoincrement=True),
    sa.Column("token", sa.String(16), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("created_at", TIME, nullable=False),
)
sa.Index("ix_tb_audit_token", audit.c.token, audit.c.id)

# Durable events (revision 0005): consumer cursors, worker leases, webhooks, balance monitors -------------------
ID = sa.String(36)

consumers = sa.Table(
    "tb_consumers",
    metadata,
    sa.Column("token", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("updated_at", TIME, nullable=False),
)

leases = sa.Table(
    "tb_leases",
    metadata,
    sa.Column("token", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("expires_at", TIME, nullable=False),
)

webhooks = sa.Table(
    "tb_webhooks",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("token", sa.String(16), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("events", sa.Text, nullable=False),
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("created_at", TIME, nullable=False),
)
sa.Index("ix_tb_webhooks_token", webhooks.c.token, webhooks.c.id)

deliveries = sa.Table(
    "tb_deliveries",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("token", sa.String(16), nullable=False),
    sa.Column("endpoint_id", ID, nullable=False),
    sa.Column("event_id", sa.String(128), nullable=False),
    sa.Column("event_type", sa.String(32), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", TIME, nullable=False),
    sa.Column("next_attempt_at", TIME),
    sa.Column("last_attempt_at", TIME),
    sa.Column("delivered_at", TIME),
    sa.Column("response_status", sa.Integer),
    sa.Column("last_error", sa.Text),
)
sa.Index("ux_tb_deliveries_event", deliveries.c.endpoint_id, deliveries.c.event_id, unique=True)
sa.Index("ix_tb_deliveries_queue", deliveries.c.token, deliveries.c.endpoint_id, deliveries.c.status,
         deliveries.c.seq, deliveries.c.position)  # fmt: skip

delivery_attempts = sa.Table(
    "tb_delivery_attempts",
    metadata,
    sa.Column("id", SEQ, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", ID, nullable=False),
    sa.Column("attempted_at", TIME, nullable=False),
    sa.Column("response_status", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("duration_ms", sa.Integer, nullable=False),
)
sa.Index("ix_tb_delivery_attempts_delivery", delivery_attempts.c.delivery_id, delivery_attempts.c.id)

monitors = sa.Table(
    "tb_monitors",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("token", sa.String(16), nullable=False),
    sa.Column("user_id", sa.String(128), nullable=False),
    sa.Column("below", UNITS),
    sa.Column("above", UNITS),
    sa.Column("created_at", TIME, nullable=False),
)
sa.Index("ix_tb_monitors_token", monitors.c.token, monitors.c.id)

monitor_state = sa.Table(
    "tb_monitor_state",
    metadata,
    sa.Column("monitor_id", ID, primary_key=True),
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Column("token", sa.String(16), nullable=False),
    sa.Column("zone", sa.String(8), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
)

monitor_events = sa.Table(
    "tb_monitor_events",
    metadata,
    sa.Column("id", SEQ, primary_key=True, autoincrement=True),
    sa.Column("token", sa.String(16), nullable=False),
    sa.Column("event_id", sa.String(128), nullable=False),
    sa.Column("monitor_id", ID, nullable=False),
    sa.Column("user_id", sa.String(128), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_at", TIME, nullable=False),
)
sa.Index("ux_tb_monitor_events_event", monitor_events.c.token, monitor_events.c.event_id, unique=True)
sa.Index("ix_tb_monitor_events_token", monitor_events.c.token, monitor_events.c.id)

# The last hashed journal entry per token: where PostgreSQL's sealer continues the chain (SQLite's writer continues
# from the token's last row).
chain_heads = sa.Table(
    "tb_chain_heads",
    metadata,
    sa.Column("token", sa.String(16), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# Signed Merkle roots over the entries (first_seq..seq]; created_at is the signed text, kept verbatim.
checkpoints = sa.Table(
    "tb_checkpoints",
    metadata,
    sa.Column("token", sa.String(16), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("first_seq", sa.BigInteger, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("root", sa.String(64), nullable=False),
    sa.Column("head", sa.String(64), nullable=False),
    sa.Column("previous_seq", sa.BigInteger, nullable=False),
    sa.Column("key_id", sa.String(16), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("signature", sa.String(128), nullable=False),
)

# Account controls, enforced by the write paths (SQLite's writer, PostgreSQL's tb_apply): a frozen direction, a
# closed account, a maximum balance, a spend limit per rolling window. An account without a row has none.
account_controls = sa.Table(
    "tb_account_controls",
    metadata,
    sa.Column("token", sa.String(16), primary_key=True),
    sa.Column("user_id", sa.String(128).with_variant(sa.String(128, collation="C"), "postgresql"), primary_key=True),
    sa.Column("debits_frozen", sa.Boolean, nullable=False),
    sa.Column("credits_frozen", sa.Boolean, nullable=False),
    sa.Column("frozen_until", TIME),
    sa.Column("freeze_reason", sa.Text),
    sa.Column("closed", sa.Boolean, nullable=False),
    sa.Column("max_balance", UNITS),
    sa.Column("window_amount", UNITS),
    sa.Column("window_seconds", sa.Integer),
    sa.Column("overdraft", UNITS),  # debits may take the balance down to minus this (NULL: not below zero)
    # The spend window's running total: the spends with ``at`` after ``spent_through`` add up to ``spent_total``
    # (``spent_through`` NULL: not counted yet), the oldest of them at ``spent_oldest`` (see controls.py).
    sa.Column("spent_total", UNITS, nullable=False, server_default="0"),
    sa.Column("spent_through", TIME),
    sa.Column("spent_oldest", TIME),
)
_has_overdraft = account_controls.c.overdraft.is_not(None)
# The accounts with an overdraft (usually few of many), whose limits a mint and a raised limit add up.
sa.Index("ix_tb_account_controls_overdraft", account_controls.c.token, account_controls.c.overdraft,
         postgresql_where=_has_overdraft, sqlite_where=_has_overdraft)  # fmt: skip

# The debits a spend window counts (transfers, burns, holds of an account with a window), pruned as they leave it;
# keyed in the order the window reads them (an account's spends by time). SQLite: WITHOUT ROWID, one B-tree.
account_spends = sa.Table(
    "tb_account_spends",
    metadata,
    sa.Column("token", sa.String(16), nullable=False),
    sa.Column("user_id", sa.String(128).with_variant(sa.String(128, collation="C"), "postgresql"), nullable=False),
    sa.Column("tx_id", sa.String(36), nullable=False),
    sa.Column("amount", UNITS, nullable=False),
    sa.Column("at", TIME, nullable=False),
    sa.PrimaryKeyConstraint("token", "user_id", "at", "tx_id", name="tb_account_spends_pkey"),
    sqlite_with_rowid=False,
)

# Credit lots: what a grant gave, spendable from ``available_at`` (NULL: at once) until ``expires_at`` (NULL: never),
# taken by debits soonest expiry first; ``remaining`` is what debits, holds and expiry have not taken.
lots = sa.Table(
    "tb_lots",
    metadata,
    sa.Column("token", sa.String(16), primary_key=True),
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("user_id", sa.String(128).with_variant(sa.String(128, collation="C"), "postgresql"), nullable=False),
    sa.Column("amount", UNITS, nullable=False),
    sa.Column("remaining", UNITS, nullable=False),
    sa.Column("expires_at", TIME),
    sa.Column("available_at", TIME),
    sa.Column("category", sa.String(64)),
    sa.Column("created_at", TIME, nullable=False),
)
_lot_left = sa.text("remaining > 0")
# An account's open lots in a debit's spend order (its expired ones a range at the head), its lots not yet
# available, and the open lots by expiry (the sweeper's walk).
sa.Index("ix_tb_lots_spend", lots.c.token, lots.c.user_id, lots.c.expires_at, lots.c.id, postgresql_where=_lot_left,
         sqlite_where=_lot_left)  # fmt: skip
_lot_pending = sa.text("remaining > 0 AND available_at IS NOT NULL")
sa.Index("ix_tb_lots_pending", lots.c.token, lots.c.user_id, lots.c.available_at, postgresql_where=_lot_pending,
         sqlite_where=_lot_pending)  # fmt: skip
sa.Index("ix_tb_lots_expiry", lots.c.token, lots.c.expires_at, postgresql_where=_lot_left, sqlite_where=_lot_left)
