"""PostgreSQL rows in Redis's own formats (the JSON the Lua scripts write), for rebuild and repair.

Every number is a decimal string and every time integer microseconds, exactly as lib.lua/ops.lua write them,
so a rebuilt entry is indistinguishable from one Redis wrote itself.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from tokenbank.storage.redis.codec import to_us
from tokenbank.storage.redis.layout import StoredHold, StoredTransaction
from tokenbank.storage.sql.backend import SqlStorage


async def fetch(sql: SqlStorage, stmt: sa.Executable) -> list[Any]:
    """All rows of one read statement."""
    return await sql.run_sync(lambda conn: list(conn.execute(stmt).all()))


def _compact(fields: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in fields.items() if v is not None}, ensure_ascii=False, separators=(",", ":"))


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)


def tx_json(row: Any) -> str:
    """A tb_transactions row as the ``:tx`` hash stores it."""
    return _compact(
        {
            "seq": str(row.seq), "id": row.id, "type": row.type, "from_user_id": row.from_user_id,
            "to_user_id": row.to_user_id, "amount": str(row.amount),
            "from_balance_after": _opt(row.from_balance_after), "to_balance_after": _opt(row.to_balance_after),
            "created_at": str(to_us(row.created_at)), "metadata": row.metadata,
            "idempotency_key": row.idempotency_key, "request_hash": row.request_hash, "reason": row.reason,
            "hold_id": row.hold_id, "reverses_id": row.reverses_id, "lots": _moves(row.lots),
            "expires_at": _us(row.expires_at), "available_at": _us(row.available_at), "category": row.category,
        }
    )  # fmt: skip


def _moves(text: str | None) -> Any:
    """Lot moves as the scripts keep them: a JSON array inside the entry (a SQL column keeps its text)."""
    return None if text is None else json.loads(text)


def _us(moment: Any) -> str | None:
    return None if moment is None else str(to_us(moment))


def hold_json(row: Any) -> str:
    """A tb_holds row as the ``:holds`` hash stores it."""
    return _compact(
        {
            "id": row.id, "from_user_id": row.from_user_id, "to_user_id": row.to_user_id, "amount": str(row.amount),
            "captured_amount": str(row.captured_amount), "status": row.status,
            "expires_at": str(to_us(row.expires_at)), "created_at": str(to_us(row.created_at)),
            "metadata": row.metadata, "lots": _moves(row.lots),
        }
    )  # fmt: skip


def stored_transaction(row: Any) -> StoredTransaction:
    """A tb_transactions row as Redis's layout holds it (the entry and its indexes)."""
    accounts = frozenset(user for user in (row.from_user_id, row.to_user_id) if user is not None)
    return StoredTransaction(row.id, row.seq, tx_json(row), row.idempotency_key, row.reverses_id, accounts)


def stored_hold(row: Any) -> StoredHold:
    """A tb_holds row as Redis's layout holds it."""
    return StoredHold(row.id, hold_json(row), row.status == "pending", to_us(row.expires_at))


def audit_json(row: Any) -> str:
    """A tb_audit row as the ``:audit`` hash stores it."""
    return _compact({"action": row.action, "details": row.details, "ts": str(to_us(row.created_at))})
