"""``lot.expiring`` events: which lots the event pass warns about, and the warning's delivery.

Two paths find them, and an event id per lot makes them one event however often either finds it (a store keeps one
delivery per endpoint and event id):

- the time-driven step: the cursor ``lots.expiring`` holds the expiry moment (microseconds since the epoch) up to
  which warnings were queued; each pass takes the open lots expiring in (max(cursor, now), now + warning] and moves
  the cursor with them in one store call: a lot already expired (a token's first pass, a worker that was down)
  is not warned.
- the feed: a lot with less than the warning (plus :data:`GRANT_MARGIN`) left when it was granted, or when the
  pass reads its ``grant`` transaction, may lie behind the cursor already (granted inside the window, or committed
  or read late), so that pass warns about it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from tokenbank.amounts import from_base_units
from tokenbank.services.event_payloads import lot_data
from tokenbank.storage.base import LotRecord, OpKind, TxRecord
from tokenbank.storage.capabilities import LotStore

LOTS_CURSOR = "lots.expiring"
"""The time-driven step's cursor: the expiry moment, in microseconds since the epoch, warned up to."""
LOT_POSITION = 63
"""A time-driven warning's place among the events of the feed position it is queued at: after them."""
GRANT_MARGIN = timedelta(seconds=60)
"""How much more than the warning a grant read from the feed may have left and still be warned there: another
process's time-driven step may judge by a clock ahead of this one's, so its window may already reach a little
further; both paths finding a lot is harmless."""
ONE_MOMENT = 1_000_000
"""At most this many lots expiring at one microsecond are read at once (a full batch of one moment is read whole:
the cursor cannot stop inside a moment)."""


def event_id(lot_id: str) -> str:
    return f"evt_lotexp_{lot_id}"


def data(lot: LotRecord, decimals: int) -> dict[str, Any]:
    """The event's ``data``: what is left of the lot, exact as a string."""
    assert lot.expires_at is not None
    return lot_data(lot.id, lot.user_id, from_base_units(lot.remaining, decimals), lot.expires_at, lot.category)


def warned_grants(txs: Sequence[TxRecord], warning: timedelta, now: datetime) -> list[TxRecord]:
    """The grants of a feed batch inside their warning when granted or when read at ``now``: the time-driven
    step's window never reaches past ``now`` plus the warning, so a lot that expires later is still ahead of it,
    however late its grant was committed or read."""
    return [
        tx
        for tx in txs
        if tx.type == OpKind.GRANT and tx.expires_at is not None and tx.expires_at <= max(tx.timestamp, now) + warning
    ]


async def open_lots(store: LotStore, grants: Sequence[TxRecord], now: datetime) -> dict[str, LotRecord]:
    """What is left now of the lots ``grants`` created (lot id -> lot), without the lots used up or expired."""
    wanted = {tx.id for tx in grants}
    found: dict[str, LotRecord] = {}
    for user_id in dict.fromkeys(tx.to_user_id for tx in grants if tx.to_user_id is not None):
        for lot in await store.get_lots(user_id):
            if lot.id in wanted and lot.remaining > 0 and lot.expires_at is not None and lot.expires_at > now:
                found[lot.id] = lot
    return found


async def window(store: LotStore, after: datetime, until: datetime, limit: int) -> tuple[list[LotRecord], datetime]:
    """A batch of the open lots expiring in (after, until] and the moment the cursor may move to with it: ``until``
    when the batch holds them all, else the last moment the batch holds whole."""
    lots = await store.expiring_lots(after, until, limit)
    if len(lots) < limit:
        return lots, until
    last = lots[-1].expires_at
    assert last is not None
    whole = [lot for lot in lots if lot.expires_at is not None and lot.expires_at < last]
    if whole:
        reached = whole[-1].expires_at
        assert reached is not None
        return whole, reached
    return await store.expiring_lots(last - timedelta(microseconds=1), last, ONE_MOMENT), last
