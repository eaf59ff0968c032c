"""Balance events: who is subscribed, and turning committed transactions into per-account updates.

Events are dispatched only after commit: from the store's cross-process feed where it has one
(PostgreSQL LISTEN/NOTIFY, Redis pub/sub), otherwise by the facade right after its own write returns
(SQLite: in-process only).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from tokenbank.amounts import from_base_units
from tokenbank.models import TransactionType
from tokenbank.storage.base import TxRecord

logger = logging.getLogger("tokenbank")


@dataclass(frozen=True, slots=True)
class BalanceUpdate:
    """One account's spendable balance changed (or funds were reserved for it) by a committed transaction."""

    user_id: str
    balance: Decimal | None
    change: Decimal
    transaction_id: str
    transaction_type: TransactionType
    timestamp: datetime


BalanceCallback = Callable[[BalanceUpdate], Awaitable[None] | None]

# How each transaction type moves the spendable balance of its sender and receiver (sign of the amount).
_SIDES: dict[str, tuple[int, int]] = {
    "transfer": (-1, 1),
    "reversal": (-1, 1),
    "mint": (0, 1),
    "burn": (-1, 0),
    "hold": (-1, 0),
    "capture": (0, 1),
    "void": (1, 0),
    "grant": (-1, 1),  # minted when it has no sender
    "expire": (-1, 1),
}


def updates_for(tx: TxRecord, decimals: int) -> list[BalanceUpdate]:
    """The per-account balance updates a transaction caused."""
    from_sign, to_sign = _SIDES[tx.type]
    updates = []
    for user_id, sign, after in (
        (tx.from_user_id, from_sign, tx.from_balance_after),
        (tx.to_user_id, to_sign, tx.to_balance_after),
    ):
        if user_id is None or sign == 0:
            continue
        updates.append(
            BalanceUpdate(
                user_id=user_id,
                balance=None if after is None else from_base_units(after, decimals),
                change=from_base_units(sign * tx.amount, decimals),
                transaction_id=tx.id,
                transaction_type=TransactionType(tx.type),
                timestamp=tx.timestamp,
            )
        )
    return updates


class EventHub:
    """Per-account subscriber lists; delivers each update to the callbacks of its account."""

    def __init__(self, decimals: int) -> None:
        self._decimals = decimals
        self._subscribers: dict[str, list[BalanceCallback]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def active(self) -> bool:
        return bool(self._subscribers)

    def add(self, user_id: str, callback: BalanceCallback) -> None:
        self._subscribers.setdefault(user_id, []).append(callback)

    def remove(self, user_id: str, callback: BalanceCallback | None = None) -> None:
        if callback is None:
            self._subscribers.pop(user_id, None)
            return
        callbacks = self._subscribers.get(user_id, [])
        if callback in callbacks:
            callbacks.remove(callback)
        if not callbacks:
            self._subscribers.pop(user_id, None)

    def dispatch(self, tx: TxRecord) -> None:
        """Deliver a committed transaction; a failing callback is logged and never reaches the writer."""
        for update in updates_for(tx, self._decimals):
            for callback in list(self._subscribers.get(update.user_id, ())):
                try:
                    result = callback(update)
                    if inspect.isawaitable(result):
                        task = asyncio.ensure_future(self._guard(result))
                        self._tasks.add(task)
                        task.add_done_callback(self._tasks.discard)
                except Exception:
                    logger.exception("balance event callback failed", extra={"user_id": update.user_id})

    async def _guard(self, awaitable: Awaitable[None]) -> None:
        try:
            await awaitable
        except Exception:
            logger.exception("balance event callback failed")

    async def drain(self) -> None:
        """Wait for callbacks still running (used on close)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
