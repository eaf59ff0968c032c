"""Durable events: consumer cursors, worker leases, webhook endpoints and deliveries, balance monitors.

Revision ID: 0005
Revises: 0004

The ledger feed itself reads ``tb_transactions`` in seq order; what this revision adds is the state around it,
kept in the same database as the ledger so that a consumer's cursor, a delivery's outcome or a monitor's last
zone survives restarts of any process:

- ``tb_consumers``: each named durable consumer's last acknowledged seq.
- ``tb_leases``: which worker process leads a background job of a token, until when.
- ``tb_webhooks``, ``tb_deliveries``, ``tb_delivery_attempts``: endpoints, one delivery per (endpoint, event)
  with its state, and the log of every attempt.
- ``tb_monitors``, ``tb_monitor_state``, ``tb_monitor_events``: thresholds, the zone each watched account was
  last seen in (so a crossing fires once), and the ``balance.threshold`` events fired.

Tables only (no functions, no triggers), identical on SQLite and PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TOKEN = sa.String(16)
ID = sa.String(36)
ACCOUNT = sa.String(128)
TIME = sa.DateTime(timezone=True)

_TABLES = (
    "tb_monitor_events", "tb_monitor_state", "tb_monitors", "tb_delivery_attempts", "tb_deliveries", "tb_webhooks",
    "tb_leases", "tb_consumers",
)  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "tb_consumers",
        sa.Column("token", TOKEN, primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
    )
    op.create_table(
        "tb_leases",
        sa.Column("token", TOKEN, primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
    )
    op.create_table(
        "tb_webhooks",
        sa.Column("id", ID, primary_key=True),
        sa.Column("token", TOKEN, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("events", sa.Text, nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
    )
    op.create_index("ix_tb_webhooks_token", "tb_webhooks", ["token", "id"])
    op.create_table(
        "tb_deliveries",
        sa.Column("id", ID, primary_key=True),
        sa.Column("token", TOKEN, nullable=False),
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
    # One delivery per (endpoint, event): enqueueing the same event again changes nothing.
    op.create_index("ux_tb_deliveries_event", "tb_deliveries", ["endpoint_id", "event_id"], unique=True)
    # Each endpoint's queue in event order, per status (the head of the pending ones is sent next).
    op.create_index("ix_tb_deliveries_queue", "tb_deliveries", ["token", "endpoint_id", "status", "seq", "position"])
    op.create_table(
        "tb_delivery_attempts",
        sa.Column("id", SEQ, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", ID, nullable=False),
        sa.Column("attempted_at", TIME, nullable=False),
        sa.Column("response_status", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("duration_ms", sa.Integer, nullable=False),
    )
    op.create_index("ix_tb_delivery_attempts_delivery", "tb_delivery_attempts", ["delivery_id", "id"])
    op.create_table(
        "tb_monitors",
        sa.Column("id", ID, primary_key=True),
        sa.Column("token", TOKEN, nullable=False),
        sa.Column("user_id", ACCOUNT, nullable=False),
        sa.Column("below", sa.BigInteger),
        sa.Column("above", sa.BigInteger),
        sa.Column("created_at", TIME, nullable=False),
    )
    op.create_index("ix_tb_monitors_token", "tb_monitors", ["token", "id"])
    op.create_table(
        "tb_monitor_state",
        sa.Column("monitor_id", ID, primary_key=True),
        sa.Column("user_id", ACCOUNT, primary_key=True),
        sa.Column("token", TOKEN, nullable=False),
        sa.Column("zone", sa.String(8), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "tb_monitor_events",
        sa.Column("id", SEQ, primary_key=True, autoincrement=True),
        sa.Column("token", TOKEN, nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("monitor_id", ID, nullable=False),
        sa.Column("user_id", ACCOUNT, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
    )
    op.create_index("ux_tb_monitor_events_event", "tb_monitor_events", ["token", "event_id"], unique=True)
    op.create_index("ix_tb_monitor_events_token", "tb_monitor_events", ["token", "id"])


def downgrade() -> None:
    for table in _TABLES:
        op.drop_table(table)
