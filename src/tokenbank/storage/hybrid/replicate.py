"""The PostgreSQL side of the sync: one batch of stream entries (and audit entries) in ONE ``tb_replicate`` call.

``tb_replicate`` (migration 0002) inserts the entries it has not seen, keyed by transaction id, and applies the
balance, held, supply and hold-row changes of exactly those rows, in the same transaction. Delivering a batch
twice therefore changes nothing the second time: that is the whole exactly-once argument, see docs/hybrid.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from tokenbank.storage.sql.backend import SqlStorage
from tokenbank.storage.sql.schema import tokens, transactions

_REPLICATE = sa.text(
    "SELECT tb_replicate(:token, CAST(:entries AS jsonb), CAST(:audit AS jsonb), CAST(:fields AS jsonb), :strict)"
)


_CREATED_AT = re.compile(r'"created_at":"(\d+)"')
"""The commit time (µs, a string of digits) in an entry's JSON. A quote inside a JSON string is escaped, so a
quote followed by ``created_at":`` only ever starts the key itself."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One ledger stream entry: its stream id and the transaction as JSON text, as the Lua wrote it (PostgreSQL
    gets that text as it is), with the two fields the worker needs: its commit time and hold id."""

    stream_id: str
    text: str
    created_us: int
    hold_id: str | None

    @classmethod
    def from_stream(cls, stream_id: str, fields: Mapping[str, str]) -> Entry:
        """An entry as the write scripts append it: one field ``tx``, the transaction JSON (entries written by
        earlier versions carry the transaction's fields as stream fields, and are read as they are). Only a
        hold's entries are decoded: for the others the commit time is read straight off the text."""
        if "tx" not in fields:
            return cls.from_fields(stream_id, fields)
        text = fields["tx"]
        created = _CREATED_AT.search(text)
        if created is None or '"hold_id"' in text:
            return cls.from_fields(stream_id, json.loads(text), text)
        return cls(stream_id, text, int(created[1]), None)

    @classmethod
    def from_fields(cls, stream_id: str, fields: Mapping[str, Any], text: str | None = None) -> Entry:
        hold_id = fields.get("hold_id")
        if text is None:
            text = json.dumps(dict(fields), separators=(",", ":"), ensure_ascii=False)
        return cls(stream_id, text, int(fields["created_at"]), None if hold_id is None else str(hold_id))

    @property
    def fields(self) -> dict[str, Any]:
        """The transaction's fields (decoded on each call)."""
        fields: dict[str, Any] = json.loads(self.text)
        return fields


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


def batch_json(entries: Sequence[Entry], holds: Mapping[str, str]) -> str:
    """What tb_replicate reads for a batch: a JSON array of the entries' own texts; an entry that concerns a hold
    gets the hold's JSON from Redis (``holds``: hold id -> its JSON text) added, see :func:`entry_payload`."""
    parts = []
    for entry in entries:
        hold_id = entry.hold_id
        if hold_id is None:
            parts.append(entry.text)
        else:
            hold = holds.get(hold_id)
            payload = entry_payload(entry, json.loads(hold) if hold is not None else None)
            parts.append(json.dumps(payload, separators=(",", ":"), ensure_ascii=False))
    return "[" + ",".join(parts) + "]"


def entry_payload(entry: Entry, hold: Mapping[str, Any] | None) -> dict[str, Any]:
    """What tb_replicate reads for one hold-related entry: the stream fields, plus the hold's JSON.

    A ``hold`` entry whose hold Redis no longer has (only after data loss) gets one built from the entry; its
    expiry is then unknown and recorded as its creation time, so the sweeper voids it at once."""
    payload = entry.fields
    if hold is not None:
        payload["hold"] = dict(hold)
    elif payload.get("type") == "hold" and entry.hold_id:
        payload["hold"] = {
            "from_user_id": payload.get("from_user_id"),
            "to_user_id": payload.get("to_user_id"),
            "amount": payload["amount"],
            "created_at": payload["created_at"],
            "expires_at": payload["created_at"],
            "metadata": payload.get("metadata"),
        }
    return payload


async def replicate(
    sql: SqlStorage,
    entries_json: str,
    audit: Sequence[AuditItem],
    token_fields: Mapping[str, str | None] | None,
    *,
    strict: bool = True,
) -> ReplicateResult:
    """Write one batch (``entries_json``: from :func:`batch_json`) into PostgreSQL in one transaction. Raises
    StorageUnavailableError (PostgreSQL down) or StorageError (e.g. a balance check failed in strict mode, or the
    token row is missing: TB010)."""
    params = {
        "token": sql.token,
        "entries": entries_json,
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
