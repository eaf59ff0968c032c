"""Credit lots as the write scripts keep them (lua/lots.lua): an account's open lots, a JSON array in spend order
under its field of the ``lots`` hash, and the expiry index's ``<lot id>:<account id>`` members."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from tokenbank.storage.base import LotRecord
from tokenbank.storage.wire import LUA


def decode(user_id: str, text: str | bytes | None) -> list[LotRecord]:
    """The open lots of ``user_id`` from its field of the ``lots`` hash (None: none), in spend order."""
    if not text:
        return []
    return [LUA.lot({**lot, "user_id": user_id}) for lot in json.loads(text)]


def locked(lots: Iterable[LotRecord], now: datetime) -> int:
    """What the lots hold that cannot be spent at ``now`` (not yet available, or expired but not swept)."""
    return sum(lot.remaining for lot in lots if not lot.spendable_at(now))


def expiry_member(member: str) -> tuple[str, str]:
    """``(lot id, account id)`` of an expiry index member (a lot id never holds ``:``)."""
    lot_id, _, user_id = member.partition(":")
    return lot_id, user_id


def spend_order(lot: LotRecord) -> tuple[bool, datetime | None, bytes]:
    """Sort key of the spend order: sooner expiry first, no expiry last, then the id in byte order."""
    return lot.expires_at is None, lot.expires_at, lot.id.encode()


def encode(lot: LotRecord) -> dict[str, str]:
    """A lot as the scripts keep it (without ``user_id``, the field it is kept under; absent fields left out)."""
    fields = {
        "id": lot.id,
        "amount": str(lot.amount),
        "remaining": str(lot.remaining),
        "created_at": str(LUA.write_time(lot.created_at)),
        "expires_at": None if lot.expires_at is None else LUA.write_time(lot.expires_at),
        "available_at": None if lot.available_at is None else LUA.write_time(lot.available_at),
        "category": lot.category,
    }
    return {key: value for key, value in fields.items() if value is not None}
