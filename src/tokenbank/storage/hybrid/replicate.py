"""The PostgreSQL side of the sync: one batch of stream entries (and audit entries) in ONE ``tb_replicate`` call.

``tb_replicate`` (migration 0002) inserts the entries it has not seen, keyed by transaction id, and applies the
balance, held, supply and hold-row changes of exactly those rows, in the same transaction. Delivering a batch
twice therefore changes nothing the second time: that is the whole exactly-once argument, see docs/hybrid.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import Connection

from tokenbank.storage import _translate
from tokenbank.storage.base import CONTROL_ACTIONS, CONTROL_COLUMNS, ControlsRecord
from tokenbank.storage.sql.backend import SqlStorage
from tokenbank.storage.sql.connection import parse_url, postgres_dsn, postgres_server_settings
from tokenbank.storage.sql.schema import transactions

if TYPE_CHECKING:
    import asyncpg

_REPLICATE = "SELECT tb_replicate($1, $2::jsonb, $3::jsonb, $4::jsonb, $5)::text"
_EXCLUDE = "UPDATE tb_tokens SET leaderboard_exclude = $2 WHERE symbol = $1"
_CONTROLS = (
    f"INSERT INTO tb_account_controls (token, user_id, {', '.join(CONTROL_COLUMNS)}) "
    f"VALUES ({', '.join(f'${n}' for n in range(1, len(CONTROL_COLUMNS) + 3))}) "
    "ON CONFLICT (token, user_id) DO UPDATE SET " + ", ".join(f"{name} = EXCLUDED.{name}" for name in CONTROL_COLUMNS)
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


class Replicator:
    """Writes batches into PostgreSQL over a connection of its own: one ``tb_replicate`` call per batch, in
    autocommit (a function call is one statement, hence one transaction), sent by asyncpg itself. Through
    SQLAlchemy the same call cost ≈0.4 ms more client CPU (its execute path, BEGIN and COMMIT), as much as ~25
    entries' own work. A connection that failed, or a call cancelled mid-way, is dropped; the next call opens a
    new one. Needs asyncpg (hybrid mode runs on PostgreSQL only)."""

    def __init__(self, sql: SqlStorage) -> None:
        self.sql = sql
        self._conn: asyncpg.Connection | None = None

    async def write(
        self,
        entries_json: str,
        audit: Sequence[AuditItem],
        token_fields: Mapping[str, str | None] | None,
        *,
        strict: bool = True,
    ) -> ReplicateResult:
        """Write one batch (``entries_json``: from :func:`batch_json`) into PostgreSQL in one transaction.
        Raises StorageUnavailableError (PostgreSQL down) or StorageError (e.g. a balance check failed in strict
        mode, or the token row is missing: TB010), with the driver's error as ``__cause__``."""
        import asyncpg

        token = self.sql.token
        audit_json = json.dumps([_audit_dict(item) for item in audit], ensure_ascii=False) if audit else None
        fields_json = json.dumps(dict(token_fields), ensure_ascii=False) if token_fields is not None else None
        # Account controls live in Redis's ctrl hash; each change's audit entry carries it (in order) here.
        controls = [_control_row(token, item.details) for item in audit if item.action in CONTROL_ACTIONS.values()]
        try:
            conn = await self._connection()
            if token_fields is None and not controls:
                raw = await conn.fetchval(_REPLICATE, token, entries_json, audit_json, fields_json, strict)
            else:
                async with conn.transaction():
                    raw = await conn.fetchval(_REPLICATE, token, entries_json, audit_json, fields_json, strict)
                    if token_fields is not None:
                        # tb_replicate (revision 0002) copies the settings it knows; the leaderboard exclusions
                        # came later and are copied here, in the same transaction.
                        await conn.execute(_EXCLUDE, token, token_fields.get("leaderboard_exclude"))
                    if controls:
                        await conn.executemany(_CONTROLS, controls)
        except asyncpg.PostgresError as exc:  # the statement failed and was rolled back: the connection is fine
            if exc.sqlstate and exc.sqlstate.startswith(("08", "57")):  # connection or server going away
                self._drop()
            raise _translate.SQL_ERRORS.translate(exc) from exc
        except (asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            self._drop()
            raise _translate.SQL_ERRORS.translate(exc) from exc
        except BaseException:  # cancelled mid-call: whether it committed is unknown (a redelivery settles it)
            self._drop()
            raise
        self.sql.expect_writes()
        data = json.loads(raw)
        return ReplicateResult(int(data["inserted"]), tuple(data["conflicts"]), int(data["audited"]))

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)
            if not conn.is_closed():
                conn.terminate()

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            import asyncpg

            settings = self.sql.settings
            self._conn = await asyncpg.connect(
                postgres_dsn(parse_url(settings)),
                timeout=10,
                command_timeout=300,
                server_settings=postgres_server_settings(settings),
            )
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()  # never waits: the connection may be the thing that is stuck


def _control_row(token: str, details: str) -> tuple[Any, ...]:
    user_id, controls = ControlsRecord.from_json(details)
    return (token, user_id, *(getattr(controls, name) for name in CONTROL_COLUMNS))


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
