"""Tamper evidence: each journal row's chain hash, the chain head per token, signed checkpoints.

Revision ID: 0006
Revises: 0005

- ``tb_transactions.hash``: SHA-256 over the row's canonical encoding and the previous row's hash (per token,
  in seq order; ``tokenbank.chain.encoding``). SQLite's writer fills it in the write's own transaction;
  PostgreSQL leaves it NULL at write time and a sealer fills it in seq order once no write below is in flight
  (a write path that waited for the previous hash would serialise every write of a token); hybrid copies the hash
  Redis gave the entry.
- ``tb_chain_heads``: the last hashed (seq, hash) per token: where PostgreSQL's sealer continues (its row lock
  also lets checkpointing processes take turns).
- ``tb_checkpoints``: signed Merkle roots over the entries since the previous checkpoint.

The immutability trigger of ``tb_transactions`` keeps refusing every change but one on PostgreSQL: setting a
NULL ``hash`` once, with every other column unchanged (what the sealer does). Existing rows: on SQLite this
revision hashes them (in seq order, per token; not when the migration is printed as SQL, which cannot hash: the
chain then starts at the first row written after it); on PostgreSQL the sealer hashes them on its first run.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import context, op

from tokenbank.chain.encoding import GENESIS, EntryFields, entry_hash
from tokenbank.storage.sql.migrations.sqlfile import statements

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
HASH = sa.String(64)
_SQLITE_TRIGGER = (
    "CREATE TRIGGER tb_transactions_no_update BEFORE UPDATE ON tb_transactions BEGIN SELECT RAISE(ABORT, "
    "'tokenbank: UPDATE on tb_transactions is refused: ledger history is immutable'); END"
)


def upgrade() -> None:
    op.add_column("tb_transactions", sa.Column("hash", HASH, nullable=True))
    op.create_table(
        "tb_chain_heads",
        sa.Column("token", sa.String(16), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", HASH, nullable=False),
    )
    op.create_table(
        "tb_checkpoints",
        sa.Column("token", sa.String(16), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("first_seq", sa.BigInteger, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("root", HASH, nullable=False),
        sa.Column("head", HASH, nullable=False),
        sa.Column("previous_seq", sa.BigInteger, nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        for statement in statements("0006_hash_chain.sql"):
            op.execute(statement)
    elif not context.is_offline_mode():  # printed SQL cannot hash: rows before it stay older than the chain
        _sqlite_backfill()


def _sqlite_backfill() -> None:
    """Hash the journal as it stands, per token in seq order (the trigger is lifted for this only)."""
    conn = op.get_bind()
    op.execute("DROP TRIGGER tb_transactions_no_update")
    heads: dict[str, tuple[int, str]] = {}
    rows = conn.exec_driver_sql("SELECT * FROM tb_transactions ORDER BY seq").mappings()
    updates = []
    for row in rows:
        prev = heads.get(row["token"], (0, GENESIS))[1]
        fields = EntryFields(
            token=row["token"], seq=row["seq"], id=row["id"], type=row["type"], from_user_id=row["from_user_id"],
            to_user_id=row["to_user_id"], amount=int(row["amount"]), timestamp=_time(row["created_at"]),
            metadata=None if row["metadata"] is None else json.loads(row["metadata"]),
            idempotency_key=row["idempotency_key"], reason=row["reason"], hold_id=row["hold_id"],
            reverses_id=row["reverses_id"],
        )  # fmt: skip
        digest = entry_hash(prev, fields)
        heads[row["token"]] = (row["seq"], digest)
        updates.append((digest, row["token"], row["seq"]))
    for start in range(0, len(updates), 1000):
        conn.exec_driver_sql(
            "UPDATE tb_transactions SET hash = ? WHERE token = ? AND seq = ?", updates[start : start + 1000]
        )
    if heads:
        conn.exec_driver_sql(
            "INSERT INTO tb_chain_heads (token, seq, hash) VALUES (?, ?, ?)",
            [(token, seq, digest) for token, (seq, digest) in heads.items()],
        )
    op.execute(_SQLITE_TRIGGER)


def _time(value: object) -> str:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER tb_transactions_immutable ON tb_transactions")
        op.execute(
            "CREATE TRIGGER tb_transactions_immutable BEFORE UPDATE OR DELETE ON tb_transactions "
            "FOR EACH ROW EXECUTE FUNCTION tb_refuse_change()"
        )
        op.execute("DROP FUNCTION tb_transactions_guard()")
    op.drop_table("tb_checkpoints")
    op.drop_table("tb_chain_heads")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_column("tb_transactions", "hash")
    else:  # SQLite rebuilds the table to drop a column: lift the triggers around it
        op.execute("DROP TRIGGER IF EXISTS tb_transactions_no_update")
        op.execute("DROP TRIGGER IF EXISTS tb_transactions_no_delete")
        with op.batch_alter_table("tb_transactions") as batch:
            batch.drop_column("hash")
        op.execute(_SQLITE_TRIGGER)
        op.execute(
            "CREATE TRIGGER tb_transactions_no_delete BEFORE DELETE ON tb_transactions BEGIN SELECT RAISE(ABORT, "
            "'tokenbank: DELETE on tb_transactions is refused: ledger history is immutable'); END"
        )
