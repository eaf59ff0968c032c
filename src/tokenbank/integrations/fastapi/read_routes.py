"""The read routes: the token, one account's balance, history, rank and events, a transaction, the leaderboard,
health and metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

import tokenbank.integrations.fastapi.responses as api
from tokenbank.errors import TransactionNotFoundError
from tokenbank.health import check_health
from tokenbank.integrations.fastapi.access import Action, Allow
from tokenbank.integrations.fastapi.field_types import CURSOR_PATTERN, amount_text
from tokenbank.integrations.fastapi.route_support import (
    Bank,
    ObjectId,
    UserId,
    error_responses,
    format_amount,
    json_error_responses,
    lookup_id,
)
from tokenbank.integrations.fastapi.sse import EventStreamResponse, balance_event_stream
from tokenbank.models import TransactionType

_EVENTS_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Balance updates as server-sent events (`event: balance`, JSON `data`), "
        "with keep-alive comments.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
    **json_error_responses(401, 403, 409, 422, 500, 503),
}
_METRICS_DOC: dict[int | str, dict[str, Any]] = {
    200: {"description": "Prometheus text format.", "content": {"text/plain": {"schema": {"type": "string"}}}},
    **json_error_responses(401, 403, 500, 503),
}


def add_read_routes(router: APIRouter, allow: Allow, *, sse_keepalive: float) -> None:
    """Add the read routes to ``router`` (``allow`` is the router's own call of ``authorize``)."""

    @router.get("/token", response_model=api.TokenInfo, responses=error_responses(409))
    async def get_token(request: Request, bank: Bank) -> api.TokenInfo:
        """Token settings with its total, circulating and maximum supply."""
        await allow(request, Action.TOKEN_READ, None)
        info = await bank.get_token_info()
        return api.TokenInfo.of(info, await bank.get_circulating_supply())

    @router.get(
        "/accounts/{user_id}/balance", response_model=api.Balance, response_model_exclude_none=True,
        responses=error_responses(422),
    )  # fmt: skip
    async def get_balance(
        request: Request,
        bank: Bank,
        user_id: UserId,
        formatted: Annotated[bool, Query(alias="format", description="1: add `formatted` display text")] = False,
    ) -> api.Balance:
        """Spendable balance (held funds excluded)."""
        await allow(request, Action.BALANCE_READ, user_id)
        balance = await bank.get_balance(user_id)
        text = format_amount(bank, balance) if formatted else None
        return api.Balance(user_id=user_id, balance=amount_text(balance), formatted=text)

    @router.get("/accounts/{user_id}/transactions", response_model=api.TransactionPage, responses=error_responses(422))
    async def get_history(
        request: Request,
        bank: Bank,
        user_id: UserId,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        cursor: Annotated[
            str | None, Query(pattern=CURSOR_PATTERN, description="The `next_cursor` of the previous page.")
        ] = None,
        types: Annotated[
            list[TransactionType] | None, Query(alias="type", description="Only these types (repeatable).")
        ] = None,
    ) -> api.TransactionPage:
        """The account's transactions, newest first; follow ``next_cursor`` for older pages."""
        await allow(request, Action.HISTORY_READ, user_id)
        page = await bank.transactions.get_transaction_history(user_id, limit=limit, cursor=cursor, types=types)
        return api.TransactionPage(items=[api.Transaction.of(tx) for tx in page.items], next_cursor=page.next_cursor)

    @router.get("/accounts/{user_id}/rank", response_model=api.Rank, responses=error_responses(422))
    async def get_rank(request: Request, bank: Bank, user_id: UserId) -> api.Rank:
        """Leaderboard position (null for excluded or empty accounts) and balance."""
        await allow(request, Action.RANK_READ, user_id)
        rank = await bank.get_rank(user_id)
        return api.Rank(user_id=user_id, rank=rank, balance=amount_text(await bank.get_balance(user_id)))

    @router.get(
        "/accounts/{user_id}/events", status_code=200, response_class=EventStreamResponse, responses=_EVENTS_DOC
    )
    async def stream_events(request: Request, bank: Bank, user_id: UserId) -> EventStreamResponse:
        """Server-sent events: one ``balance`` event per committed change of the account."""
        await allow(request, Action.EVENTS_SUBSCRIBE, user_id)
        return await balance_event_stream(bank, user_id, keepalive=sse_keepalive)

    @router.get("/transactions/{transaction_id}", response_model=api.Transaction, responses=error_responses(404, 422))
    async def get_transaction(request: Request, bank: Bank, transaction_id: ObjectId) -> api.Transaction:
        """One transaction by id."""
        tx = await bank.transactions.get_transaction_by_id(lookup_id(transaction_id, TransactionNotFoundError))
        await allow(request, Action.TRANSACTION_READ, tx.from_user_id or tx.to_user_id)
        return api.Transaction.of(tx)

    @router.get("/leaderboard", response_model=list[api.Holder], responses=error_responses(422))
    async def get_leaderboard(
        request: Request,
        bank: Bank,
        limit: Annotated[int, Query(ge=1, le=1000)] = 10,
        offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    ) -> list[api.Holder]:
        """Highest balances first (the treasury and other excluded accounts left out)."""
        await allow(request, Action.LEADERBOARD_READ, None)
        return [api.Holder.of(holder) for holder in await bank.get_top_holders(limit, offset)]

    @router.get("/health", response_model=api.Health, responses={503: {"model": api.Health}})
    async def get_health(request: Request, bank: Bank) -> JSONResponse:
        """Store reachable, token initialized, store-specific checks: 200 when ok or degraded, 503 when down."""
        await allow(request, Action.HEALTH_READ, None)
        report = await check_health(bank)
        return JSONResponse(api.Health.of(report).model_dump(mode="json"), status_code=200 if report.ok else 503)

    @router.get("/metrics", response_class=Response, responses=_METRICS_DOC)
    async def get_metrics(request: Request, bank: Bank) -> Response:
        """Prometheus metrics of this bank."""
        await allow(request, Action.METRICS_READ, None)
        metrics = bank.metrics
        return Response(await metrics.scrape(), media_type=metrics.content_type)
