"""What the route modules share: the path, header and bank parameters, the documented error and replay answers,
and the helpers every write uses (replay marking, id lookup, a body model chosen at router construction)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from decimal import Decimal
from http import HTTPStatus
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Path
from fastapi.responses import Response

import tokenbank.integrations.fastapi.responses as api
from tokenbank.bank import TokenBank
from tokenbank.errors import HoldNotFoundError, StakeNotFoundError, TransactionNotFoundError
from tokenbank.ids import MAX_ACCOUNT_ID_LENGTH, MAX_IDEMPOTENCY_KEY_LENGTH
from tokenbank.integrations.fastapi.field_types import ID_PATTERN, MAX_LOOKUP_ID_LENGTH
from tokenbank.integrations.fastapi.lifespan import get_token_bank
from tokenbank.models import Hold, Stake, Transaction, Vesting

REPLAYED_HEADER = "Idempotent-Replayed"


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of error answers with the ``{code, message, param}`` body."""
    return {status: {"model": api.Error} for status in statuses}


def json_error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Error answers of a route whose success is not JSON (``model=`` would take the route's media type)."""
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {status: {"description": HTTPStatus(status).phrase, "content": content} for status in statuses}


COMMON_ERRORS = error_responses(401, 403, 500, 503)
# 400: a body that is not even text (FastAPI's own answer); 413: over max_body_bytes; 423: a frozen account.
WRITE_ERRORS = error_responses(400, 404, 409, 413, 422, 423)
CONTROL_ERRORS = error_responses(400, 409, 413, 422)
_REPLAYED_HEADERS = {
    REPLAYED_HEADER: {
        "description": "`true`: the same Idempotency-Key with the same request was applied before; this is its "
        "first result and nothing new was applied.",
        "schema": {"type": "string", "enum": ["true"]},
    }
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


def replay_response(model: type[Any]) -> dict[int | str, dict[str, Any]]:
    """The documented 200 of a write answered from its Idempotency-Key (a first write answers 201)."""
    return {
        200: {
            "model": model,
            "description": "Replayed: an earlier request with the same Idempotency-Key was applied; this is its "
            "result and nothing new was applied.",
            "headers": _REPLAYED_HEADERS,
        }
    }


def mark_replay(response: Response, result: Transaction | Hold | Stake | Vesting) -> Any:
    """A first write answers 201; a replayed one 200 with ``Idempotent-Replayed: true``."""
    if result.replayed:
        response.status_code = 200
        response.headers[REPLAYED_HEADER] = "true"
    return result


def lookup_id(value: str, missing: type[TransactionNotFoundError | HoldNotFoundError | StakeNotFoundError]) -> str:
    """A transaction, hold or stake id from a path: one the schema allows but that cannot exist (not printable) is
    simply not found."""
    if not value.isprintable():
        raise missing(f"{missing.__name__.removesuffix('NotFoundError').lower()} not found")
    return value


def accepts(model: type[Any], *, optional: bool = False) -> Callable[[Endpoint], Endpoint]:
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


__all__ = [
    "COMMON_ERRORS",
    "CONTROL_ERRORS",
    "REPLAYED_HEADER",
    "WRITE_ERRORS",
    "Bank",
    "IdempotencyKey",
    "ObjectId",
    "UserId",
    "accepts",
    "error_responses",
    "format_amount",
    "json_error_responses",
    "lookup_id",
    "mark_replay",
    "replay_response",
]
