"""Balance events into a list, with a way to wait for them (on PostgreSQL and Redis they arrive after the
write returns: through LISTEN/NOTIFY or pub/sub)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Self

from tokenbank.bank import TokenBank
from tokenbank.errors import InvalidRequestError
from tokenbank.events import BalanceUpdate

DEFAULT_WAIT = 5.0


class EventRecorder:
    """Records the :class:`~tokenbank.events.BalanceUpdate`\\ s of the accounts it watches, in arrival order.

    ``async with EventRecorder(bank, "alice", "bob") as events:`` watches those accounts until the block ends;
    :meth:`watch` adds more. Subscribing goes through ``bank.balances.subscribe_to_balance_updates``, so it
    raises ConfigurationError when TOKEN_ENABLE_NOTIFICATIONS is off."""

    def __init__(self, bank: TokenBank, *user_ids: str) -> None:
        self.bank = bank
        self.updates: list[BalanceUpdate] = []
        """Every update received so far, in arrival order."""
        self._initial = user_ids
        self._unsubscribe: list[Callable[[], None]] = []
        self._changed = asyncio.Event()

    async def watch(self, *user_ids: str) -> None:
        """Start recording these accounts' updates. Raises InvalidAccountError, ConfigurationError."""
        for user_id in user_ids:
            self._unsubscribe.append(await self.bank.balances.subscribe_to_balance_updates(user_id, self._record))

    def _record(self, update: BalanceUpdate) -> None:
        self.updates.append(update)
        self._changed.set()

    def of(self, user_id: str) -> list[BalanceUpdate]:
        """The updates of one account, in arrival order."""
        return [update for update in self.updates if update.user_id == user_id]

    def clear(self) -> None:
        """Forget what was recorded (the accounts stay watched)."""
        self.updates.clear()

    async def wait_for(
        self,
        count: int,
        *,
        user_id: str | None = None,
        timeout: float = DEFAULT_WAIT,  # noqa: ASYNC109 - a deadline is what callers of wait_for(count, timeout) want
    ) -> list[BalanceUpdate]:
        """Wait until at least ``count`` updates (of ``user_id``, if given) were recorded; returns them all.
        Raises TimeoutError naming how many arrived, InvalidRequestError for a bad count or timeout."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidRequestError(f"wait_for: count must be a non-negative int, got {count!r}")
        if not timeout > 0:
            raise InvalidRequestError(f"wait_for: timeout must be positive seconds, got {timeout!r}")

        def seen() -> list[BalanceUpdate]:
            return self.updates if user_id is None else self.of(user_id)

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(seen()) < count:
            left = deadline - loop.time()
            if left <= 0:
                whose = "" if user_id is None else f" of {user_id!r}"
                raise TimeoutError(f"{len(seen())} of {count} balance updates{whose} arrived within {timeout} s")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                continue
        return list(seen())

    async def close(self) -> None:
        """Stop watching (the recorded updates stay)."""
        while self._unsubscribe:
            self._unsubscribe.pop()()

    async def __aenter__(self) -> Self:
        await self.watch(*self._initial)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
