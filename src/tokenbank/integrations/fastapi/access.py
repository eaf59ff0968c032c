"""Who may do what: the ``authorize`` hook's type and the :class:`Action` names it is called with."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum

from fastapi import Request

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
    whose tokens move too), for ``POST /exchanges`` (``create_router(exchange_banks=...)``). ``stake`` (the
    staker), ``stake.read`` and ``unstake`` (the stake's owner), for ``create_router(staking=True)``; the body of a
    stake sets its reward, minted at the unstake, so ``stake`` is an operator's action too.
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
    STAKE = "stake"
    STAKE_READ = "stake.read"
    UNSTAKE = "unstake"
    GRANT = "grant"
    LOTS_READ = "lots.read"
    TRANSACTION_READ = "transaction.read"
    LEADERBOARD_READ = "leaderboard.read"
    HEALTH_READ = "health.read"
    METRICS_READ = "metrics.read"


Allow = Callable[[Request, Action, str | None], Awaitable[None]]
"""The router's own call of ``authorize`` (a no-op without one)."""

__all__ = ["Action", "Allow", "Authorize"]
