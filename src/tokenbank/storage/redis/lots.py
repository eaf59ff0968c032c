"""Credit lots as the write scripts keep them (lua/lots.lua): an account's open lots, a JSON array in spend order
under its field of the ``lots`` hash, each lot a positional array ``[id, remaining, amount, expires_at,
available_at, category, created_at]`` (amounts as decimal strings, times as microseconds since the epoch, null
where unset; a used-up lot in ``lotsdone`` has the account id appended), and the expiry index's ``<lot id>:<account
id>`` members."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime

from tokenbank.storage.base import LotRecord
from tokenbank.storage.wire import from_us, to_us

Row = Sequence[str | None]
"""One lot as the scripts keep it (see the module docstring)."""


def record(user_id: str, row: Row) -> LotRecord:
    lot_id, remaining, amount, expires_at, available_at, category, created_at = row[:7]
    assert lot_id is not None and remaining is not None and amount is not None and created_at is not None
    return LotRecord(
        id=lot_id,
        user_id=user_id,
        amount=int(amount),
        remaining=int(remaining),
        expires_at=None if expires_at is None else from_us(expires_at),
        available_at=None if available_at is None else from_us(available_at),
        category=category,
        created_at=from_us(created_at),
    )


def decode(user_id: str, text: str | bytes | None) -> list[LotRecord]:
    """The open lots of ``user_id`` from its field of the ``lots`` hash (None: none), in spend order."""
    if not text:
        return []
    return [record(user_id, row) for row in json.loads(text)]


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


def encode(lot: LotRecord) -> list[str | None]:
    """A lot as the scripts keep it in the ``lots`` hash (without the account id, the field it is kept under)."""
    return [
        lot.id,
        str(lot.remaining),
        str(lot.amount),
        None if lot.expires_at is None else str(to_us(lot.expires_at)),
        None if lot.available_at is None else str(to_us(lot.available_at)),
        lot.category,
        str(to_us(lot.created_at)),
    ]
