"""The hold routes: reserve funds, then capture or void them."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.params import Depends as DependsParam
from fastapi.responses import Response

import tokenbank.integrations.fastapi.responses as api
from tokenbank.errors import HoldNotFoundError
from tokenbank.integrations.fastapi.access import Action, Allow
from tokenbank.integrations.fastapi.route_support import (
    WRITE_ERRORS,
    Bank,
    IdempotencyKey,
    ObjectId,
    accepts,
    lookup_id,
    mark_replay,
    replay_response,
)
from tokenbank.integrations.fastapi.schemas import CaptureBody, HoldBody, RequestBodies, VoidBody


def add_hold_routes(router: APIRouter, allow: Allow, writes: list[DependsParam], bodies: RequestBodies) -> None:
    """Add ``POST /holds``, ``/holds/{hold_id}/capture`` and ``/holds/{hold_id}/void`` to ``router``."""

    @router.post(
        "/holds", status_code=201, response_model=api.Hold, dependencies=writes,
        responses={**WRITE_ERRORS, **replay_response(api.Hold)},
    )  # fmt: skip
    @accepts(bodies.hold)
    async def create_hold(
        request: Request, response: Response, bank: Bank, body: HoldBody, idempotency_key: IdempotencyKey = None
    ) -> api.Hold:
        """Reserve funds for a later capture or void; expired holds are voided automatically."""
        await allow(request, Action.HOLD_CREATE, body.from_user_id)
        hold = await bank.hold(
            body.from_user_id, body.to_user_id, body.amount, expires_in=body.expires_in_seconds,
            idempotency_key=idempotency_key, metadata=body.metadata, reason=body.reason,
        )  # fmt: skip
        return api.Hold.of(mark_replay(response, hold))

    @router.post("/holds/{hold_id}/capture", response_model=api.Hold, responses=WRITE_ERRORS, dependencies=writes)
    @accepts(bodies.capture, optional=True)
    async def capture_hold(
        request: Request, bank: Bank, hold_id: ObjectId, body: CaptureBody | None = None
    ) -> api.Hold:
        """Pay out a pending hold, all or part (the rest goes back to the sender)."""
        held = await bank.get_hold(lookup_id(hold_id, HoldNotFoundError))
        await allow(request, Action.HOLD_CAPTURE, held.from_user_id)
        body = body or CaptureBody()
        return api.Hold.of(await bank.capture(hold_id, body.amount, reason=body.reason))

    @router.post("/holds/{hold_id}/void", response_model=api.Hold, responses=WRITE_ERRORS, dependencies=writes)
    async def void_hold(request: Request, bank: Bank, hold_id: ObjectId, body: VoidBody | None = None) -> api.Hold:
        """Release a pending hold back to the sender."""
        held = await bank.get_hold(lookup_id(hold_id, HoldNotFoundError))
        await allow(request, Action.HOLD_VOID, held.from_user_id)
        return api.Hold.of(await bank.void(hold_id, reason=None if body is None else body.reason))
