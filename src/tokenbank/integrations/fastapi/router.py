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
from collections.abc import Mapping, Sequence

from fastapi import APIRouter, Request
from fastapi.params import Depends as DependsParam

from tokenbank.bank import TokenBank
from tokenbank.errors import ConfigurationError
from tokenbank.integrations.fastapi.access import Action, Authorize
from tokenbank.integrations.fastapi.account_routes import add_account_routes
from tokenbank.integrations.fastapi.body_limit import MAX_BODY_BYTES, body_limited
from tokenbank.integrations.fastapi.exchange_routes import add_exchange_route, check_exchange_banks
from tokenbank.integrations.fastapi.field_types import MAX_DECIMALS
from tokenbank.integrations.fastapi.hold_routes import add_hold_routes
from tokenbank.integrations.fastapi.lot_routes import add_lot_routes
from tokenbank.integrations.fastapi.read_routes import add_read_routes
from tokenbank.integrations.fastapi.route_support import COMMON_ERRORS, REPLAYED_HEADER, format_amount
from tokenbank.integrations.fastapi.schemas import request_bodies
from tokenbank.integrations.fastapi.sse import DEFAULT_KEEPALIVE
from tokenbank.integrations.fastapi.stake_routes import add_stake_routes
from tokenbank.integrations.fastapi.transfer_routes import add_reverse_route, add_transfer_routes


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
    staking: bool = False,
    lots: bool = False,
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
    default for the same reason. ``staking=True`` adds ``POST /stakes``, ``GET /stakes/{stake_id}`` and
    ``POST /stakes/{stake_id}/unstake`` (actions ``stake``, ``stake.read``, ``unstake``; see docs/staking.md): off by
    default, as a stake's body sets the reward the unstake mints. ``lots=True`` adds ``POST /grants``,
    ``POST /vestings`` and ``GET /accounts/{user_id}/lots`` (actions ``grant`` and ``lots.read``; see
    docs/lots.md): off by default, as a grant mints.

    Raises ConfigurationError without a guard or for a bad ``decimals`` / ``max_body_bytes``."""
    if authorize is None and not dependencies and not allow_anonymous:
        raise ConfigurationError(
            "create_router: every route, mint and transfer included, would be open to anyone who reaches the "
            "app; pass authorize=<hook>, dependencies=[Depends(<your authentication>)], or allow_anonymous=True "
            "(demos and tests only)"
        )
    if decimals is not None and (isinstance(decimals, bool) or not 0 <= decimals <= MAX_DECIMALS):
        raise ConfigurationError(f"create_router: decimals must be an int from 0 to {MAX_DECIMALS}")
    if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int) or max_body_bytes < 1:
        raise ConfigurationError("create_router: max_body_bytes must be a positive int")
    exchanges = None if exchange_banks is None else check_exchange_banks(exchange_banks)
    router = APIRouter(
        prefix=prefix, dependencies=list(dependencies or ()), tags=list(tags), responses=COMMON_ERRORS,
        route_class=body_limited(max_body_bytes),
    )  # fmt: skip
    writes = list(mutation_dependencies or ())
    bodies = request_bodies(decimals)

    async def allow(request: Request, action: Action, user_id: str | None) -> None:
        if authorize is not None:
            outcome = authorize(request, action.value, user_id)
            if inspect.isawaitable(outcome):
                await outcome

    # Registered in this order, which is the order of the OpenAPI paths.
    add_read_routes(router, allow, sse_keepalive=sse_keepalive)
    add_transfer_routes(router, allow, writes, bodies)
    add_hold_routes(router, allow, writes, bodies)
    add_reverse_route(router, allow, writes)
    if account_controls:
        add_account_routes(router, allow, writes, bodies.limits)
    if exchanges is not None:
        add_exchange_route(router, allow, writes, exchanges)
    if staking:
        add_stake_routes(router, allow, writes, decimals)
    if lots:
        add_lot_routes(router, allow, writes, decimals)
    return router


__all__ = ["MAX_BODY_BYTES", "REPLAYED_HEADER", "Action", "Authorize", "create_router", "format_amount"]
