"""``create_router()``: the REST contract of SPEC §7 as a FastAPI ``APIRouter``.

Access control stays the application's: ``dependencies=`` apply to every route, ``mutation_dependencies=`` to
the POST routes only, and ``authorize(request, action, accounts)`` (sync or async) runs before each action with
the accounts it touches; it refuses by raising, e.g. ``HTTPException(403)``. ``accounts`` lists the debited
account first: ``[from, to]`` for transfers, holds and their capture/void, ``[to]`` for a mint, ``[user]`` for a
burn and for account reads, ``[from, to]`` of the original transfer for a reversal and for reading a transaction,
``[]`` for token, leaderboard, health and metrics. A batch is authorized as ``transfer.batch`` with every distinct
account, then item by item as ``transfer`` (so a guard written for single transfers covers batches).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from enum import StrEnum
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.params import Depends as DependsParam
from fastapi.responses import JSONResponse, Response

import tokenbank.integrations.fastapi.schemas as api
from tokenbank.bank import TokenBank
from tokenbank.health import check_health
from tokenbank.ids import MAX_ACCOUNT_ID_LENGTH, MAX_IDEMPOTENCY_KEY_LENGTH
from tokenbank.integrations.fastapi.lifespan import get_token_bank
from tokenbank.integrations.fastapi.schemas import (
    ID_PATTERN,
    BatchBody,
    BurnBody,
    CaptureBody,
    HoldBody,
    MintBody,
    ReverseBody,
    TransferBody,
    VoidBody,
    amount_text,
)
from tokenbank.integrations.fastapi.sse import DEFAULT_KEEPALIVE, EventStreamResponse, balance_event_stream
from tokenbank.models import TransactionType, TransferRequest

Authorize = Callable[[Request, str, list[str]], Awaitable[None] | None]
"""``authorize(request, action, accounts)``: return to allow, raise (e.g. ``HTTPException(403)``) to refuse."""


class Action(StrEnum):
    """The ``action`` strings passed to ``authorize``."""

    TOKEN_READ = "token.read"  # noqa: S105 - an action name, not a password
    BALANCE_READ = "balance.read"
    HISTORY_READ = "history.read"
    RANK_READ = "rank.read"
    EVENTS_SUBSCRIBE = "events.subscribe"
    TRANSFER = "transfer"
    TRANSFER_BATCH = "transfer.batch"
    MINT = "mint"
    BURN = "burn"
    HOLD_CREATE = "hold.create"
    HOLD_CAPTURE = "hold.capture"
    HOLD_VOID = "hold.void"
    REVERSE = "reverse"
    TRANSACTION_READ = "transaction.read"
    LEADERBOARD_READ = "leaderboard.read"
    HEALTH_READ = "health.read"
    METRICS_READ = "metrics.read"


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": api.Error} for status in statuses}


def _json_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Error answers of a route whose success is not JSON (``model=`` would take the route's media type)."""
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {status: {"description": HTTPStatus(status).phrase, "content": content} for status in statuses}


_COMMON = _errors(401, 403, 500, 503)
_WRITE = _errors(400, 404, 409, 422)  # 400: a body that is not even text (FastAPI's own answer)
_EVENTS_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Balance updates as server-sent events (`event: balance`, JSON `data`), "
        "with keep-alive comments.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
    **_json_errors(401, 403, 409, 422, 500, 503),
}
_METRICS_DOC: dict[int | str, dict[str, Any]] = {
    200: {"description": "Prometheus text format.", "content": {"text/plain": {"schema": {"type": "string"}}}},
    **_json_errors(401, 403, 500, 503),
}

Bank = Annotated[TokenBank, Depends(get_token_bank)]
UserId = Annotated[str, Path(min_length=1, max_length=MAX_ACCOUNT_ID_LENGTH, pattern=ID_PATTERN)]
ObjectId = Annotated[str, Path(min_length=1, max_length=128, pattern=ID_PATTERN)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
        description="Retry-safe key: the same key with the same request returns the first result.",
    ),
]


def format_amount(bank: TokenBank, amount: Decimal) -> str:
    """Display text of an amount for ``?format=1``: ``bank.formatter`` with its defaults ("1,234.50 GEMS")."""
    return bank.formatter.format(amount)


def create_router(
    *,
    dependencies: Sequence[DependsParam] | None = None,
    authorize: Authorize | None = None,
    prefix: str = "",
    mutation_dependencies: Sequence[DependsParam] | None = None,
    tags: Sequence[str] = ("tokenbank",),
    sse_keepalive: float = DEFAULT_KEEPALIVE,
) -> APIRouter:
    """The tokenbank REST API. Needs the bank on ``app.state`` (see ``token_bank_lifespan``) and the app's
    ``install_error_handlers(app)`` for ``{code, message}`` error bodies."""
    router = APIRouter(prefix=prefix, dependencies=list(dependencies or ()), tags=list(tags), responses=_COMMON)
    writes = list(mutation_dependencies or ())

    async def allow(request: Request, action: Action, accounts: Sequence[str | None]) -> None:
        if authorize is not None:
            outcome = authorize(request, action.value, list(dict.fromkeys(a for a in accounts if a is not None)))
            if inspect.isawaitable(outcome):
                await outcome

    # reads -------------------------------------------------------------------------------------------------
    @router.get("/token", response_model=api.TokenInfo, responses=_errors(409))
    async def get_token(request: Request, bank: Bank) -> api.TokenInfo:
        """Token settings with its total, circulating and maximum supply."""
        await allow(request, Action.TOKEN_READ, [])
        info = await bank.get_token_info()
        return api.TokenInfo.of(info, await bank.get_circulating_supply())

    @router.get(
        "/accounts/{user_id}/balance", response_model=api.Balance, response_model_exclude_none=True,
        responses=_errors(422),
    )  # fmt: skip
    async def get_balance(
        request: Request,
        bank: Bank,
        user_id: UserId,
        formatted: Annotated[bool, Query(alias="format", description="1: add `formatted` display text")] = False,
    ) -> api.Balance:
        """Spendable balance (held funds excluded)."""
        await allow(request, Action.BALANCE_READ, [user_id])
        balance = await bank.get_balance(user_id)
        text = format_amount(bank, balance) if formatted else None
        return api.Balance(user_id=user_id, balance=amount_text(balance), formatted=text)

    @router.get("/accounts/{user_id}/transactions", response_model=api.TransactionPage, responses=_errors(422))
    async def get_history(
        request: Request,
        bank: Bank,
        user_id: UserId,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        cursor: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
        types: Annotated[
            list[TransactionType] | None, Query(alias="type", description="Only these types (repeatable).")
        ] = None,
    ) -> api.TransactionPage:
        """The account's transactions, newest first; follow ``next_cursor`` for older pages."""
        await allow(request, Action.HISTORY_READ, [user_id])
        page = await bank.transactions.get_transaction_history(user_id, limit=limit, cursor=cursor, types=types)
        return api.TransactionPage(items=[api.Transaction.of(tx) for tx in page.items], next_cursor=page.next_cursor)

    @router.get("/accounts/{user_id}/rank", response_model=api.Rank, responses=_errors(422))
    async def get_rank(request: Request, bank: Bank, user_id: UserId) -> api.Rank:
        """Leaderboard position (null for excluded or empty accounts) and balance."""
        await allow(request, Action.RANK_READ, [user_id])
        rank = await bank.get_rank(user_id)
        return api.Rank(user_id=user_id, rank=rank, balance=amount_text(await bank.get_balance(user_id)))

    @router.get(
        "/accounts/{user_id}/events", status_code=200, response_class=EventStreamResponse, responses=_EVENTS_DOC
    )
    async def stream_events(request: Request, bank: Bank, user_id: UserId) -> EventStreamResponse:
        """Server-sent events: one ``balance`` event per committed change of the account."""
        await allow(request, Action.EVENTS_SUBSCRIBE, [user_id])
        return await balance_event_stream(bank, user_id, keepalive=sse_keepalive)

    @router.get("/transactions/{transaction_id}", response_model=api.Transaction, responses=_errors(404, 422))
    async def get_transaction(request: Request, bank: Bank, transaction_id: ObjectId) -> api.Transaction:
        """One transaction by id."""
        tx = await bank.transactions.get_transaction_by_id(transaction_id)
        await allow(request, Action.TRANSACTION_READ, [tx.from_user_id, tx.to_user_id])
        return api.Transaction.of(tx)

    @router.get("/leaderboard", response_model=list[api.Holder], responses=_errors(422))
    async def get_leaderboard(
        request: Request,
        bank: Bank,
        limit: Annotated[int, Query(ge=1, le=1000)] = 10,
        offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    ) -> list[api.Holder]:
        """Highest balances first (the treasury and other excluded accounts left out)."""
        await allow(request, Action.LEADERBOARD_READ, [])
        return [api.Holder.of(holder) for holder in await bank.get_top_holders(limit, offset)]

    @router.get("/health", response_model=api.Health, responses={503: {"model": api.Health}})
    async def get_health(request: Request, bank: Bank) -> JSONResponse:
        """Store reachable, token initialized, store-specific checks: 200 when ok or degraded, 503 when down."""
        await allow(request, Action.HEALTH_READ, [])
        report = await check_health(bank)
        return JSONResponse(api.Health.of(report).model_dump(mode="json"), status_code=200 if report.ok else 503)

    @router.get("/metrics", response_class=Response, responses=_METRICS_DOC)
    async def get_metrics(request: Request, bank: Bank) -> Response:
        """Prometheus metrics of this bank."""
        await allow(request, Action.METRICS_READ, [])
        metrics = bank.metrics
        return Response(await metrics.scrape(), media_type=metrics.content_type)

    # writes ------------------------------------------------------------------------------------------------
    @router.post("/transfers", status_code=201, response_model=api.Transaction, responses=_WRITE, dependencies=writes)
    async def transfer(
        request: Request, bank: Bank, body: TransferBody, idempotency_key: IdempotencyKey = None
    ) -> api.Transaction:
        """Move tokens between two accounts, atomically."""
        await allow(request, Action.TRANSFER, [body.from_user_id, body.to_user_id])
        tx = await bank.transfer(
            body.from_user_id, body.to_user_id, body.amount, idempotency_key=idempotency_key,
            metadata=body.metadata, reason=body.reason,
        )  # fmt: skip
        return api.Transaction.of(tx)

    @router.post("/transfers/batch", response_model=api.BatchResult, responses=_WRITE, dependencies=writes)
    async def transfer_batch(request: Request, bank: Bank, body: BatchBody) -> api.BatchResult:
        """Many transfers in one store call, each with its own result; ``atomic``: all or nothing."""
        await allow(request, Action.TRANSFER_BATCH, [a for t in body.transfers for a in (t.from_user_id, t.to_user_id)])
        for item in body.transfers:  # so that a guard written for single transfers covers batches too
            await allow(request, Action.TRANSFER, [item.from_user_id, item.to_user_id])
        requests = [
            TransferRequest(t.from_user_id, t.to_user_id, t.amount, t.idempotency_key, t.metadata)
            for t in body.transfers
        ]
        results = await bank.transfer_many(requests, atomic=body.atomic)
        return api.BatchResult(
            results=[
                api.TransferResult(
                    ok=r.ok,
                    transaction=None if r.transaction is None else api.Transaction.of(r.transaction),
                    error=None if r.error is None else api.Error(code=r.error.code, message=r.error.message),
                )
                for r in results
            ]
        )

    @router.post("/mint", status_code=201, response_model=api.Transaction, responses=_WRITE, dependencies=writes)
    async def mint(
        request: Request, bank: Bank, body: MintBody, idempotency_key: IdempotencyKey = None
    ) -> api.Transaction:
        """Create new tokens in an account (audited; refused past the maximum supply)."""
        await allow(request, Action.MINT, [body.to_user_id])
        tx = await bank.mint(
            body.to_user_id, body.amount, reason=body.reason, idempotency_key=idempotency_key, metadata=body.metadata
        )
        return api.Transaction.of(tx)

    @router.post("/burn", status_code=201, response_model=api.Transaction, responses=_WRITE, dependencies=writes)
    async def burn(
        request: Request, bank: Bank, body: BurnBody, idempotency_key: IdempotencyKey = None
    ) -> api.Transaction:
        """Destroy tokens from an account (audited)."""
        await allow(request, Action.BURN, [body.user_id])
        tx = await bank.burn(
            body.user_id, body.amount, reason=body.reason, idempotency_key=idempotency_key, metadata=body.metadata
        )
        return api.Transaction.of(tx)

    @router.post("/holds", status_code=201, response_model=api.Hold, responses=_WRITE, dependencies=writes)
    async def create_hold(
        request: Request, bank: Bank, body: HoldBody, idempotency_key: IdempotencyKey = None
    ) -> api.Hold:
        """Reserve funds for a later capture or void; expired holds are voided automatically."""
        await allow(request, Action.HOLD_CREATE, [body.from_user_id, body.to_user_id])
        hold = await bank.hold(
            body.from_user_id, body.to_user_id, body.amount, expires_in=body.expires_in_seconds,
            idempotency_key=idempotency_key, metadata=body.metadata, reason=body.reason,
        )  # fmt: skip
        return api.Hold.of(hold)

    @router.post("/holds/{hold_id}/capture", response_model=api.Hold, responses=_WRITE, dependencies=writes)
    async def capture_hold(
        request: Request, bank: Bank, hold_id: ObjectId, body: CaptureBody | None = None
    ) -> api.Hold:
        """Pay out a pending hold, all or part (the rest goes back to the sender)."""
        held = await bank.get_hold(hold_id)
        await allow(request, Action.HOLD_CAPTURE, [held.from_user_id, held.to_user_id])
        body = body or CaptureBody()
        return api.Hold.of(await bank.capture(hold_id, body.amount, reason=body.reason))

    @router.post("/holds/{hold_id}/void", response_model=api.Hold, responses=_WRITE, dependencies=writes)
    async def void_hold(request: Request, bank: Bank, hold_id: ObjectId, body: VoidBody | None = None) -> api.Hold:
        """Release a pending hold back to the sender."""
        held = await bank.get_hold(hold_id)
        await allow(request, Action.HOLD_VOID, [held.from_user_id, held.to_user_id])
        return api.Hold.of(await bank.void(hold_id, reason=None if body is None else body.reason))

    @router.post(
        "/transactions/{transaction_id}/reverse", status_code=201, response_model=api.Transaction, responses=_WRITE,
        dependencies=writes,
    )  # fmt: skip
    async def reverse(
        request: Request,
        bank: Bank,
        transaction_id: ObjectId,
        body: ReverseBody,
        idempotency_key: IdempotencyKey = None,
    ) -> api.Transaction:
        """Undo a transfer with a correcting transaction (at most once; history is never edited)."""
        original = await bank.transactions.get_transaction_by_id(transaction_id)
        await allow(request, Action.REVERSE, [original.from_user_id, original.to_user_id])
        tx = await bank.reverse(
            transaction_id, reason=body.reason, idempotency_key=idempotency_key, metadata=body.metadata
        )
        return api.Transaction.of(tx)

    return router


__all__ = ["Action", "Authorize", "create_router", "format_amount"]
