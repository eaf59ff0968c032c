"""Hybrid sync: ``tb_replicate_batch`` reaches the accounts through their primary key, whatever the statistics say.

Revision ID: 0012
Revises: 0011

Why (measured on PostgreSQL 15 with ``benchmarks/replicate_cost.py``, docs/performance.md): the sync worker keeps
one connection, and PL/pgSQL keeps each statement's plan for the life of the connection. 0007 locked the accounts
(``user_id = ANY (...) FOR UPDATE``) and updated them (``UPDATE ... FROM unnest(...)``); planned while the token had
few accounts, or while the table had no statistics, those statements went on reading every account of the token
for each batch as the accounts grew: 683 / 347 / 222 µs of PostgreSQL CPU per entry in batches of 20 / 100 / 1,000
transfers among 10,000 accounts, against 64 / 46 / 33 µs now. Now the journal's statement also upserts the
accounts its rows change (``INSERT ... ON CONFLICT (token, user_id) DO UPDATE``, in account-id order: each row
found and locked through the primary key), and a fall of held (a settlement) is a second upsert
(0012_replicate_upsert.sql). The contract is the same: insert the entries not seen before, by id, and apply
exactly those. PostgreSQL only.
"""

from __future__ import annotations

from alembic import op

from tokenbank.storage.sql.migrations.sqlfile import statements

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for statement in statements("0012_replicate_upsert.sql"):
        op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for statement in statements("0007_lean_replicate.sql"):  # tb_replicate_batch as 0007 defined it
        op.execute(statement)
