"""Credit lots as the write scripts keep them (lua/lots.lua): each open lot under its id in the ``lots`` hash, a
positional array ``[id, remaining, amount, expires_at, available_at, category, created_at, account id]`` (amounts
as decimal strings, times as microseconds since the epoch, null where unset), a used-up lot the same way in
``lotsdone``; per account a sorted set of its open lot ids in spend order (score :func:`order_score`) and one of
those with an ``available_at``; and the expiry index's ``<lot id>:<account id>`` members."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from tokenbank.storage.base import LotRecord
from tokenbank.storage.wire import from_us, to_us

Row = Sequence[str | None]
"""One lot as the scripts keep it (see the module docstring)."""


def record(row: Row) -> LotRecord:
    lot_id, remaining, amount, expires_at, available_at, category, created_at, user_id = row[:8]
    assert lot_id is not None and remaining is not None and amount is not None and created_at is not None
    assert user_id is not None
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


def decode(text: str | bytes) -> LotRecord:
    """A lot from its value in the ``lots`` (or ``lotsdone``) hash."""
    return record(json.loads(text))


def old_layout(sample: Sequence[Any]) -> bool:
    """Whether a field of the ``lots`` hash (the reply of ``HRANDFIELD lots 1 WITHVALUES``: ``[field, value]``, or
    ``[[field, value]]`` in RESP3; empty when there is no hash) is in the layout of earlier builds, where each
    field was an account's array of lots (an array of arrays; an empty one too), not a lot."""
    pair = sample[0] if sample and isinstance(sample[0], list) else sample
    return len(pair) == 2 and (pair[1].startswith("[[") or pair[1].replace(" ", "") == "[]")


def expiry_member(member: str) -> tuple[str, str]:
    """``(lot id, account id)`` of an expiry index member (a lot id never holds ``:``)."""
    lot_id, _, user_id = member.partition(":")
    return lot_id, user_id


def order_score(lot: LotRecord) -> int | float:
    """The lot's score in its account's spend-order set: ``expires_at`` in microseconds, ``+inf`` for none (Redis
    then orders equal scores by member bytes: the id in byte order, the spend order's tie-break)."""
    return float("inf") if lot.expires_at is None else to_us(lot.expires_at)


def encode(lot: LotRecord) -> list[str | None]:
    """A lot as the scripts keep it in the ``lots`` and ``lotsdone`` hashes."""
    return [
        lot.id,
        str(lot.remaining),
        str(lot.amount),
        None if lot.expires_at is None else str(to_us(lot.expires_at)),
        None if lot.available_at is None else str(to_us(lot.available_at)),
        lot.category,
        str(to_us(lot.created_at)),
        lot.user_id,
    ]
