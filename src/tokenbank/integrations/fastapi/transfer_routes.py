"""The routes that move tokens: transfers (single, batch, split), mint, burn, and the reversal of a transfer."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.params import Depends as DependsParam
from fastapi.responses import JSONResponse, Response

import tokenbank.integrations.fastapi.responses as api
from tokenbank.errors import TransactionNotFoundError
from tokenbank.integrations.fastapi.access import Action, Allow
from tokenbank.integrations.fastapi.errors import error_body, request_param
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
from tokenbank.integrations.fastapi.schemas import (
    BatchBody,
    BurnBody,
    MintBody,
    RequestBodies,
    ReverseBody,
    SplitBody,
    TransferBody,
)
from tokenbank.models import TransferRequest

_ABORTED_DOC = (
    "Atomic batch aborted, nothing applied: `{code: batch_aborted, message, results}` with every item's result "
    "(the failing one with its own error)."
)


def add_transfer_routes(router: APIRouter, allow: Allow, writes: list[DependsParam], bodies: RequestBodies) -> None:
    """Add the transfer, batch, split, mint and burn routes to ``router`` (``allow`` is the router's own call of
    ``authorize``; ``writes`` its write routes' dependencies; ``bodies`` the request bodies for its decimals)."""

    @router.post(
        "/transfers", status_code=201, response_model=api.Transaction, dependencies=writes,
        responses={**WRITE_ERRORS, **replay_response(api.Transaction)},
    )  # fmt: skip
    @accepts(bodies.transfer)
    async def transfer(
        request: Request, response: Response, bank: Bank, body: TransferBody, idempotency_key: IdempotencyKey = None
    ) -> api.Transaction:
        """Move tokens between two accounts, atomically (201; 200 for a replayed Idempotency-Key)."""
        await allow(request, Action.TRANSFER, body.from_user_id)
        tx = await bank.transfer(
            body.from_user_id, body.to_user_id, body.amount, idempotency_key=idempotency_key,
            metadata=body.metadata, reason=body.reason,
        )  # fmt: skip
        return api.Transaction.of(mark_replay(response, tx))

    @router.post(
        "/transfers/batch", response_model=api.BatchResult, dependencies=writes,
        responses={**WRITE_ERRORS, 409: {"model": api.BatchAborted, "description": _ABORTED_DOC}},
    )  # fmt: skip
    @accepts(bodies.batch)
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
        responses={**WRITE_ERRORS, **replay_response(list[api.Transaction])},
    )  # fmt: skip
    @accepts(bodies.split)
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
            mark_replay(response, txs[0])
        return [api.Transaction.of(tx) for tx in txs]

    @router.post(
        "/mint", status_code=201, response_model=api.Transaction, dependencies=writes,
        responses={**WRITE_ERRORS, **replay_response(api.Transaction)},
    )  # fmt: skip
    @accepts(bodies.mint)
    async def mint(
        request: Request, response: Response, bank: Bank, body: MintBody, idempotency_key: IdempotencyKey = None
    ) -> api.Transaction:
        """Create new tokens in an account (audited; refused past the maximum supply)."""
        await allow(request, Action.MINT, body.to_user_id)
        tx = await bank.mint(
            body.to_user_id, body.amount, reason=body.reason, idempotency_key=idempotency_key, metadata=body.metadata
        )
        return api.Transaction.of(mark_replay(response, tx))

    @router.post(
        "/burn", status_code=201, response_model=api.Transaction, dependencies=writes,
        responses={**WRITE_ERRORS, **replay_response(api.Transaction)},
    )  # fmt: skip
    @accepts(bodies.burn)
    async def burn(
        request: Request, response: Response, bank: Bank, body: BurnBody, idempotency_key: IdempotencyKey = None
    ) -> api.Transaction:
        """Destroy tokens from an account (audited)."""
        await allow(request, Action.BURN, body.user_id)
        tx = await bank.burn(
            body.user_id, body.amount, reason=body.reason, idempotency_key=idempotency_key, metadata=body.metadata
        )
        return api.Transaction.of(mark_replay(response, tx))


def add_reverse_route(router: APIRouter, allow: Allow, writes: list[DependsParam]) -> None:
    """Add ``POST /transactions/{transaction_id}/reverse`` to ``router``."""

    @router.post(
        "/transactions/{transaction_id}/reverse", status_code=201, response_model=api.Transaction,
        responses={**WRITE_ERRORS, **replay_response(api.Transaction)}, dependencies=writes,
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
        original = await bank.transactions.get_transaction_by_id(lookup_id(transaction_id, TransactionNotFoundError))
        await allow(request, Action.REVERSE, original.to_user_id or original.from_user_id)
        tx = await bank.reverse(
            transaction_id, reason=body.reason, idempotency_key=idempotency_key, metadata=body.metadata
        )
        return api.Transaction.of(mark_replay(response, tx))
