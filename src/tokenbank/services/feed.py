"""``bank.events``: the ledger feed (every committed transaction in seq order) and named durable consumers.

A consumer's cursor lives in the store, so a consumer restarted anywhere resumes after the last seq it
acknowledged. Delivery is at-least-once: the cursor moves only after the handler returned for every transaction
up to it, so a crash repeats at most the unacknowledged part of one batch. Balance callbacks and the SSE stream
stay what they are (live, best effort); this is the durable path.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from tokenbank import convert
from tokenbank.errors import InvalidRequestError
from tokenbank.models import Transaction
from tokenbank.storage.durable import EventState, event_state_for

if TYPE_CHECKING:
    from tokenbank.ledger import Ledger

Handler = Callable[[Transaction], Awaitable[None] | None]
"""Called once per transaction (sync or async); an exception stops the consumer before its cursor passes it."""

MAX_READ = 10_000
_NAME_LIMIT = 128


def check_count(value: object, what: str, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidRequestError(f"{what} must be an integer from {low} to {high}")
    return value


def check_consumer_name(name: object) -> str:
    """A consumer name: 1-128 printable characters (names starting with ``tokenbank.`` are the worker's)."""
    if not isinstance(name, str) or not 0 < len(name) <= _NAME_LIMIT or not name.isprintable():
        raise InvalidRequestError(f"consumer name must be a printable string of 1 to {_NAME_LIMIT} characters")
    return name


class EventsService:
    """The feed of one bank's token."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._state: EventState | None = None

    @property
    def state(self) -> EventState:
        """The store's durable event state (built on first use)."""
        if self._state is None:
            self._state = event_state_for(self._ledger.storage)
        return self._state

    async def read(self, after_seq: int = 0, limit: int = 1000) -> list[Transaction]:
        """Committed transactions with ``seq > after_seq``, in seq order, every type, at most ``limit``. A seq
        is only returned once every lower seq that will ever commit has committed, so a reader that moves past
        the last seq it got never misses one. Raises InvalidRequestError, TokenNotInitializedError, FeedGapError
        (redis mode: the stream no longer holds seq ``after_seq + 1``), StorageError."""
        check_count(after_seq, "after_seq", low=0, high=2**63 - 1)
        check_count(limit, "limit", low=1, high=MAX_READ)
        await self._ledger.token_record()
        records = await self.state.feed(after_seq, limit)
        return [convert.transaction(record, self._ledger.decimals) for record in records]

    async def cursor(self, name: str) -> int:
        """The consumer's last acknowledged seq (0 for a consumer that never acknowledged one)."""
        return await self.state.get_cursor(check_consumer_name(name))

    async def consume_once(self, name: str, handler: Handler, *, batch: int = 100) -> int:
        """Hand the next batch after the consumer's cursor to ``handler``, one transaction at a time, in seq order,
        and move the cursor past what the handler returned from. Returns how many it handled (0: caught up).
        An exception from the handler propagates after the cursor was moved past the transactions before it.
        Raises InvalidRequestError, FeedGapError, StorageError."""
        check_consumer_name(name)
        check_count(batch, "batch", low=1, high=MAX_READ)
        after = await self.state.get_cursor(name)
        done = 0
        last = after
        try:
            for tx in await self.read(after, batch):
                result = handler(tx)
                if inspect.isawaitable(result):
                    await result
                last = tx.seq
                done += 1
        finally:
            if last > after:
                await self.state.set_cursor(name, last)
        return done

    async def consume(
        self,
        name: str,
        handler: Handler,
        *,
        batch: int = 100,
        poll_interval: float = 0.5,
        max_batches: int | None = None,
    ) -> int:
        """Run the consumer ``name`` until cancelled (or ``max_batches`` batches that found something): each
        batch as :meth:`consume_once`; when caught up, poll again after ``poll_interval`` seconds. Returns how
        many transactions it handled. Several processes may run the same consumer, but each batch then goes to
        whichever reads it first and may go to both: run one per name (the worker elects one with a lease)."""
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, int | float) or poll_interval < 0:
            raise InvalidRequestError("poll_interval must be a number of seconds >= 0")
        if max_batches is not None:
            check_count(max_batches, "max_batches", low=1, high=2**31)
        handled = batches = 0
        while max_batches is None or batches < max_batches:
            done = await self.consume_once(name, handler, batch=batch)
            handled += done
            if done:
                batches += 1
            else:
                await asyncio.sleep(poll_interval)
        return handled
