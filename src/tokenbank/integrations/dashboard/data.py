"""What the dashboard's data endpoints answer: plain JSON-ready dicts built from the bank's public reads.

A part the bank cannot provide in its mode (analytics and the feed need the SQL ledger of record, the leaderboard
can be switched off) answers ``{"available": false, "reason": ...}`` instead of failing the whole page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import tokenbank.integrations.fastapi.responses as api
from tokenbank.bank import TokenBank
from tokenbank.errors import ConfigurationError
from tokenbank.health import check_health
from tokenbank.integrations.dashboard.live import read_feed, row
from tokenbank.integrations.fastapi.field_types import amount_text

Json = dict[str, Any]


async def optional(read: Callable[[], Awaitable[Json]]) -> Json:
    """``{"available": true, ...read()}``, or ``available: false`` with the reason when the mode lacks it."""
    try:
        return {"available": True, **await read()}
    except ConfigurationError as exc:
        return {"available": False, "reason": exc.message}


async def overview(bank: TokenBank) -> Json:
    """Token settings and supply figures (amounts as exact strings), and the storage mode."""
    info = await bank.get_token_info()
    token = api.TokenInfo.of(info, await bank.get_circulating_supply()).model_dump(mode="json")
    return {"token": token, "mode": bank.settings.storage_mode.value}


async def health(bank: TokenBank) -> Json:
    """The health report (never raises: a failing store is a ``down`` check); the hybrid store's ``sync`` check
    carries its lag and backlog."""
    report = api.Health.of(await check_health(bank)).model_dump(mode="json")
    sync = next((check for check in report["checks"] if check["name"] == "sync"), None)
    return {**report, "mode": bank.settings.storage_mode.value, "sync": sync}


async def volume(bank: TokenBank, hours: int) -> Json:
    """Transfer count and volume per UTC hour over the last ``hours`` hours (empty hours included)."""

    async def read() -> Json:
        since = datetime.now(UTC) - timedelta(hours=hours - 1)
        buckets = await bank.analytics.get_volume(since.replace(minute=0, second=0, microsecond=0), period="hour")
        items = [{"start": b.start.isoformat(), "count": b.count, "volume": amount_text(b.volume)} for b in buckets]
        return {"period": "hour", "buckets": items}

    return await optional(read)


async def leaderboard(bank: TokenBank, limit: int) -> Json:
    """The top ``limit`` holders (excluded accounts, the treasury by default, left out)."""

    async def read() -> Json:
        return {"holders": [api.Holder.of(h).model_dump(mode="json") for h in await bank.get_top_holders(limit)]}

    return await optional(read)


async def feed(bank: TokenBank, limit: int) -> Json:
    """The newest ``limit`` transactions, newest first, and the ``seq`` to follow the stream after."""

    async def read() -> Json:
        page = await read_feed(bank, None, limit)
        return {"items": [row(tx) for tx in reversed(page.items)], "head": page.head}

    return await optional(read)


async def account(bank: TokenBank, user_id: str, cursor: str | None, limit: int) -> Json:
    """One account: balance, held funds, rank, and one page of its history (newest first; follow
    ``next_cursor`` for older rows). Raises InvalidAccountError, InvalidRequestError (a bad cursor)."""
    page = await bank.transactions.get_transaction_history(user_id, limit=limit, cursor=cursor)
    try:
        rank: int | None = await bank.get_rank(user_id)
    except ConfigurationError:  # leaderboard switched off
        rank = None
    return {
        "user_id": user_id,
        "balance": amount_text(await bank.get_balance(user_id)),
        "held": amount_text(await bank.get_held_balance(user_id)),
        "rank": rank,
        "items": [row(tx) for tx in page.items],
        "next_cursor": page.next_cursor,
    }


__all__ = ["Json", "account", "feed", "health", "leaderboard", "optional", "overview", "volume"]
