"""``POST /exchanges``: the route ``create_router(exchange_banks={symbol: bank})`` adds (off by default).

The router serves one bank (``app.state``); an exchange needs the bank of the other token too, which the
application hands over at construction. The route runs ``authorize`` twice: ``exchange`` with the paying user and
``exchange.counterparty`` with the counterparty, whose tokens move too (a hook that lets users act on their own
account therefore refuses the second, unless the caller is the counterparty: the safe default for a shop whose
prices the client must not set).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.params import Depends as DependsParam
from fastapi.responses import Response
from pydantic import BaseModel, Field

import tokenbank.integrations.fastapi.responses as api
from tokenbank.bank import TokenBank
from tokenbank.errors import ConfigurationError, InvalidRequestError
from tokenbank.exchanges import exchange
from tokenbank.integrations.fastapi.access import Action, Allow
from tokenbank.integrations.fastapi.field_types import AccountId, Amount, Metadata, Reason
from tokenbank.integrations.fastapi.route_support import (
    WRITE_ERRORS,
    Bank,
    IdempotencyKey,
    mark_replay,
    replay_response,
)
from tokenbank.integrations.fastapi.schemas import _Request
from tokenbank.models import Exchange

SYMBOL_PATTERN = r"^[A-Za-z0-9_-]{1,16}$"
Symbol = Annotated[str, Field(pattern=SYMBOL_PATTERN, examples=["COIN"])]


class ExchangeSideBody(_Request):
    symbol: Symbol
    user_id: AccountId
    amount: Amount


class ExchangeBody(_Request):
    pay: ExchangeSideBody = Field(description="The user: pays `amount` of `symbol` to the counterparty.")
    receive: ExchangeSideBody = Field(
        description="The counterparty: pays `amount` of `symbol` (the other token) to the user."
    )
    metadata: Metadata | None = None
    reason: Reason | None = None


class ExchangeOut(BaseModel):
    id: str
    pay_symbol: str
    pay: api.Transaction
    receive_symbol: str
    receive: api.Transaction

    @classmethod
    def of(cls, ex: Exchange) -> ExchangeOut:
        return cls(
            id=ex.id, pay_symbol=ex.pay_symbol, pay=api.Transaction.of(ex.pay), receive_symbol=ex.receive_symbol,
            receive=api.Transaction.of(ex.receive),
        )  # fmt: skip


def check_exchange_banks(banks: object) -> dict[str, TokenBank]:
    """``{symbol: bank}``, each bank under its own token's symbol. Raises ConfigurationError."""
    if not isinstance(banks, Mapping) or not banks:
        raise ConfigurationError("create_router: exchange_banks must be a non-empty mapping of symbol -> TokenBank")
    for symbol, bank in banks.items():
        if not isinstance(bank, TokenBank) or bank.settings.symbol != symbol:
            raise ConfigurationError(f"create_router: exchange_banks[{symbol!r}] must be the TokenBank of {symbol}")
    return dict(banks)


def add_exchange_route(
    router: APIRouter, allow: Allow, writes: list[DependsParam], banks: dict[str, TokenBank]
) -> None:
    """Add ``POST /exchanges`` to ``router`` (``allow`` is the router's own call of ``authorize``)."""

    @router.post(
        "/exchanges", status_code=201, response_model=ExchangeOut, dependencies=writes,
        responses={**WRITE_ERRORS, **replay_response(ExchangeOut)},
    )  # fmt: skip
    async def create_exchange(
        request: Request, response: Response, bank: Bank, body: ExchangeBody, idempotency_key: IdempotencyKey = None
    ) -> ExchangeOut:
        """The user pays one token to the counterparty and receives another from it, both or neither, in one store
        call (201; 200 for a replayed Idempotency-Key). Each leg is a transfer whose metadata names the exchange
        and the other leg (see docs/exchange.md)."""
        known = {**banks, bank.settings.symbol: bank}
        sides = []
        for name, side in (("pay", body.pay), ("receive", body.receive)):
            if side.symbol not in known:
                raise InvalidRequestError(
                    f"{name}: this API exchanges {', '.join(sorted(known))}, not {side.symbol}", param=f"{name}.symbol"
                )
            sides.append((known[side.symbol], side.user_id, side.amount))
        await allow(request, Action.EXCHANGE, body.pay.user_id)
        await allow(request, Action.EXCHANGE_COUNTERPARTY, body.receive.user_id)
        ex = await exchange(
            sides[0], sides[1], idempotency_key=idempotency_key, metadata=body.metadata, reason=body.reason
        )
        if ex.replayed:
            mark_replay(response, ex.pay)
        return ExchangeOut.of(ex)
