"""Errors as HTTP answers: every error body is ``{code, message}``.

FastAPI registers exception handlers on the application, not on a router, hence
:func:`install_error_handlers`. It maps:

- a :class:`~tokenbank.errors.TokenBankError` to its ``http_status`` (422, 404, 409, 503, 500);
- FastAPI's own request validation errors to 422 with ``invalid_amount`` / ``invalid_account`` when the first
  problem is an amount / an account id (the same codes the ledger gives for the same mistakes), else
  ``invalid_request``;
- (optionally) the app's ``HTTPException``\\ s, e.g. a 403 from an authorization hook, to ``{code, message}``.
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

import tokenbank.integrations.fastapi.schemas as api
from tokenbank.errors import StorageError, TokenBankError

logger = logging.getLogger("tokenbank")

AMOUNT_FIELDS = frozenset({"amount"})
ACCOUNT_FIELDS = frozenset({"user_id", "from_user_id", "to_user_id"})
_MAX_REPORTED = 3

# What a client sees for a server-side failure: driver messages can quote SQL, so they stay in the log.
_SERVER_MESSAGES = {
    "storage_unavailable": "the ledger store is unavailable; retry later",
    "storage_error": "the ledger store failed; see the server log",
}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(api.Error(code=code, message=message).model_dump(), status_code=status, headers=headers)


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
    return error_response(status, exc.code, message, headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    return error_response(422, validation_code(errors), validation_message(errors))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail
    if isinstance(detail, dict) and isinstance(detail.get("code"), str) and isinstance(detail.get("message"), str):
        code, message = detail["code"], detail["message"]
    else:
        code = _http_code(exc.status_code)
        message = detail if isinstance(detail, str) else str(detail)
    return error_response(exc.status_code, code, message, dict(exc.headers) if exc.headers else None)


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


__all__ = ["error_response", "install_error_handlers", "validation_code", "validation_message"]
