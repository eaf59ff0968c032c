"""The PostgreSQL side of the sync: one batch of stream entries (and audit entries) in ONE ``tb_replicate`` call.

``tb_replicate`` (migration 0002) inserts the entries it has not seen, keyed by transaction id, and applies the
balance, held, supply and hold-row changes of exactly those rows, in the same transaction. Delivering a batch
twice therefore changes nothing the second time: that is the whole exactly-once argument, see docs/hybrid.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from tokenbank.storage.base import CONTROL_ACTIONS
from tokenbank.storage.sql.backend import SqlStorage
from tokenbank.storage.sql.controls import mirror_controls
from tokenbank.storage.sql.schema import tokens, transactions

_REPLICATE = sa.text(
    "SELECT tb_replicate(:token, CAST(:entries AS jsonb), CAST(:audit AS jsonb), CAST(:fields AS jsonb), :strict)"
)


@dataclass(frozen=True, slots=True)
class Entry:
    """One ledger stream entry: its stream id and the transaction's fields exactly as the Lua wrote them."""

    stream_id: str
    fields: Mapping[str, str]

    @classmethod
    def from_stream(cls, stream_id: str, fields: Mapping[str, str]) -> Entry:
        """An entry as the write scripts append it: one field ``tx``, the transaction JSON (entries written by
        earlier versions carry the transaction's fields as stream fields, and are read as they are)."""
        return cls(stream_id, json.loads(fields["tx"]) if "tx" in fields else fields)

    @property
    def tx_id(self) -> str:
        return self.fields["id"]

    @property
    def seq(self) -> int:
        return int(self.fields["seq"])

    @property
    def created_us(self) -> int:
        return int(self.fields["created_at"])

    @property
    def hold_id(self) -> str | None:
        return self.fields.get("hold_id")


@dataclass(frozen=True, slots=True)
class AuditItem:
    """One Redis audit entry (``rid`` is its id in Redis, which the sync state counts)."""

    rid: int
    action: str
    details: str
    ts: str


@dataclass(frozen=True, slots=True)
class ReplicateResult:
    inserted: int
    """Entries that were new to PostgreSQL (the rest were already there: redelivered, or backfilled)."""
    conflicts: tuple[str, ...]
    """Ids of entries quarantined in tb_sync_conflicts (only possible after Redis lost data)."""
    audited: int


def entry_payload(entry: Entry, hold: Mapping[str, Any] | None) -> dict[str, Any]:
    """What tb_replicate reads for one entry: the stream fields, plus the hold's JSON for hold-related ones.

    A ``hold`` entry whose hold Redis no longer has (only after data loss) gets one built from the entry; its
    expiry is then unknown and recorded as its creation time, so the sweeper voids it at once."""
    payload: dict[str, Any] = dict(entry.fields)
    if hold is not None:
        payload["hold"] = dict(hold)
    elif entry.fields.get("type") == "hold" and entry.hold_id:
        payload["hold"] = {
            "from_user_id": entry.fields.get("from_user_id"),
            "to_user_id": entry.fields.get("to_user_id"),
            "amount": entry.fields["amount"],
            "created_at": entry.fields["created_at"],
            "expires_at": entry.fields["created_at"],
            "metadata": entry.fields.get("metadata"),
        }
    return payload


async def replicate(
    sql: SqlStorage,
    payloads: Sequence[Mapping[str, Any]],
    audit: Sequence[AuditItem],
    token_fields: Mapping[str, str | None] | None,
    *,
    strict: bool = True,
) -> ReplicateResult:
    """Write one batch into PostgreSQL in one transaction. Raises StorageUnavailableError (PostgreSQL down) or
    StorageError (e.g. a balance check failed in strict mode, or the token row is missing: TB010)."""
    params = {
        "token": sql.token,
        "entries": json.dumps(list(payloads), separators=(",", ":"), ensure_ascii=False),
        "audit": json.dumps([_audit_dict(item) for item in audit], ensure_ascii=False) if audit else None,
        "fields": json.dumps(dict(token_fields), ensure_ascii=False) if token_fields is not None else None,
        "strict": strict,
    }

    def call(conn: Connection) -> Any:
        answer = conn.scalar(_REPLICATE, params)
        if token_fields is not None:
            # tb_replicate (revision 0002) copies the settings it knows; the leaderboard exclusions came later
            # and are copied here, in the same transaction.
            conn.execute(
                tokens.update()
                .where(tokens.c.symbol == sql.token)
                .values(leaderboard_exclude=token_fields.get("leaderboard_exclude"))
            )
        # Account controls live in Redis's ctrl hash; each change's audit entry carries it here.
        mirror_controls(conn, sql.token, [item.details for item in audit if item.action in CONTROL_ACTIONS.values()])
        return answer

    raw = await sql.run_sync(call, write=True)
    data = json.loads(raw) if isinstance(raw, str) else raw
    return ReplicateResult(int(data["inserted"]), tuple(data["conflicts"]), int(data["audited"]))


def _audit_dict(item: AuditItem) -> dict[str, Any]:
    return {"rid": item.rid, "action": item.action, "details": item.details, "ts": item.ts}


async def sync_state(sql: SqlStorage) -> dict[str, Any] | None:
    """The token's row of tb_sync_state (None before the first batch)."""

    def read(conn: Connection) -> dict[str, Any] | None:
        row = conn.execute(sa.text("SELECT * FROM tb_sync_state WHERE token = :t"), {"t": sql.token}).first()
        return dict(row._mapping) if row is not None else None

    return await sql.run_sync(read)


async def max_seq(sql: SqlStorage) -> int:
    """The highest seq PostgreSQL holds for the token (0 for none); the floor of Redis's counter."""

    def read(conn: Connection) -> int:
        value = conn.scalar(sa.select(sa.func.max(transactions.c.seq)).where(transactions.c.token == sql.token))
        return int(value or 0)

    return await sql.run_sync(read)


async def conflict_count(sql: SqlStorage) -> int:
    def read(conn: Connection) -> int:
        return int(conn.scalar(sa.text("SELECT count(*) FROM tb_sync_conflicts WHERE token = :t"), {"t": sql.token}))

    return await sql.run_sync(read)
