"""Rows (SQLAlchemy rows or the JSON that ``tb_apply`` returns) to storage records."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from tokenbank.storage.base import HoldRecord, TxRecord


def _utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def tx_from_row(row: Any) -> TxRecord:
    m = row._mapping if hasattr(row, "_mapping") else row
    return TxRecord(
        seq=int(m["seq"]),
        id=m["id"],
        type=m["type"],
        from_user_id=m["from_user_id"],
        to_user_id=m["to_user_id"],
        amount=int(m["amount"]),
        timestamp=_utc(m["created_at"]),
        metadata=m.get("metadata"),
        idempotency_key=m.get("idempotency_key"),
        reason=m.get("reason"),
        hold_id=m.get("hold_id"),
        reverses_id=m.get("reverses_id"),
        from_balance_after=m.get("from_balance_after"),
        to_balance_after=m.get("to_balance_after"),
    )


def hold_from_row(row: Any) -> HoldRecord:
    m = row._mapping if hasattr(row, "_mapping") else row
    return HoldRecord(
        id=m["id"],
        from_user_id=m["from_user_id"],
        to_user_id=m["to_user_id"],
        amount=int(m["amount"]),
        captured_amount=int(m["captured_amount"]),
        status=m["status"],
        expires_at=_utc(m["expires_at"]),
        created_at=_utc(m["created_at"]),
        metadata=m["metadata"],
    )


def audit_details(tx: TxRecord) -> str:
    """The audit entry written with a mint, burn, reversal or import (same keys as pg_apply.sql)."""
    return json.dumps(
        {
            "transaction_id": tx.id,
            "type": tx.type,
            "from_user_id": tx.from_user_id,
            "to_user_id": tx.to_user_id,
            "amount": str(tx.amount),
            "reason": tx.reason,
        },
        sort_keys=True,
    )
