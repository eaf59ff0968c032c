"""The one boundary where redis-py exceptions become tokenbank errors (the Redis twin of ``_translate``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis import exceptions as rx

from tokenbank.errors import StorageError, StorageUnavailableError, TokenBankError

UNAVAILABLE: tuple[type[BaseException], ...] = (
    rx.ConnectionError,  # also BusyLoadingError, and "no connection available" from the blocking pool
    rx.TimeoutError,
    rx.ReadOnlyError,  # we are talking to a replica (failover in progress)
    rx.ClusterDownError,
    rx.TryAgainError,
    OSError,
    asyncio.TimeoutError,
)
"""Errors meaning: the store did not answer, or cannot take writes right now."""

RETRYABLE: tuple[type[BaseException], ...] = (rx.ConnectionError, ConnectionError)
"""Errors after which one resend is worth it (a pooled connection to a restarted server is stale) and safe:
reads change nothing, and the write scripts recognise an op they already applied. A timeout is not resent:
the server is hung or overloaded, and waiting twice would only delay the error."""


def translate(error: BaseException) -> TokenBankError:
    """Map a redis-py or network exception to StorageUnavailableError or StorageError (never leaks the URL)."""
    if isinstance(error, TokenBankError):
        return error
    if isinstance(error, UNAVAILABLE) or (isinstance(error, rx.ResponseError) and str(error).startswith("BUSY")):
        return StorageUnavailableError(f"redis unavailable: {type(error).__name__}: {_first_line(error)}")
    return StorageError(f"redis failure: {type(error).__name__}: {_first_line(error)}")


def _first_line(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return text[:300]


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    """Run a block, re-raising any redis-py error as its tokenbank error."""
    try:
        yield
    except TokenBankError:
        raise
    except (TimeoutError, rx.RedisError, OSError) as exc:
        raise translate(exc) from exc
