"""A server-sent-events stream of one account's balance updates.

Each committed change of the account becomes one event::

    id: <transaction id>
    event: balance
    data: {"user_id": "alice", "balance": "12.50", "change": "-2.50", "transaction_id": "...", ...}

A comment line (``: keep-alive``) is sent when nothing happened for ``keepalive`` seconds, so proxies keep the
connection open and a vanished client is noticed. If a client reads too slowly and ``max_pending`` updates pile
up, the stream ends with an ``event: overflow`` (reconnect and re-read the balance) rather than skip one.
The subscription is removed when the stream ends for whatever reason (client gone, server shutdown).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

import tokenbank.integrations.fastapi.responses as api
from tokenbank.bank import TokenBank
from tokenbank.events import BalanceUpdate
from tokenbank.integrations.fastapi.field_types import amount_text

DEFAULT_KEEPALIVE = 15.0
DEFAULT_MAX_PENDING = 1000
RETRY_MS = 3000


class EventStreamResponse(StreamingResponse):
    """``text/event-stream``; runs ``on_close`` once the response is over, even if it never started streaming."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[str], on_close: Callable[[], None] | None = None) -> None:
        super().__init__(
            content,
            media_type=self.media_type,
            # no-transform / X-Accel-Buffering: proxies (nginx) must pass events through at once.
            headers={"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"},
        )
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self._on_close is not None:
                self._on_close()
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:  # a generator cut off while sending: run its cleanup now, not at GC
                await aclose()


def format_event(update: BalanceUpdate) -> str:
    data = api.BalanceEvent(
        user_id=update.user_id,
        balance=None if update.balance is None else amount_text(update.balance),
        change=amount_text(update.change),
        transaction_id=update.transaction_id,
        transaction_type=update.transaction_type,
        timestamp=update.timestamp,
    ).model_dump_json()
    return f"id: {update.transaction_id}\nevent: balance\ndata: {data}\n\n"


async def balance_event_stream(
    bank: TokenBank,
    user_id: str,
    *,
    keepalive: float = DEFAULT_KEEPALIVE,
    max_pending: int = DEFAULT_MAX_PENDING,
) -> EventStreamResponse:
    """Subscribe now (so errors become a normal HTTP error answer: InvalidAccountError, ConfigurationError when
    notifications are off) and return the response that streams the updates."""
    queue: asyncio.Queue[BalanceUpdate] = asyncio.Queue(maxsize=max_pending)
    overflowed = asyncio.Event()

    def deliver(update: BalanceUpdate) -> None:
        try:
            queue.put_nowait(update)
        except asyncio.QueueFull:
            overflowed.set()

    unsubscribe = await bank.balances.subscribe_to_balance_updates(user_id, deliver)
    closed = False

    def close() -> None:
        nonlocal closed
        if not closed:
            closed = True
            unsubscribe()

    async def events() -> AsyncIterator[str]:
        try:
            yield f"retry: {RETRY_MS}\n: subscribed\n\n"
            while True:
                if overflowed.is_set() and queue.empty():
                    yield 'event: overflow\ndata: {"message": "too many pending updates; reconnect"}\n\n'
                    return
                try:
                    update = await asyncio.wait_for(queue.get(), keepalive)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                yield format_event(update)
        finally:
            close()

    return EventStreamResponse(events(), on_close=close)


__all__ = ["DEFAULT_KEEPALIVE", "EventStreamResponse", "balance_event_stream", "format_event"]
