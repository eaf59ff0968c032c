"""Errors as HTTP answers: every error body is ``{code, message, param}``.

FastAPI registers exception handlers on the application, not on a router, hence
:func:`install_error_handlers`. It maps:

- a :class:`~tokenbank.errors.TokenBankError` to its ``http_status`` (422, 404, 409, 503, 500), its ``param``
  as the request field's name (:func:`request_param`);
- FastAPI's own request validation errors to 422 with ``invalid_amount`` / ``invalid_account`` when the first
  problem is an amount / an account id (the same codes the ledger gives for the same mistakes), else
  ``invalid_request``, and the first problem's field as ``param``;
- (optionally) the app's ``HTTPException``\\ s, e.g. a 403 from an authorization hook, to ``{code, message, param}``
  (``param`` from a ``detail`` dict that has one, else null).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

import tokenbank.integrations.fastapi.responses as api
from tokenbank.errors import StorageError, TokenBankError

logger = logging.getLogger("tokenbank")

AMOUNT_FIELDS = frozenset({"amount", "share", "max_balance", "overdraft"})
ACCOUNT_FIELDS = frozenset({"user_id", "from_user_id", "to_user_id", "remainder_to"})
_MAX_REPORTED = 3

# What a client sees for a server-side failure: driver messages can quote SQL, so they stay in the log.
_SERVER_MESSAGES = {
    "storage_unavailable": "the ledger store is unavailable; retry later",
    "storage_error": "the ledger store failed; see the server log",
}


# Where the REST API's names differ from the bank's parameter names.
_REST_NAMES = {"expires_in": "expires_in_seconds"}
# The location prefixes FastAPI puts first in a validation error's ``loc``.
_SOURCES = frozenset({"body", "path", "query", "header", "cookie"})


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, *, param: str | None = None
) -> JSONResponse:
    body = api.Error(code=code, message=message, param=param).model_dump()
    return JSONResponse(body, status_code=status, headers=headers)


def request_param(error: TokenBankError) -> str | None:
    """The request field a TokenBankError blames, as the REST API names it (``expires_in`` ->
    ``expires_in_seconds``), or None."""
    return None if error.param is None else _REST_NAMES.get(error.param, error.param)


def error_body(error: TokenBankError) -> api.Error:
    """A TokenBankError as an :class:`~tokenbank.integrations.fastapi.responses.Error` (batch item results)."""
    return api.Error(code=error.code, message=error.message, param=request_param(error))


async def _token_bank_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TokenBankError)
    status = exc.http_status
    message = exc.message
    headers = None
    if status >= 500:
        logger.error(
            "%s %s failed: %s",
            request.method,
            request.url.path,
            exc.code,
            extra={"operation": "http", "code": exc.code, "path": request.url.path},
        )
        if isinstance(exc, StorageError):
            message = _SERVER_MESSAGES.get(exc.code, _SERVER_MESSAGES["storage_error"])
        if status == 503:
            headers = {"Retry-After": "1"}
    return error_response(status, exc.code, message, headers, param=request_param(exc))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    return error_response(422, validation_code(errors), validation_message(errors), param=validation_param(errors))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail
    param = None
    if isinstance(detail, dict) and isinstance(detail.get("code"), str) and isinstance(detail.get("message"), str):
        code, message = detail["code"], detail["message"]
        param = detail["param"] if isinstance(detail.get("param"), str) else None
    else:
        code = _http_code(exc.status_code)
        message = detail if isinstance(detail, str) else str(detail)
    return error_response(exc.status_code, code, message, dict(exc.headers) if exc.headers else None, param=param)


def install_error_handlers(app: FastAPI, *, http_errors: bool = True) -> None:
    """Answer tokenbank errors and request validation errors with ``{code, message}``; with ``http_errors``
    also the app's HTTPExceptions (a ``detail={"code": ..., "message": ...}`` dict is passed through)."""
    app.add_exception_handler(TokenBankError, _token_bank_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    if http_errors:
        app.add_exception_handler(StarletteHTTPException, _http_error)


def validation_code(errors: Sequence[Any]) -> str:
    """``invalid_amount`` / ``invalid_account`` when the first problem is a bad value in such a field, else
    ``invalid_request`` (also for a missing field: the request is incomplete, not its amount wrong)."""
    if errors and errors[0].get("type") != "missing":
        loc = errors[0].get("loc", ())
        names = [part for part in loc if isinstance(part, str)]
        if names and names[-1] in AMOUNT_FIELDS:
            return "invalid_amount"
        if names and names[-1] in ACCOUNT_FIELDS:
            return "invalid_account"
    return "invalid_request"


def validation_param(errors: Sequence[Any]) -> str | None:
    """The first problem's field: ``amount``, ``transfers.2.amount`` in a batch, ``hold_id`` in a path, ``type``
    in a query, ``idempotency_key`` for the Idempotency-Key header; None for a body that is missing, not JSON
    or not an object."""
    if not errors or errors[0].get("type") == "json_invalid":  # its loc holds a character position, no field
        return None
    loc = list(errors[0].get("loc", ()))
    source = loc.pop(0) if loc and loc[0] in _SOURCES else None
    if not loc:
        return None
    if source in ("path", "query", "header", "cookie"):  # a parameter's name (not the index in a repeated one)
        name = str(loc[0])
        return name.lower().replace("-", "_") if source == "header" else name
    return ".".join(str(part) for part in loc)


def validation_message(errors: Sequence[Any]) -> str:
    """The first few problems as ``where: what`` (never the rejected input itself: it may be huge)."""
    parts = []
    for error in errors[:_MAX_REPORTED]:
        where = ".".join(str(part) for part in error.get("loc", ()))
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg", "invalid")))
    if len(errors) > _MAX_REPORTED:
        parts.append(f"and {len(errors) - _MAX_REPORTED} more")
    return "; ".join(parts) or "invalid request"


def _http_code(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_").replace("'", "")
    except ValueError:
        return "http_error"


__all__ = [
    "error_body",
    "error_response",
    "install_error_handlers",
    "request_param",
    "validation_code",
    "validation_message",
    "validation_param",
]
