"""What the scripts read and write (JSON objects of strings) to and from storage records.

Amounts travel as decimal strings and times as integer microseconds since the epoch, so nothing passes
through a double on either side.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from tokenbank.ids import new_id
from tokenbank.storage.base import (
    HoldRecord,
    OpKind,
    OpResult,
    TokenRecord,
    TxRecord,
    WriteOp,
    exclusions_from_text,
    exclusions_to_text,
)
from tokenbank.storage.status import Status

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def to_us(moment: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch (exact, no float)."""
    return (moment - EPOCH) // _MICRO


def from_us(value: str | int) -> datetime:
    return EPOCH + timedelta(microseconds=int(value))


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def tx_from_json(data: Mapping[str, Any] | str) -> TxRecord:
    m: Mapping[str, Any] = json.loads(data) if isinstance(data, str) else data
    return TxRecord(
        seq=int(m["seq"]),
        id=m["id"],
        type=m["type"],
        from_user_id=m.get("from_user_id"),
        to_user_id=m.get("to_user_id"),
        amount=int(m["amount"]),
        timestamp=from_us(m["created_at"]),
        metadata=m.get("metadata"),
        idempotency_key=m.get("idempotency_key"),
        reason=m.get("reason"),
        hold_id=m.get("hold_id"),
        reverses_id=m.get("reverses_id"),
        from_balance_after=_opt_int(m.get("from_balance_after")),
        to_balance_after=_opt_int(m.get("to_balance_after")),
    )


def hold_from_json(data: Mapping[str, Any] | str) -> HoldRecord:
    m: Mapping[str, Any] = json.loads(data) if isinstance(data, str) else data
    return HoldRecord(
        id=m["id"],
        from_user_id=m["from_user_id"],
        to_user_id=m["to_user_id"],
        amount=int(m["amount"]),
        captured_amount=int(m["captured_amount"]),
        status=m["status"],
        expires_at=from_us(m["expires_at"]),
        created_at=from_us(m["created_at"]),
        metadata=m.get("metadata"),
    )


def result_from_json(item: Mapping[str, Any]) -> OpResult:
    hold = item.get("h")
    return OpResult(
        status=Status(item["s"]),
        transactions=tuple(tx_from_json(tx) for tx in item.get("t") or ()),
        hold=hold_from_json(hold) if hold else None,
    )


def results_from_json(text: str) -> list[OpResult]:
    return [result_from_json(item) for item in json.loads(text)]


def op_json(op: WriteOp) -> dict[str, str]:
    """A WriteOp as the JSON object ``ops.lua`` reads (strings only; absent fields left out)."""
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
        "expires_at": None if op.expires_at is None else str(to_us(op.expires_at)),
        "reverses_id": op.reverses_id,
        "ts": None if op.timestamp is None else str(to_us(op.timestamp)),
        "audit": op.audit_action,
        # a partial capture also writes the release of the rest, which needs an id of its own
        "id2": new_id() if op.kind is OpKind.CAPTURE else None,
    }
    return {key: value for key, value in fields.items() if value is not None}


def ops_json(ops: Sequence[WriteOp]) -> str:
    return json.dumps([op_json(op) for op in ops], separators=(",", ":"), ensure_ascii=False)


def pairs(flat: Sequence[Any] | Mapping[str, Any]) -> dict[str, Any]:
    """A flat [field, value, ...] reply (or an already parsed HGETALL) as a dict."""
    if isinstance(flat, Mapping):
        return dict(flat)
    return dict(zip(flat[::2], flat[1::2], strict=True))


def token_fields(token: TokenRecord) -> dict[str, str]:
    """The token hash as create_token.lua writes it (total_supply starts at 0; the mint raises it)."""
    fields = {
        "symbol": token.symbol,
        "name": token.name,
        "decimals": str(token.decimals),
        "emoji": token.emoji,
        "treasury_account": token.treasury_account,
        "initial_supply": str(token.initial_supply),
        "max_supply": None if token.max_supply is None else str(token.max_supply),
        "created_at": str(to_us(token.created_at)),
        "leaderboard_exclude": exclusions_to_text(token.leaderboard_exclude),
    }
    return {key: value for key, value in fields.items() if value is not None}


def token_from_hash(m: Mapping[str, str]) -> TokenRecord | None:
    if not m:
        return None
    return TokenRecord(
        symbol=m["symbol"],
        name=m["name"],
        decimals=int(m["decimals"]),
        emoji=m.get("emoji"),
        treasury_account=m["treasury_account"],
        initial_supply=int(m["initial_supply"]),
        max_supply=_opt_int(m.get("max_supply")),
        total_supply=int(m["total_supply"]),
        created_at=from_us(m["created_at"]),
        leaderboard_exclude=exclusions_from_text(m.get("leaderboard_exclude")),
    )
