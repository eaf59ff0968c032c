"""The wire format of a write: each op as the JSON object a store's own apply code reads, and that code's JSON answer.

PostgreSQL's ``tb_apply`` and the Redis scripts (``ops.lua``) read the same op object and answer the same
result array; the stores differ only in how a moment is spelled and whether text escapes non-ASCII:

- op: ``kind id from to amount key hash meta reason hold_id expires_at reverses_id available_at category lot_id ts
  audit [notify] [id2]``, all
  strings, absent fields left out (amounts as decimal strings, so nothing passes through a double); ``notify`` is
  PostgreSQL's NOTIFY channel, ``id2`` the id of the release a partial capture also writes.
- answer: one ``{"s": status, "t": [transaction, ...], "h": hold}`` per op, ``t`` and ``h`` optional. A
  transaction that moved lots has ``lots``: ``[["<lot id>", "<signed units>"], ...]`` (see ``LotMoves``); a grant
  has its lot's ``expires_at``, ``available_at`` and ``category`` when set.

:data:`SQL` spells moments as ISO 8601 text and escapes non-ASCII (tb_apply, and the rows SQLAlchemy returns);
:data:`LUA` as integer microseconds since the epoch (exact, no float) in UTF-8 text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tokenbank.ids import new_id
from tokenbank.status import Status
from tokenbank.storage.base import HoldRecord, LotMoves, LotRecord, OpKind, OpResult, TxRecord, WriteOp

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def to_us(moment: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch (exact, no float)."""
    return (moment - EPOCH) // _MICRO


def from_us(value: str | int) -> datetime:
    return EPOCH + timedelta(microseconds=int(value))


def _us_text(moment: datetime) -> str:
    return str(to_us(moment))


def utc(value: Any) -> datetime:
    """A stored moment (ISO text or a datetime, naive meaning UTC) as an aware UTC datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def lot_moves(value: Any) -> LotMoves:
    """A transaction's lot moves from their JSON (text, as a SQL column keeps it, or parsed):
    ``[["<lot id>", "<signed units>"], ...]``; None or empty: none."""
    if not value:
        return ()
    if isinstance(value, str):
        value = json.loads(value)
    return tuple((str(lot_id), int(units)) for lot_id, units in value)


def lot_moves_json(moves: LotMoves) -> str | None:
    """Lot moves as the JSON a store keeps (None when there are none)."""
    if not moves:
        return None
    return json.dumps([[lot_id, str(units)] for lot_id, units in moves], separators=(",", ":"))


def _mapping(row: Any) -> Mapping[str, Any]:
    """A JSON object (as text or parsed) or a SQLAlchemy row, as a mapping."""
    if isinstance(row, str):
        return json.loads(row)  # type: ignore[no-any-return]
    return row._mapping if hasattr(row, "_mapping") else row  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Wire:
    """One store's spelling of the wire format."""

    write_time: Callable[[datetime], str]
    read_time: Callable[[Any], datetime]
    ensure_ascii: bool

    def op(self, op: WriteOp, notify: str | None = None) -> dict[str, str]:
        """A WriteOp as the JSON object the store's apply code reads."""
        fields: dict[str, str | None] = {
            "kind": op.kind.value,
            "id": op.tx_id,
            "from": op.from_user_id,
            "to": op.to_user_id,
            "amount": None if op.amount is None else str(op.amount),
            "key": op.idempotency_key,
            "hash": op.fingerprint,
            "meta": op.metadata,
            "reason": op.reason,
            "hold_id": op.hold_id,
            "expires_at": None if op.expires_at is None else self.write_time(op.expires_at),
            "reverses_id": op.reverses_id,
            "available_at": None if op.available_at is None else self.write_time(op.available_at),
            "category": op.category,
            "lot_id": op.lot_id,
            "ts": None if op.timestamp is None else self.write_time(op.timestamp),
            "audit": op.audit_action,
            "notify": notify,
            # a partial capture also writes the release of the rest, which needs an id of its own
            "id2": new_id() if op.kind is OpKind.CAPTURE else None,
        }
        return {key: value for key, value in fields.items() if value is not None}

    def ops(self, ops: Sequence[WriteOp], notify: str | None = None) -> str:
        """The ops as one JSON array (compact)."""
        return json.dumps([self.op(op, notify) for op in ops], separators=(",", ":"), ensure_ascii=self.ensure_ascii)

    def tx(self, row: Any) -> TxRecord:
        """A transaction: a JSON object (text or parsed) or a SQLAlchemy row."""
        m = _mapping(row)
        return TxRecord(
            seq=int(m["seq"]),
            id=m["id"],
            type=m["type"],
            from_user_id=m.get("from_user_id"),
            to_user_id=m.get("to_user_id"),
            amount=int(m["amount"]),
            timestamp=self.read_time(m["created_at"]),
            metadata=m.get("metadata"),
            idempotency_key=m.get("idempotency_key"),
            reason=m.get("reason"),
            hold_id=m.get("hold_id"),
            reverses_id=m.get("reverses_id"),
            from_balance_after=_opt_int(m.get("from_balance_after")),
            to_balance_after=_opt_int(m.get("to_balance_after")),
            lots=lot_moves(m.get("lots")),
            expires_at=self._opt_time(m.get("expires_at")),
            available_at=self._opt_time(m.get("available_at")),
            category=m.get("category"),
        )

    def _opt_time(self, value: Any) -> datetime | None:
        return None if value is None else self.read_time(value)

    def lot(self, row: Any) -> LotRecord:
        """A lot: a JSON object (text or parsed) or a SQLAlchemy row."""
        m = _mapping(row)
        return LotRecord(
            id=m["id"],
            user_id=m["user_id"],
            amount=int(m["amount"]),
            remaining=int(m["remaining"]),
            expires_at=self._opt_time(m.get("expires_at")),
            available_at=self._opt_time(m.get("available_at")),
            category=m.get("category"),
            created_at=self.read_time(m["created_at"]),
        )

    def hold(self, row: Any) -> HoldRecord:
        """A hold: a JSON object (text or parsed) or a SQLAlchemy row."""
        m = _mapping(row)
        return HoldRecord(
            id=m["id"],
            from_user_id=m["from_user_id"],
            to_user_id=m["to_user_id"],
            amount=int(m["amount"]),
            captured_amount=int(m["captured_amount"]),
            status=m["status"],
            expires_at=self.read_time(m["expires_at"]),
            created_at=self.read_time(m["created_at"]),
            metadata=m.get("metadata"),
        )

    def result(self, item: Mapping[str, Any]) -> OpResult:
        hold = item.get("h")
        return OpResult(
            status=Status(item["s"]),
            transactions=tuple(self.tx(tx) for tx in item.get("t") or ()),
            hold=self.hold(hold) if hold else None,
        )

    def results(self, raw: str | Sequence[Mapping[str, Any]]) -> list[OpResult]:
        """An answer, as JSON text or already parsed (SQLAlchemy's asyncpg codec parses json)."""
        return [self.result(item) for item in (json.loads(raw) if isinstance(raw, str) else raw)]


SQL = Wire(write_time=datetime.isoformat, read_time=utc, ensure_ascii=True)
"""PostgreSQL's ``tb_apply`` and SQL rows: ISO 8601 moments."""

LUA = Wire(write_time=_us_text, read_time=from_us, ensure_ascii=False)
"""The Redis scripts: moments as integer microseconds since the epoch."""
