"""Storage records (base-unit ints, JSON text) to public models (Decimal, dicts)."""

from __future__ import annotations

import json
from typing import Any

from tokenbank.amounts import from_base_units
from tokenbank.models import Hold, HoldStatus, Lot, LotMove, TokenInfo, Transaction, TransactionType
from tokenbank.storage.base import HoldRecord, LotRecord, TokenRecord, TxRecord


def _metadata(text: str | None) -> dict[str, Any] | None:
    return None if text is None else json.loads(text)


def transaction(record: TxRecord, decimals: int) -> Transaction:
    return Transaction(
        id=record.id,
        seq=record.seq,
        type=TransactionType(record.type),
        from_user_id=record.from_user_id,
        to_user_id=record.to_user_id,
        amount=from_base_units(record.amount, decimals),
        timestamp=record.timestamp,
        metadata=_metadata(record.metadata),
        idempotency_key=record.idempotency_key,
        reason=record.reason,
        hold_id=record.hold_id,
        reverses_id=record.reverses_id,
        lot_moves=tuple(LotMove(lot_id, from_base_units(units, decimals)) for lot_id, units in record.lots),
        expires_at=record.expires_at,
        available_at=record.available_at,
        category=record.category,
    )


def lot(record: LotRecord, decimals: int) -> Lot:
    return Lot(
        id=record.id,
        user_id=record.user_id,
        amount=from_base_units(record.remaining, decimals),
        granted=from_base_units(record.amount, decimals),
        expires_at=record.expires_at,
        available_at=record.available_at,
        category=record.category,
        created_at=record.created_at,
    )


def hold(record: HoldRecord, decimals: int) -> Hold:
    return Hold(
        id=record.id,
        from_user_id=record.from_user_id,
        to_user_id=record.to_user_id,
        amount=from_base_units(record.amount, decimals),
        captured_amount=from_base_units(record.captured_amount, decimals),
        status=HoldStatus(record.status),
        expires_at=record.expires_at,
        created_at=record.created_at,
        metadata=_metadata(record.metadata),
    )


def token_info(record: TokenRecord) -> TokenInfo:
    d = record.decimals
    return TokenInfo(
        name=record.name,
        symbol=record.symbol,
        decimals=d,
        emoji=record.emoji,
        treasury_account=record.treasury_account,
        initial_supply=from_base_units(record.initial_supply, d),
        max_supply=None if record.max_supply is None else from_base_units(record.max_supply, d),
        total_supply=from_base_units(record.total_supply, d),
        created_at=record.created_at,
        leaderboard_exclude=record.excluded_accounts,
    )
