"""The credit-lot routes of ``create_router(lots=True)``: grant a lot, grant a vesting, read an account's lots
(actions ``grant`` and ``lots.read``). A grant without ``from_user_id`` mints, so ``grant`` is an operator's action."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.params import Depends as DependsParam
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from tokenbank import models
from tokenbank.integrations.fastapi.access import Action, Allow
from tokenbank.integrations.fastapi.field_types import AccountId, Amount, Metadata, OutAmount, Reason, Time, amount_text
from tokenbank.integrations.fastapi.responses import Transaction
from tokenbank.integrations.fastapi.route_support import (
    WRITE_ERRORS,
    Bank,
    IdempotencyKey,
    UserId,
    accepts,
    error_responses,
    mark_replay,
    replay_response,
)
from tokenbank.integrations.fastapi.schemas import with_amounts
from tokenbank.lots import MAX_CATEGORY

CENTURY = 100 * 365 * 86400
"""The longest duration, interval or cliff a vesting's body may give, in seconds."""
Category = Field(None, min_length=1, max_length=MAX_CATEGORY, description="A label of the lot, e.g. promo.")


class GrantBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    to_user_id: AccountId
    amount: Amount
    expires_at: Time | None = Field(None, description="When what is left of the lot expires (None: never).")
    available_at: Time | None = Field(None, description="When the lot becomes spendable (None: at once).")
    category: str | None = Category
    from_user_id: AccountId | None = Field(None, description="Funds the grant (None: minted from the supply).")
    metadata: Metadata | None = None
    reason: Reason | None = None


class VestingBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    to_user_id: AccountId
    amount: Amount
    start: Time
    duration_seconds: int = Field(gt=0, le=CENTURY, description="The last tranche matures at start + duration.")
    interval_seconds: int = Field(gt=0, le=CENTURY, description="One tranche matures every interval.")
    cliff_seconds: int = Field(0, ge=0, le=CENTURY, description="No tranche matures before start + cliff.")
    from_user_id: AccountId | None = None
    category: str | None = Category
    metadata: Metadata | None = None
    reason: Reason | None = None


class Lot(BaseModel):
    id: str
    user_id: str
    amount: OutAmount = Field(description="What is left of the lot.")
    granted: OutAmount
    expires_at: datetime | None
    available_at: datetime | None
    category: str | None
    created_at: datetime

    @classmethod
    def of(cls, lot: models.Lot) -> Lot:
        return cls(
            id=lot.id, user_id=lot.user_id, amount=amount_text(lot.amount), granted=amount_text(lot.granted),
            expires_at=lot.expires_at, available_at=lot.available_at, category=lot.category,
            created_at=lot.created_at,
        )  # fmt: skip


class Lots(BaseModel):
    user_id: str
    available: OutAmount = Field(description="What the account can spend now.")
    held: OutAmount
    pending: OutAmount = Field(description="Lots not available yet.")
    expired: OutAmount = Field(description="Lots past their expiry, not yet moved to the breakage account.")
    lots: list[Lot] = Field(description="Every lot with something left, in spend order.")


class Vesting(BaseModel):
    id: str
    user_id: str
    amount: OutAmount
    lots: list[Lot]


def add_lot_routes(router: APIRouter, allow: Allow, writes: list[DependsParam], decimals: int | None) -> None:
    """Add ``POST /grants``, ``POST /vestings`` and ``GET /accounts/{user_id}/lots`` to ``router`` (amounts held
    to the token's ``decimals`` when given)."""

    @router.post(
        "/grants", status_code=201, response_model=Transaction, dependencies=writes,
        responses={**WRITE_ERRORS, **replay_response(Transaction)},
    )  # fmt: skip
    @accepts(with_amounts(GrantBody, decimals, "amount"))
    async def grant(
        request: Request, response: Response, bank: Bank, body: GrantBody, idempotency_key: IdempotencyKey = None
    ) -> Transaction:
        """Credit a lot that expires and/or matures (docs/lots.md), minted or funded by ``from_user_id``."""
        await allow(request, Action.GRANT, body.to_user_id)
        tx = await bank.grant(
            body.to_user_id, body.amount, expires_at=body.expires_at, available_at=body.available_at,
            category=body.category, from_user_id=body.from_user_id, idempotency_key=idempotency_key,
            metadata=body.metadata, reason=body.reason,
        )  # fmt: skip
        return Transaction.of(mark_replay(response, tx))

    @router.post(
        "/vestings", status_code=201, response_model=Vesting, dependencies=writes,
        responses={**WRITE_ERRORS, **replay_response(Vesting)},
    )  # fmt: skip
    @accepts(with_amounts(VestingBody, decimals, "amount"))
    async def vest(
        request: Request, response: Response, bank: Bank, body: VestingBody, idempotency_key: IdempotencyKey = None
    ) -> Vesting:
        """Grant an amount as tranches maturing every interval after the cliff, in one atomic write."""
        await allow(request, Action.GRANT, body.to_user_id)
        vesting = await bank.vest(
            body.to_user_id, body.amount, start=body.start, duration=timedelta(seconds=body.duration_seconds),
            interval=timedelta(seconds=body.interval_seconds), cliff=timedelta(seconds=body.cliff_seconds),
            from_user_id=body.from_user_id, category=body.category, idempotency_key=idempotency_key,
            metadata=body.metadata, reason=body.reason,
        )  # fmt: skip
        vesting = mark_replay(response, vesting)
        return Vesting(id=vesting.id, user_id=vesting.user_id, amount=amount_text(vesting.amount),
                       lots=[Lot.of(lot) for lot in vesting.lots])  # fmt: skip

    @router.get("/accounts/{user_id}/lots", response_model=Lots, responses=error_responses(422))
    async def get_lots(request: Request, bank: Bank, user_id: UserId) -> Lots:
        """What the account can spend now, what its lots hold pending or expired, and its lots in spend order."""
        await allow(request, Action.LOTS_READ, user_id)
        detail = await bank.get_balance_detail(user_id)
        return Lots(
            user_id=user_id, available=amount_text(detail.available), held=amount_text(detail.held),
            pending=amount_text(detail.pending), expired=amount_text(detail.expired),
            lots=[Lot.of(lot) for lot in detail.lots],
        )  # fmt: skip
