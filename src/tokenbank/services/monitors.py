"""``bank.monitors``: balance thresholds, and the ``balance.threshold`` events they fire.

A monitor watches one account (or ``*``: every account) for its spendable balance going below ``below`` or above
``above``. Each watched account has a zone per monitor (``below``, ``inside``, ``above``), stored with the
feed's position, so an event fires once when the balance enters ``below`` or ``above`` and again only after it
left that zone (hysteresis). Monitors are evaluated by the event pass (``tokenbank worker``, or
``bank.webhooks.run_once()``) from the feed, so they see every transaction exactly once, whichever process wrote
it; their events go to webhooks subscribed to ``balance.threshold`` and are listed by :meth:`MonitorsService.events`.
"""

from __future__ import annotations

import builtins
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from tokenbank.amounts import AmountInput, from_base_units, to_base_units
from tokenbank.errors import InvalidRequestError, MonitorNotFoundError
from tokenbank.events import updates_for
from tokenbank.ids import check_account_id, check_lookup_id, new_id
from tokenbank.services.event_payloads import BALANCE_THRESHOLD, body
from tokenbank.services.feed import check_count
from tokenbank.storage.base import TxRecord
from tokenbank.storage.durable import EventState, MonitorEventRecord, MonitorRecord, MonitorStateRecord

if TYPE_CHECKING:
    from tokenbank.ledger import Ledger

EVERY_ACCOUNT = "*"


@dataclass(frozen=True, slots=True)
class Monitor:
    id: str
    user_id: str
    """An account id, or ``*`` for every account."""
    below: Decimal | None
    above: Decimal | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ThresholdEvent:
    """A balance crossed a monitor's threshold (the ``data`` of a ``balance.threshold`` webhook)."""

    id: int
    """Position among the token's threshold events (for paging with ``after_id``)."""
    event_id: str
    monitor_id: str
    user_id: str
    direction: str
    """``below`` or ``above``."""
    threshold: Decimal
    balance: Decimal
    transaction_id: str
    seq: int
    timestamp: datetime


def _zone(balance: int, monitor: MonitorRecord) -> str:
    if monitor.below is not None and balance < monitor.below:
        return "below"
    if monitor.above is not None and balance > monitor.above:
        return "above"
    return "inside"


def _account_hash(user_id: str) -> str:
    return hashlib.sha256(user_id.encode()).hexdigest()[:16]


@dataclass(slots=True)
class Crossing:
    """What evaluating a batch produced: new zones to store and events fired (in feed order)."""

    states: list[MonitorStateRecord]
    events: list[tuple[TxRecord, MonitorEventRecord, str]]
    """(transaction, event record, event body)."""


def touched(monitors: Sequence[MonitorRecord], txs: Sequence[TxRecord]) -> list[tuple[str, str]]:
    """The (monitor id, account) pairs a batch of transactions concerns."""
    users = {user for tx in txs for user in (tx.from_user_id, tx.to_user_id) if user is not None}
    return [(m.id, u) for m in monitors for u in sorted(users) if m.user_id in (EVERY_ACCOUNT, u)]


def evaluate(
    monitors: Sequence[MonitorRecord], txs: Sequence[TxRecord], zones: dict[tuple[str, str], str], decimals: int
) -> Crossing:
    """Walk the batch in seq order, moving each (monitor, account) zone; an account seen for the first time
    starts in the zone of its balance before the transaction. ``zones`` is updated in place."""
    if not monitors:
        return Crossing([], [])
    states: dict[tuple[str, str], MonitorStateRecord] = {}
    events: list[tuple[TxRecord, MonitorEventRecord, str]] = []
    for tx in txs:
        for update in updates_for(tx, 0):  # decimals 0: the update's figures are base units
            if update.balance is None:
                continue
            after = int(update.balance)
            before = after - int(update.change)
            for monitor in monitors:
                if monitor.user_id not in (EVERY_ACCOUNT, update.user_id) or tx.timestamp < monitor.created_at:
                    continue
                key = (monitor.id, update.user_id)
                was = zones.get(key) or _zone(before, monitor)
                now = _zone(after, monitor)
                zones[key] = now
                states[key] = MonitorStateRecord(monitor.id, update.user_id, now, tx.seq)
                if now == was or now == "inside":
                    continue
                threshold = monitor.below if now == "below" else monitor.above
                assert threshold is not None
                event_id = f"evt_{tx.id}_{monitor.id}_{_account_hash(update.user_id)}"
                data = {
                    "monitor_id": monitor.id,
                    "user_id": update.user_id,
                    "direction": now,
                    "threshold": str(from_base_units(threshold, decimals)),
                    "balance": str(from_base_units(after, decimals)),
                    "transaction_id": tx.id,
                    "seq": tx.seq,
                }
                text = body(BALANCE_THRESHOLD, tx.timestamp, data)
                record = MonitorEventRecord(0, event_id, monitor.id, update.user_id, tx.seq, text, tx.timestamp)
                events.append((tx, record, text))
    return Crossing(list(states.values()), events)


def threshold_event(record: MonitorEventRecord) -> ThresholdEvent:
    data = json.loads(record.payload)["data"]
    return ThresholdEvent(
        id=record.id,
        event_id=record.event_id,
        monitor_id=record.monitor_id,
        user_id=record.user_id,
        direction=data["direction"],
        threshold=Decimal(data["threshold"]),
        balance=Decimal(data["balance"]),
        transaction_id=data["transaction_id"],
        seq=record.seq,
        timestamp=record.created_at,
    )


class MonitorsService:
    """Balance monitors of one bank's token."""

    def __init__(self, ledger: Ledger, state: EventState) -> None:
        self._ledger = ledger
        self._state = state

    def _public(self, record: MonitorRecord) -> Monitor:
        d = self._ledger.decimals
        below = None if record.below is None else from_base_units(record.below, d)
        above = None if record.above is None else from_base_units(record.above, d)
        return Monitor(record.id, record.user_id, below, above, record.created_at)

    async def add(self, user_id: str, *, below: AmountInput | None = None, above: AmountInput | None = None) -> Monitor:
        """Watch ``user_id`` (or ``"*"``, every account): an event when its balance goes below ``below`` or above
        ``above`` (at least one; ``below`` <= ``above``). Only transactions after this call are evaluated.
        Raises InvalidAccountError, InvalidAmountError, InvalidRequestError, TokenNotInitializedError."""
        if user_id != EVERY_ACCOUNT:
            check_account_id(user_id)
        if below is None and above is None:
            raise InvalidRequestError("a monitor needs a threshold: below=, above= or both")
        d = self._ledger.decimals
        low = None if below is None else to_base_units(below, d)
        high = None if above is None else to_base_units(above, d)
        if low is not None and high is not None and low > high:
            raise InvalidRequestError("below must not be greater than above")
        await self._ledger.token_record()
        record = MonitorRecord(new_id(), user_id, low, high, datetime.now(UTC))
        await self._state.add_monitor(record)
        return self._public(record)

    async def list(self) -> builtins.list[Monitor]:
        return [self._public(record) for record in await self._state.list_monitors()]

    async def remove(self, monitor_id: str) -> None:
        """Stop watching (events already fired stay). Raises MonitorNotFoundError."""
        if not await self._state.remove_monitor(check_lookup_id(monitor_id, "monitor")):
            raise MonitorNotFoundError(f"monitor not found: {monitor_id}")

    async def events(self, after_id: int = 0, limit: int = 100) -> builtins.list[ThresholdEvent]:
        """Threshold events fired so far with ``id > after_id``, oldest first (a consumer pages with the last
        id it saw)."""
        check_count(after_id, "after_id", low=0, high=2**63 - 1)
        check_count(limit, "limit", low=1, high=10_000)
        return [threshold_event(r) for r in await self._state.monitor_events(after_id, limit)]
