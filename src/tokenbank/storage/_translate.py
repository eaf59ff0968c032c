"""The one boundary where driver exceptions become tokenbank errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import exc as sa_exc

from tokenbank.errors import StorageError, StorageUnavailableError, TokenBankError

RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "23505"})
"""Serialization failure, deadlock, and a unique violation from a concurrent first use of an idempotency key."""

_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "57", "53")


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a (wrapped) driver error, if it has one."""
    orig = getattr(error, "orig", error)
    for candidate in (orig, getattr(orig, "__cause__", None)):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


def translate(error: BaseException) -> TokenBankError:
    """Map a driver or network exception to StorageUnavailableError or StorageError (never leaks the URL)."""
    if isinstance(error, TokenBankError):
        return error
    if isinstance(error, (OSError, asyncio.TimeoutError, ConnectionError)):
        return StorageUnavailableError(f"store unreachable: {type(error).__name__}: {error}")
    code = sqlstate(error)
    if code and code.startswith(_UNAVAILABLE_SQLSTATE_CLASSES):
        return StorageUnavailableError(f"database unavailable (SQLSTATE {code})")
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return StorageUnavailableError("database connection lost")
    if isinstance(error, sa_exc.InterfaceError | sa_exc.TimeoutError):
        return StorageUnavailableError(f"database unavailable: {type(error).__name__}")
    cause = getattr(error, "orig", None) or error
    if isinstance(cause, OSError | ConnectionError):
        return StorageUnavailableError(f"database unreachable: {type(cause).__name__}")
    detail = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
    return StorageError(f"storage failure: {detail[:300]}")


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    """Run a block, re-raising any driver error as its tokenbank error."""
    try:
        yield
    except TokenBankError:
        raise
    except (TimeoutError, sa_exc.SQLAlchemyError, OSError, ConnectionError) as exc:
        raise translate(exc) from exc
