"""The live feed: the token's newest transactions, and a server-sent-events stream of the ones that follow.

Every read goes through :func:`read_feed`, the one place that knows where token-wide transactions come from
(today the SQL ledger of record, in ``sql`` and ``hybrid`` mode; in ``hybrid`` mode a transaction shows up once
the sync worker has written it). The stream polls it every ``interval`` seconds and pushes what is new, so it
needs no subscription and sees the writes of every process::

    id: 42
    event: transaction
    data: {"id": "...", "seq": 42, "type": "transfer", "from_user_id": "alice", ...}
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from tokenbank import convert
from tokenbank.bank import TokenBank
from tokenbank.errors import ConfigurationError
from tokenbank.integrations.fastapi.field_types import amount_text
from tokenbank.integrations.fastapi.sse import EventStreamResponse
from tokenbank.models import Transaction
from tokenbank.storage.base import TxRecord
from tokenbank.storage.capabilities import SqlLedgerAccess
from tokenbank.storage.sql import analytics as sql
from tokenbank.storage.sql.schema import transactions
from tokenbank.storage.wire import SQL

MAX_FEED = 200
"""Most transactions one feed read returns."""
MAX_PAGES = 5
"""Feed reads per poll of the stream: past ``MAX_FEED * MAX_PAGES`` new transactions in one poll interval the
stream skips ahead to the newest (a glance at a busy ledger, not an export)."""
LATE_COMMIT_SECONDS = 2.0
"""A transaction given its ``seq`` before another may commit after it (concurrent PostgreSQL writers): the stream
looks back this long for such late rows, so they are pushed rather than skipped."""
RETRY_MS = 3000


@dataclass(frozen=True, slots=True)
class FeedPage:
    """Transactions in ``seq`` order, and the token's highest ``seq`` when they were read."""

    items: list[Transaction]
    head: int


def row(tx: Transaction) -> dict[str, Any]:
    """What the page shows of a transaction (no metadata: the feed is a glance)."""
    return {
        "id": tx.id,
        "seq": tx.seq,
        "type": tx.type.value,
        "from_user_id": tx.from_user_id,
        "to_user_id": tx.to_user_id,
        "amount": amount_text(tx.amount),
        "timestamp": tx.timestamp.isoformat(),
        "reason": tx.reason,
    }


async def read_feed(bank: TokenBank, after_seq: int | None, limit: int) -> FeedPage:
    """Up to ``limit`` transactions with ``seq > after_seq`` (``None``: the newest ``limit``), in seq order.
    Raises ConfigurationError when the store keeps no token-wide log (``redis`` mode), StorageError."""
    store = bank.storage
    if not isinstance(store, SqlLedgerAccess):
        raise ConfigurationError(
            "the live feed reads the SQL ledger of record (sql or hybrid mode); this bank uses "
            f"{bank.settings.storage_mode.value!r}"
        )
    token = store.token

    def read(conn: Connection) -> tuple[list[TxRecord], int]:
        last = sql.last_seq(conn, token)
        if after_seq is None:
            newest = sa.select(transactions).where(transactions.c.token == token)
            rows = conn.execute(newest.order_by(transactions.c.seq.desc()).limit(limit))
            return [SQL.tx(r) for r in rows][::-1], last
        # through_seq=last: rows and head from one snapshot, so a poll after the head skips nothing.
        return sql.iter_transactions(conn, token, None, None, after_seq, limit, last), last

    records, last = await store.run_sync(read)
    items = [convert.transaction(record, bank.decimals) for record in records]
    return FeedPage(items, last)


def _event(tx: Transaction) -> str:
    return f"id: {tx.seq}\nevent: transaction\ndata: {json.dumps(row(tx), separators=(',', ':'))}\n\n"


async def feed_stream(
    bank: TokenBank, after_seq: int | None, *, interval: float, keepalive: float
) -> EventStreamResponse:
    """Read the feed once now (a store without one is then a normal error answer) and return the response that
    pushes every transaction after ``after_seq`` (``None``: after the newest one now) as it appears."""
    first = await read_feed(bank, after_seq, MAX_FEED if after_seq is not None else 1)
    backlog = first.items if after_seq is not None else []
    seen = {tx.seq for tx in backlog}
    cursor = max([first.head if after_seq is None else after_seq, *seen])
    # The cursor of each recent poll: a poll reads after the oldest, to catch rows that committed late.
    floors = deque([cursor], maxlen=max(1, math.ceil(LATE_COMMIT_SECONDS / interval)))

    async def poll() -> tuple[list[Transaction], int]:
        fresh: list[Transaction] = []
        after = floors[0]
        for _ in range(MAX_PAGES):
            page = await read_feed(bank, after, MAX_FEED)
            fresh.extend(tx for tx in page.items if tx.seq not in seen)
            if len(page.items) < MAX_FEED:
                break
            after = page.items[-1].seq
        return fresh, page.head

    async def events() -> AsyncIterator[str]:
        nonlocal seen
        yield f"retry: {RETRY_MS}\n: following after {cursor}\n\n"
        for tx in backlog:
            yield _event(tx)
        quiet = 0.0
        while True:
            await asyncio.sleep(interval)
            fresh, head = await poll()
            for tx in fresh:
                seen.add(tx.seq)
                yield _event(tx)
            floors.append(max(floors[-1], head))
            seen = {seq for seq in seen if seq > floors[0]}
            quiet = 0.0 if fresh else quiet + interval
            if quiet >= keepalive:
                quiet = 0.0
                yield ": keep-alive\n\n"

    return EventStreamResponse(events())


__all__ = ["LATE_COMMIT_SECONDS", "MAX_FEED", "MAX_PAGES", "FeedPage", "feed_stream", "read_feed", "row"]
