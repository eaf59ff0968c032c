"""The one boundary where driver exceptions become tokenbank errors: one shape, one table per driver.

A :class:`DriverErrors` table says which exceptions a driver raises and which of them mean the store did not
answer (StorageUnavailableError); everything else it raises is a StorageError. Messages never carry a URL.
:data:`SQL_ERRORS` (SQLAlchemy, asyncpg, sqlite3) is here, SQLAlchemy being a core dependency; the Redis table
is ``storage/redis/errors.py`` (the ``redis`` extra). Every store runs its calls inside ``table.translated()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import exc as sa_exc

from tokenbank.errors import StorageError, StorageUnavailableError, TokenBankError


@dataclass(frozen=True, slots=True)
class DriverErrors:
    """One driver's error table."""

    catches: tuple[type[BaseException], ...]
    """What the boundary translates; anything else passes through untouched."""
    unavailable: Callable[[BaseException], str | None]
    """The message when the error means the store did not answer or cannot serve now, else None."""
    failure: Callable[[BaseException], str]
    """The message of the StorageError for any other error."""

    def translate(self, error: BaseException) -> TokenBankError:
        """The tokenbank error for a driver or network exception (a tokenbank error stays itself)."""
        if isinstance(error, TokenBankError):
            return error
        reason = self.unavailable(error)
        if reason is not None:
            return StorageUnavailableError(reason)
        return StorageError(self.failure(error))

    @asynccontextmanager
    async def translated(self) -> AsyncIterator[None]:
        """Run a block, re-raising any driver error as its tokenbank error (the driver's as ``__cause__``)."""
        try:
            yield
        except TokenBankError:
            raise
        except self.catches as exc:
            raise self.translate(exc) from exc


def first_line(error: BaseException, limit: int = 300) -> str:
    text = str(error)
    return text.splitlines()[0][:limit] if text else ""


# SQL -------------------------------------------------------------------------------------------------------
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


def _sql_unavailable(error: BaseException) -> str | None:
    if isinstance(error, (OSError, asyncio.TimeoutError, ConnectionError)):
        return f"store unreachable: {type(error).__name__}: {error}"
    code = sqlstate(error)
    if code and code.startswith(_UNAVAILABLE_SQLSTATE_CLASSES):
        return f"database unavailable (SQLSTATE {code})"
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return "database connection lost"
    if isinstance(error, sa_exc.InterfaceError | sa_exc.TimeoutError):
        return f"database unavailable: {type(error).__name__}"
    cause = getattr(error, "orig", None) or error
    if isinstance(cause, OSError | ConnectionError):
        return f"database unreachable: {type(cause).__name__}"
    return None


def _sql_failure(error: BaseException) -> str:
    cause = getattr(error, "orig", None) or error
    detail = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
    return f"storage failure: {detail[:300]}"


SQL_ERRORS = DriverErrors(
    catches=(TimeoutError, sa_exc.SQLAlchemyError, OSError, ConnectionError),
    unavailable=_sql_unavailable,
    failure=_sql_failure,
)
"""SQLAlchemy's errors (and, from the PostgreSQL write pool, asyncpg's, translated with ``translate``)."""
