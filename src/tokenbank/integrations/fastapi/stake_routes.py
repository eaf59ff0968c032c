"""The staking routes of ``create_router(staking=True)``: stake, read a stake, unstake (actions ``stake`` and
``unstake``). The body of a stake sets its reward, minted at the unstake, so ``stake`` is an operator's action."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.params import Depends as DependsParam
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from tokenbank import models
from tokenbank.errors import StakeNotFoundError
from tokenbank.integrations.fastapi.access import Action, Allow
from tokenbank.integrations.fastapi.field_types import AccountId, Amount, Metadata, OutAmount, Reason, Time, amount_text
from tokenbank.integrations.fastapi.route_support import (
    WRITE_ERRORS,
    Bank,
    IdempotencyKey,
    ObjectId,
    accepts,
    error_responses,
    lookup_id,
    mark_replay,
    replay_response,
)
from tokenbank.integrations.fastapi.schemas import with_amounts


class StakeBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    user_id: AccountId
    amount: Amount
    until: Time = Field(description="When the stake unlocks (in the future): an unstake before it answers 409.")
    reward: Amount | None = Field(None, description="Minted to the owner at the unstake, within the max supply.")
    metadata: Metadata | None = None
    reason: Reason | None = None


class UnstakeBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    reason: Reason | None = None


class Stake(BaseModel):
    id: str
    user_id: str
    amount: OutAmount
    reward: OutAmount
    unlock_at: datetime
    status: models.StakeStatus
    created_at: datetime
    metadata: dict[str, Any] | None

    @classmethod
    def of(cls, stake: models.Stake) -> Stake:
        return cls(
            id=stake.id, user_id=stake.user_id, amount=amount_text(stake.amount), reward=amount_text(stake.reward),
            unlock_at=stake.unlock_at, status=stake.status, created_at=stake.created_at, metadata=stake.metadata,
        )  # fmt: skip


def add_stake_routes(router: APIRouter, allow: Allow, writes: list[DependsParam], decimals: int | None) -> None:
    """Add ``POST /stakes``, ``GET /stakes/{stake_id}`` and ``POST /stakes/{stake_id}/unstake`` to ``router``
    (amounts held to the token's ``decimals`` when given)."""

    @router.post(
        "/stakes", status_code=201, response_model=Stake, dependencies=writes,
        responses={**WRITE_ERRORS, **replay_response(Stake)},
    )  # fmt: skip
    @accepts(with_amounts(StakeBody, decimals, "amount", "reward"))
    async def create_stake(
        request: Request, response: Response, bank: Bank, body: StakeBody, idempotency_key: IdempotencyKey = None
    ) -> Stake:
        """Lock the account's tokens until ``until`` (held out of its balance); the unstake then gives them back
        with ``reward`` minted on top."""
        await allow(request, Action.STAKE, body.user_id)
        stake = await bank.stake(
            body.user_id, body.amount, until=body.until, reward=body.reward or 0, idempotency_key=idempotency_key,
            metadata=body.metadata, reason=body.reason,
        )  # fmt: skip
        return Stake.of(mark_replay(response, stake))

    @router.get("/stakes/{stake_id}", response_model=Stake, responses=error_responses(404, 422))
    async def get_stake(request: Request, bank: Bank, stake_id: ObjectId) -> Stake:
        """A stake: its owner, amount, reward, unlock time and whether it was released."""
        stake = await bank.get_stake(lookup_id(stake_id, StakeNotFoundError))
        await allow(request, Action.STAKE_READ, stake.user_id)
        return Stake.of(stake)

    @router.post("/stakes/{stake_id}/unstake", response_model=Stake, responses=WRITE_ERRORS, dependencies=writes)
    async def unstake(
        request: Request, response: Response, bank: Bank, stake_id: ObjectId, body: UnstakeBody | None = None
    ) -> Stake:
        """At or after its unlock time (409 ``stake_locked`` before): the tokens back to the owner and the reward
        minted, in one atomic write; sent again, it answers 200 with ``Idempotent-Replayed: true``."""
        stake = await bank.get_stake(lookup_id(stake_id, StakeNotFoundError))
        await allow(request, Action.UNSTAKE, stake.user_id)
        return Stake.of(
            mark_replay(response, await bank.unstake(stake_id, reason=None if body is None else body.reason))
        )
