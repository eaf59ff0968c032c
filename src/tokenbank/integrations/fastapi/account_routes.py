"""The operator routes of ``create_router(account_controls=True)``: read an account, freeze, unfreeze, close it
and set its limits (actions ``account.read`` and ``account.control``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.params import Depends as DependsParam

import tokenbank.integrations.fastapi.responses as api
from tokenbank.integrations.fastapi.access import Action, Allow
from tokenbank.integrations.fastapi.route_support import (
    CONTROL_ERRORS,
    Bank,
    UserId,
    accepts,
    error_responses,
)
from tokenbank.integrations.fastapi.schemas import FreezeBody, LimitsBody


def add_account_routes(router: APIRouter, allow: Allow, writes: list[DependsParam], limits: type[LimitsBody]) -> None:
    """The operator routes of ``create_router(account_controls=True)``: an account's controls."""

    @router.get("/accounts/{user_id}", response_model=api.Account, responses=error_responses(409, 422))
    async def get_account(request: Request, bank: Bank, user_id: UserId) -> api.Account:
        """Balances and controls: the freeze in force, closed, maximum balance, spend limit and what its window
        has spent."""
        await allow(request, Action.ACCOUNT_READ, user_id)
        return api.Account.of(await bank.get_account(user_id))

    @router.post(
        "/accounts/{user_id}/freeze", response_model=api.Account, responses=CONTROL_ERRORS, dependencies=writes
    )
    async def freeze(request: Request, bank: Bank, user_id: UserId, body: FreezeBody) -> api.Account:
        """Stop the account's debits (default), credits or both, replacing any freeze, until ``until`` or an
        unfreeze; writes it would make then answer 423 ``account_frozen``. Voids still return held funds."""
        await allow(request, Action.ACCOUNT_CONTROL, user_id)
        info = await bank.freeze(
            user_id, debits=body.debits, credits=body.credits, reason=body.reason, until=body.until
        )
        return api.Account.of(info)

    @router.post(
        "/accounts/{user_id}/unfreeze", response_model=api.Account, responses=CONTROL_ERRORS, dependencies=writes
    )
    async def unfreeze(request: Request, bank: Bank, user_id: UserId) -> api.Account:
        """End the account's freeze (nothing happens without one)."""
        await allow(request, Action.ACCOUNT_CONTROL, user_id)
        return api.Account.of(await bank.unfreeze(user_id))

    @router.post("/accounts/{user_id}/close", response_model=api.Account, responses=CONTROL_ERRORS, dependencies=writes)
    async def close_account(request: Request, bank: Bank, user_id: UserId) -> api.Account:
        """Close an account that holds nothing, for good (409 ``transaction_state`` while it holds funds); every
        later write to or from it answers 409 ``account_closed``."""
        await allow(request, Action.ACCOUNT_CONTROL, user_id)
        return api.Account.of(await bank.close_account(user_id))

    @router.put("/accounts/{user_id}/limits", response_model=api.Account, responses=CONTROL_ERRORS, dependencies=writes)
    @accepts(limits)
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
