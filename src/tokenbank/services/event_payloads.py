"""The JSON bodies of webhook events: ``{"type", "timestamp", "data"}``, amounts as strings (never numbers)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tokenbank.models import Transaction, TransactionType

TRANSACTION_CREATED = "transaction.created"
BALANCE_THRESHOLD = "balance.threshold"
LOT_EXPIRING = "lot.expiring"
EVENT_TYPES = (TRANSACTION_CREATED, BALANCE_THRESHOLD, LOT_EXPIRING)


def transaction_data(tx: Transaction) -> dict[str, Any]:
    """A transaction as JSON carries it (webhook payloads, the CLI's ``--json``, ``events tail``): amounts exact
    as strings, never scientific; timestamps UTC to the microsecond the ledger stores."""
    data: dict[str, Any] = {
        "id": tx.id,
        "seq": tx.seq,
        "type": tx.type.value,
        "from_user_id": tx.from_user_id,
        "to_user_id": tx.to_user_id,
        "amount": format(tx.amount, "f"),
        "timestamp": tx.timestamp.astimezone(UTC).isoformat(timespec="microseconds"),
        "metadata": tx.metadata,
        "idempotency_key": tx.idempotency_key,
        "reason": tx.reason,
        "hold_id": tx.hold_id,
        "reverses_id": tx.reverses_id,
    }
    if tx.lot_moves:
        data["lot_moves"] = [{"lot_id": move.lot_id, "amount": format(move.amount, "f")} for move in tx.lot_moves]
    if tx.type is TransactionType.GRANT:
        data["expires_at"] = _iso(tx.expires_at)
        data["available_at"] = _iso(tx.available_at)
        data["category"] = tx.category
    return data


def lot_data(
    lot_id: str, user_id: str, remaining: Decimal, expires_at: datetime, category: str | None
) -> dict[str, Any]:
    """A ``lot.expiring`` event's data: what is left of the lot, exact as a string."""
    return {
        "lot_id": lot_id,
        "user_id": user_id,
        "amount": format(remaining, "f"),
        "expires_at": _iso(expires_at),
        "category": category,
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="microseconds")


def body(event_type: str, at: datetime, data: dict[str, Any]) -> str:
    """The exact text that is signed and sent."""
    return json.dumps(
        {"type": event_type, "timestamp": at.isoformat(), "data": data}, ensure_ascii=False, separators=(",", ":")
    )
