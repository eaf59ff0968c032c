"""``create_router()``: the tokenbank REST API as a FastAPI ``APIRouter``, closed unless told otherwise.

Access control stays the application's, but a router always has some: ``authorize`` (a hook), ``dependencies``
(applied to every route) or an explicit ``allow_anonymous=True``; without one of them ``create_router`` raises
ConfigurationError. ``authorize(request, action, user_id)`` (sync or async) runs before every write and every read
of one account, with the account the action is for (see :class:`Action`); it refuses by raising, e.g.
``HTTPException(403)``. ``mutation_dependencies=`` apply to the write routes only (every POST, and the PUT of an
account's limits).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from decimal import Decimal
from enum import StrEnum
from http import HTTPStatus
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from fastapi.params import Depends as DependsParam
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.types import Message

import tokenbank.integrations.fastapi.schemas as api
from tokenbank.bank import TokenBank
from tokenbank.errors import ConfigurationError, HoldNotFoundError, TransactionNotFoundError
from tokenbank.health import check_health
from tokenbank.ids import MAX_ACCOUNT_ID_LENGTH, MAX_IDEMPOTENCY_KEY_LENGTH
from tokenbank.integrations.fastapi.errors import error_body, error_response, request_param
from tokenbank.integrations.fastapi.lifespan import get_token_bank
from tokenbank.integrations.fastapi.schemas import (
    CURSOR_PATTERN,
    ID_PATTERN,
    MAX_LOOKUP_ID_LENGTH,
    BatchBody,
    BurnBody,
    CaptureBody,
    FreezeBody,
    HoldBody,
    LimitsBody,
    MintBody,
    ReverseBody,
    SplitBody,
    TransferBody,
    VoidBody,
    amount_text,
    request_bodies,
)
from tokenbank.integrations.fastapi.sse import DEFAULT_KEEPALIVE, EventStreamResponse, balance_event_stream
from tokenbank.models import Hold, Transaction, TransactionType, TransferRequest

MAX_BODY_BYTES = 64 * 1024
"""Request bodies larger than this are refused with 413 (a batch of 1,000 transfers fits in about 120 KiB, so
big batches need ``max_body_bytes=`` raised on purpose)."""
REPLAYED_HEADER = "Idempotent-Replayed"
Authorize = Callable[[Request, str, str | None], Awaitable[None] | None]
"""``authorize(request, action, user_id)``: return to allow, raise (e.g. ``HTTPException(403)``) to refuse.
``user_id`` is the account the action is for (``None`` for token-wide reads); see :class:`Action`."""


class Action(StrEnum):
    """The ``action`` strings passed to ``authorize``, and the ``user_id`` passed with each.

    Reads of one account (``user_id``: that account): ``balance.read``, ``history.read``, ``rank.read``,
    ``events.subscribe``, ``account.read`` (its balances and controls). Writes (``user_id``: the account whose
    tokens move): ``transfer`` (the sender; also once per item of a batch, after one ``transfer.batch`` with
    ``None``; once for a split, ``POST /splits``), ``mint`` (the receiver), ``burn``, ``hold.create``,
    ``hold.capture`` and ``hold.void`` (the hold's payer), ``reverse`` (the receiver of the transfer being undone:
    its tokens go back). ``account.control`` (the account): a freeze, unfreeze, close or change of limits; an
    operator's action, so a hook that lets users act on their own account must refuse it (``request.url.path``
    says which change it is). ``exchange`` (the paying user) and then ``exchange.counterparty`` (the counterparty,
    whose tokens move too), for ``POST /exchanges`` (``create_router(exchange_banks=...)``).
    ``transaction.read``: the transaction's sender (its receiver for a mint).
    Token-wide (``None``): ``token.read``, ``leaderboard.read``, ``health.read``, ``metrics.read``.
    The hook sees everything else on ``request`` (headers, ``request.path_params``, ``await request.json()``).
    """

    TOKEN_READ = "token.read"  # noqa: S105 - an action name, not a password
    BALANCE_READ = "balance.read"
    HISTORY_READ = "history.read"
    RANK_READ = "rank.read"
    EVENTS_SUBSCRIBE = "events.subscribe"
    ACCOUNT_READ = "account.read"
    ACCOUNT_CONTROL = "account.control"
    TRANSFER = "transfer"
    TRANSFER_BATCH = "transfer.batch"
    EXCHANGE = "exchange"
    EXCHANGE_COUNTERPARTY = "exchange.counterparty"
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


Allow = Callable[[Request, Action, str | None], Awaitable[None]]
"""The router's own call of ``authorize`` (a no-op without one)."""


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": api.Error} for status in statuses}


def _json_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Error answers of a route whose success is not JSON (``model=`` would take the route's media type)."""
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {status: {"description": HTTPStatus(status).phrase, "content": content} for status in statuses}


_COMMON = _errors(401, 403, 500, 503)
# 400: a body that is not even text (FastAPI's own answer); 413: over max_body_bytes; 423: a frozen account.
_WRITE = _errors(400, 404, 409, 413, 422, 423)
_CONTROL = _errors(400, 409, 413, 422)
_REPLAYED_HEADERS = {
    REPLAYED_HEADER: {
        "description": "`true`: the same Idempotency-Key with the same request was applied before; this is its "
        "first result and nothing new was applied.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}
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
ObjectId = Annotated[str, Path(min_length=1, max_length=MAX_LOOKUP_ID_LENGTH, pattern=ID_PATTERN)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
        pattern=ID_PATTERN,
        description="Retry-safe key: the same key with the same request returns the first result (200 with "
        f"`{REPLAYED_HEADER}: true` instead of 201) and applies once; with another request it is a 409.",
    ),
]
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def format_amount(bank: TokenBank, amount: Decimal) -> str:
    """Display text of an amount for ``?format=1``: ``bank.formatter`` with its defaults ("1,234.50 GEMS")."""
    return bank.formatter.format(amount)


def create_router(
    *,
    authorize: Authorize | None = None,
    dependencies: Sequence[DependsParam] | None = None,
    allow_anonymous: bool = False,
    decimals: int | None = None,
    prefix: str = "",
    mutation_dependencies: Sequence[DependsParam] | None = None,
    tags: Sequence[str] = ("tokenbank",),
    sse_keepalive: float = DEFAULT_KEEPALIVE,
    max_body_bytes: int = MAX_BODY_BYTES,
    account_controls: bool = False,
    exchange_banks: Mapping[str, TokenBank] | None = None,
) -> APIRouter:
    """The tokenbank REST API. Needs the bank on ``app.state`` (see ``token_bank_lifespan``) and the app's
    ``install_error_handlers(app)`` for ``{code, message, param}`` error bodies.

    Give it a guard: ``authorize`` (called with every write and every read of one account), ``dependencies``
    (your authentication, on every route), or both. ``allow_anonymous=True`` serves it to anyone who can reach
    it, writes included: for demos, tests and loopback-only servers, never for a public one.
    ``decimals``: the token's decimals, so the OpenAPI schema's amount pattern allows exactly the amounts the
    ledger accepts (without it, amounts with too many fractional digits pass the schema and get a 422).
    ``max_body_bytes``: larger request bodies get 413. ``account_controls=True`` adds the operator routes under
    ``/accounts/{user_id}`` (read, freeze, unfreeze, close, limits; actions ``account.read`` and
    ``account.control``): off by default, so that a hook written before them, one that lets users act on their own
    account, never lets them unfreeze themselves or lift their own limits.
    ``exchange_banks={symbol: bank}`` adds ``POST /exchanges`` between the router's bank and these banks of other
    tokens on the same store (actions ``exchange`` and ``exchange.counterparty``; see docs/exchange.md): off by
    default for the same reason.

    Raises ConfigurationError without a guard or for a bad ``decimals`` / ``max_body_bytes``."""
    if authorize is None and not dependencies and not allow_anonymous:
        raise ConfigurationError(
            "create_router: every route, mint and transfer included, would be open to anyone who reaches the "
            "app; pass authorize=<hook>, dependencies=[Depends(<your authentication>)], or allow_anonymous=True "
            "(demos and tests only)"
        )
    if decimals is not None and (isinstance(decimals, bool) or not 0 <= decimals <= api.MAX_DECIMALS):
        raise ConfigurationError(f"create_router: decimals must be an int from 0 to {api.MAX_DECIMALS}")
    if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int) or max_body_bytes < 1:
        raise ConfigurationError("create_router: max_body_bytes must be a positive int")
    exchanges = None
    if exchange_banks is not None:
        # Imported here: the route module builds on this one's names.
        from tokenbank.integrations.fastapi.exchange_routes import add_exchange_route, check_exchange_banks

        exchanges = check_exchange_banks(exchange_banks)
    router = APIRouter(
        prefix=prefix, dependencies=list(dependencies or ()), tags=list(tags), responses=_COMMON,
        route_class=_body_limited(max_body_bytes),
    )  # fmt: skip
    writes = list(mutation_dependencies or ())
    bodies = request_bodies(decimals)

    async def allow(request: Request, action: Action, user_id: str | None) -> None:
        if authorize is not None:
            outcome = authorize(request, action.value, user_id)
            if inspect.isawaitable(outcome):
                await outcome

    # reads -------------------------------------------------------------------------------------------------
    @router.get("/token", response_model=api.TokenInfo, responses=_errors(409))
    async def get_token(request: Request, bank: Bank) -> api.TokenInfo:
        """Token settings with its total, circulating and maximum supply."""
        await allow(request, Action.TOKEN_READ, None)
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
        await allow(request, Action.BALANCE_READ, user_id)
        balance = await bank.get_balance(user_id)
        text = format_amount(bank, balance) if formatted else None
        return api.Balance(user_id=user_id, balance=amount_text(balance), formatted=text)

    @router.get("/accounts/{user_id}/transactions", response_model=api.TransactionPage, responses=_errors(422))
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

    @router.get("/accounts/{user_id}/rank", response_model=api.Rank, responses=_errors(422))
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

    @router.get("/transactions/{transaction_id}", response_model=api.Transaction, responses=_errors(404, 422))
    async def get_transaction(request: Request, bank: Bank, transaction_id: ObjectId) -> api.Transaction:
        """One transaction by id."""
        tx = await bank.transactions.get_transaction_by_id(_lookup(transaction_id, TransactionNotFoundError))
        await allow(request, Action.TRANSACTION_READ, tx.from_user_id or tx.to_user_id)
        return api.Transaction.of(tx)

    @router.get("/leaderboard", response_model=list[api.Holder], responses=_errors(422))
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

    # writes ------------------------------------------------------------------------------------------------
    @router.post(
        "/transfers", status_code=201, response_model=api.Transaction, dependencies=writes,
        responses={**_WRITE, **_replay_doc(api.Transaction)},
    )  # fmt: skip
    @_accepts(bodies.transfer)
    async def transfer(
        request: Request, response: Response, bank: Bank, body: TransferBody, idempotency_key: IdempotencyKey = None
    ) -> api.Transaction:
        """Move tokens between two accounts, atomically (201; 200 for a replayed Idempotency-Key)."""
        await allow(request, Action.TRANSFER, body.from_user_id)
        tx = await bank.transfer(
            body.from_user_id, body.to_user_id, body.amount, idempotency_key=idempotency_key,
            metadata=body.metadata, reason=body.reason,
        )  # fmt: skip
        return api.Transaction.of(_mark_replay(response, tx))

    @router.post(
        "/transfers/batch", response_model=api.BatchResult, dependencies=writes,
        responses={**_WRITE, 409: {"model": api.BatchAborted, "description": _ABORTED_DOC}},
    )  # fmt: skip
    @_accepts(bodies.batch)
    async def transfer_batch(request: Request, bank: Bank, body: BatchBody) -> api.BatchResult | JSONResponse:
        """Many transfers in one store call, each with its own result; ``atomic``: all or nothing (409 with every
        item's result when one fails)."""
        await allow(request, Action.TRANSFER_BATCH, None)
        for item in body.transfers:  # so that a guard written for single transfers covers batches too
            await allow(request, Action.TRANSFER, item.from_user_id)
        requests = [
            TransferRequest(t.from_user_id, t.to_user_id, t.amount, t.idempotency_key, t.metadata)
            for t in body.transfers
        ]
        outcome = await bank.transfer_many(requests, atomic=body.atomic)
        results = [
            api.TransferResult(
                ok=r.ok,
                transaction=None if r.transaction is None else api.Transaction.of(r.transaction),
                error=None if r.error is None else error_body(r.error),
            )
            for r in outcome
        ]
        if body.atomic and not all(r.ok for r in outcome):
            culprit = next(i for i, r in enumerate(outcome) if r.error is not None and r.error.code != "batch_aborted")
            error = outcome[culprit].error
            assert error is not None
            item_param = request_param(error)
            aborted = api.BatchAborted(
                code="batch_aborted",
                message=f"nothing applied: transfer {culprit} of the atomic batch failed ({error.code}: "
                f"{error.message})",
                param=None if item_param is None else f"transfers.{culprit}.{item_param}",
                results=results,
            )
            return JSONResponse(aborted.model_dump(mode="json"), status_code=409)
        return api.BatchResult(results=results)

    @router.post(
        "/splits", status_code=201, response_model=list[api.Transaction], dependencies=writes,
        responses={**_WRITE, **_replay_doc(list[api.Transaction])},
    )  # fmt: skip
    @_accepts(bodies.split)
    async def transfer_split(
        request: Request, response: Response, bank: Bank, body: SplitBody, idempotency_key: IdempotencyKey = None
    ) -> list[api.Transaction]:
        """Pay many receivers from one account by percentages and amounts, all or nothing: one transaction per
        paid leg, sharing ``metadata.split_id`` (201; 200 for a replayed Idempotency-Key). Rounding: see
        docs/splits.md."""
        await allow(request, Action.TRANSFER, body.from_user_id)
        txs = await bank.transfer_split(
            body.from_user_id, body.amount, [(leg.to_user_id, leg.share) for leg in body.legs],
            remainder_to=body.remainder_to, idempotency_key=idempotency_key, metadata=body.metadata,
            reason=body.reason,
        )  # fmt: skip
        if txs[0].replayed:
            _mark_replay(response, txs[0])
        return [api.Transaction.of(tx) for tx in txs]

    @router.post(
        "/mint", status_code=201, response_model=api.Transaction, dependencies=writes,
        responses={**_WRITE, **_replay_doc(api.Transaction)},
    )  # fmt: skip
    @_accepts(bodies.mint)
    async def mint(
        request: Request, response: Response, bank: Bank, body: MintBody, idempotency_key: IdempotencyKey = None
    ) -> api.Transaction:
        """Create new tokens in an account (audited; refused past the maximum supply)."""
        await allow(request, Action.MINT, body.to_user_id)
        tx = await bank.mint(
            body.to_user_id, body.amount, reason=body.reason, idempotency_key=idempotency_key, metadata=body.metadata
        )
        return api.Transaction.of(_mark_replay(response, tx))

    @router.post(
        "/burn", status_code=201, response_model=api.Transaction, dependencies=writes,
        responses={**_WRITE, **_replay_doc(api.Transaction)},
    )  # fmt: skip
    @_accepts(bodies.burn)
    async def burn(
        request: Request, response: Response, bank: Bank, body: BurnBody, idempotency_key: IdempotencyKey = None
    ) -> api.Transaction:
        """Destroy tokens from an account (audited)."""
        await allow(request, Action.BURN, body.user_id)
        tx = await bank.burn(
            body.user_id, body.amount, reason=body.reason, idempotency_key=idempotency_key, metadata=body.metadata
        )
        return api.Transaction.of(_mark_replay(response, tx))

    @router.post(
        "/holds", status_code=201, response_model=api.Hold, dependencies=writes,
        responses={**_WRITE, **_replay_doc(api.Hold)},
    )  # fmt: skip
    @_accepts(bodies.hold)
    async def create_hold(
        request: Request, response: Response, bank: Bank, body: HoldBody, idempotency_key: IdempotencyKey = None
    ) -> api.Hold:
        """Reserve funds for a later capture or void; expired holds are voided automatically."""
        await allow(request, Action.HOLD_CREATE, body.from_user_id)
        hold = await bank.hold(
            body.from_user_id, body.to_user_id, body.amount, expires_in=body.expires_in_seconds,
            idempotency_key=idempotency_key, metadata=body.metadata, reason=body.reason,
        )  # fmt: skip
        return api.Hold.of(_mark_replay(response, hold))

    @router.post("/holds/{hold_id}/capture", response_model=api.Hold, responses=_WRITE, dependencies=writes)
    @_accepts(bodies.capture, optional=True)
    async def capture_hold(
        request: Request, bank: Bank, hold_id: ObjectId, body: CaptureBody | None = None
    ) -> api.Hold:
        """Pay out a pending hold, all or part (the rest goes back to the sender)."""
        held = await bank.get_hold(_lookup(hold_id, HoldNotFoundError))
        await allow(request, Action.HOLD_CAPTURE, held.from_user_id)
        body = body or CaptureBody()
        return api.Hold.of(await bank.capture(hold_id, body.amount, reason=body.reason))

    @router.post("/holds/{hold_id}/void", response_model=api.Hold, responses=_WRITE, dependencies=writes)
    async def void_hold(request: Request, bank: Bank, hold_id: ObjectId, body: VoidBody | None = None) -> api.Hold:
        """Release a pending hold back to the sender."""
        held = await bank.get_hold(_lookup(hold_id, HoldNotFoundError))
        await allow(request, Action.HOLD_VOID, held.from_user_id)
        return api.Hold.of(await bank.void(hold_id, reason=None if body is None else body.reason))

    @router.post(
        "/transactions/{transaction_id}/reverse", status_code=201, response_model=api.Transaction,
        responses={**_WRITE, **_replay_doc(api.Transaction)}, dependencies=writes,
    )  # fmt: skip
    async def reverse(
        request: Request,
        response: Response,
        bank: Bank,
        transaction_id: ObjectId,
        body: ReverseBody,
        idempotency_key: IdempotencyKey = None,
    ) -> api.Transaction:
        """Undo a transfer with a correcting transaction (at most once; history is never edited)."""
        original = await bank.transactions.get_transaction_by_id(_lookup(transaction_id, TransactionNotFoundError))
        await allow(request, Action.REVERSE, original.to_user_id or original.from_user_id)
        tx = await bank.reverse(
            transaction_id, reason=body.reason, idempotency_key=idempotency_key, metadata=body.metadata
        )
        return api.Transaction.of(_mark_replay(response, tx))

    if account_controls:
        _add_account_routes(router, allow, writes, bodies.limits)
    if exchanges is not None:
        add_exchange_route(router, allow, writes, exchanges)
    return router


def _add_account_routes(router: APIRouter, allow: Allow, writes: list[DependsParam], limits: type[LimitsBody]) -> None:
    """The operator routes of ``create_router(account_controls=True)``: an account's controls."""

    @router.get("/accounts/{user_id}", response_model=api.Account, responses=_errors(409, 422))
    async def get_account(request: Request, bank: Bank, user_id: UserId) -> api.Account:
        """Balances and controls: the freeze in force, closed, maximum balance, spend limit and what its window
        has spent."""
        await allow(request, Action.ACCOUNT_READ, user_id)
        return api.Account.of(await bank.get_account(user_id))

    @router.post("/accounts/{user_id}/freeze", response_model=api.Account, responses=_CONTROL, dependencies=writes)
    async def freeze(request: Request, bank: Bank, user_id: UserId, body: FreezeBody) -> api.Account:
        """Stop the account's debits (default), credits or both, replacing any freeze, until ``until`` or an
        unfreeze; writes it would make then answer 423 ``account_frozen``. Voids still return held funds."""
        await allow(request, Action.ACCOUNT_CONTROL, user_id)
        info = await bank.freeze(
            user_id, debits=body.debits, credits=body.credits, reason=body.reason, until=body.until
        )
        return api.Account.of(info)

    @router.post("/accounts/{user_id}/unfreeze", response_model=api.Account, responses=_CONTROL, dependencies=writes)
    async def unfreeze(request: Request, bank: Bank, user_id: UserId) -> api.Account:
        """End the account's freeze (nothing happens without one)."""
        await allow(request, Action.ACCOUNT_CONTROL, user_id)
        return api.Account.of(await bank.unfreeze(user_id))

    @router.post("/accounts/{user_id}/close", response_model=api.Account, responses=_CONTROL, dependencies=writes)
    async def close_account(request: Request, bank: Bank, user_id: UserId) -> api.Account:
        """Close an account that holds nothing, for good (409 ``transaction_state`` while it holds funds); every
        later write to or from it answers 409 ``account_closed``."""
        await allow(request, Action.ACCOUNT_CONTROL, user_id)
        return api.Account.of(await bank.close_account(user_id))

    @router.put("/accounts/{user_id}/limits", response_model=api.Account, responses=_CONTROL, dependencies=writes)
    @_accepts(limits)
    async def set_limits(request: Request, bank: Bank, user_id: UserId, body: LimitsBody) -> api.Account:
        """Replace the account's limits (a limit left out: none); writes that would break one answer 409
        ``limit_exceeded`` (a debit below the overdraft: 409 ``insufficient_balance``; an overdraft below what
        the account owes: 409 ``transaction_state``)."""
        await allow(request, Action.ACCOUNT_CONTROL, user_id)
        window = body.spend_per_window
        info = await bank.set_limits(
            user_id, max_balance=body.max_balance,
            spend_per_window=None if window is None else (window.amount, window.seconds), overdraft=body.overdraft,
        )  # fmt: skip
        return api.Account.of(info)


_ABORTED_DOC = (
    "Atomic batch aborted, nothing applied: `{code: batch_aborted, message, results}` with every item's result "
    "(the failing one with its own error)."
)


def _replay_doc(model: type[Any]) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "model": model,
            "description": "Replayed: an earlier request with the same Idempotency-Key was applied; this is its "
            "result and nothing new was applied.",
            "headers": _REPLAYED_HEADERS,
        }
    }


def _mark_replay(response: Response, result: Transaction | Hold) -> Any:
    """A first write answers 201; a replayed one 200 with ``Idempotent-Replayed: true``."""
    if result.replayed:
        response.status_code = 200
        response.headers[REPLAYED_HEADER] = "true"
    return result


def _lookup(value: str, missing: type[TransactionNotFoundError | HoldNotFoundError]) -> str:
    """A transaction or hold id from a path: one the schema allows but that cannot exist (not printable) is
    simply not found."""
    if not value.isprintable():
        raise missing(f"{missing.__name__.removesuffix('NotFoundError').lower()} not found")
    return value


def _accepts(model: type[Any], *, optional: bool = False) -> Callable[[Endpoint], Endpoint]:
    """Validate the endpoint's ``body`` with ``model``, built at router construction for the token's decimals,
    instead of its static annotation (the base class, which is what type checkers see)."""

    def bind(endpoint: Endpoint) -> Endpoint:
        signature = inspect.signature(endpoint, eval_str=True)
        annotation = model | None if optional else model
        parameters = [
            p.replace(annotation=annotation) if p.name == "body" else p for p in signature.parameters.values()
        ]
        setattr(endpoint, "__signature__", signature.replace(parameters=parameters))  # noqa: B010 - not in typeshed
        return endpoint

    return bind


class _BodyTooLarge(HTTPException):
    pass


def _body_limited(limit: int) -> type[APIRoute]:
    """A route class answering 413 ``{code, message, param}`` to a body over ``limit`` bytes: at once by its
    Content-Length, or as soon as a streamed body without one (chunked) goes past the limit."""

    def too_large() -> JSONResponse:
        return error_response(413, "request_too_large", f"the request body is larger than {limit} bytes")

    class BodyLimitedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def limited(request: Request) -> Response:
                declared = request.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    return too_large()
                received = 0
                receive = request.receive

                async def counted() -> Message:
                    nonlocal received
                    message = await receive()
                    if message["type"] == "http.request":
                        received += len(message.get("body", b""))
                        if received > limit:
                            raise _BodyTooLarge(413)
                    return message

                try:
                    return await handler(Request(request.scope, counted))
                except _BodyTooLarge:
                    return too_large()

            return limited

    return BodyLimitedRoute


__all__ = ["MAX_BODY_BYTES", "REPLAYED_HEADER", "Action", "Authorize", "create_router", "format_amount"]
