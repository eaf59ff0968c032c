"""The Redis table of the error boundary (shape: :class:`~tokenbank.storage._translate.DriverErrors`)."""

from __future__ import annotations

import asyncio

from redis import exceptions as rx

from tokenbank.storage._translate import DriverErrors, first_line

UNAVAILABLE: tuple[type[BaseException], ...] = (
    rx.ConnectionError,  # also BusyLoadingError, and "no connection available" from the blocking pool
    rx.TimeoutError,
    rx.ReadOnlyError,  # we are talking to a replica (failover in progress)
    rx.ClusterDownError,  # also MasterDownError: a master of the cluster failed and no replica took over yet
    rx.TryAgainError,  # a slot is being moved (resharding)
    rx.ClusterError,  # redirected too many times ("TTL exhausted"): the cluster is reconfiguring
    rx.AskError,  # also MovedError: a redirect the cluster client could not follow
    rx.SlotNotCoveredError,
    rx.RedisClusterUnreachableError,
    OSError,
    asyncio.TimeoutError,
)
"""Errors meaning: the store did not answer, or cannot take writes right now."""

RETRYABLE: tuple[type[BaseException], ...] = (rx.ConnectionError, ConnectionError)
"""Errors after which one resend is worth it (a pooled connection to a restarted server is stale) and safe:
reads change nothing, and the write scripts recognise an op they already applied. A timeout is not resent:
the server is hung or overloaded, and waiting twice would only delay the error."""


def _unavailable(error: BaseException) -> str | None:
    if isinstance(error, UNAVAILABLE) or (isinstance(error, rx.ResponseError) and str(error).startswith("BUSY")):
        return f"redis unavailable: {type(error).__name__}: {first_line(error)}"
    return None


REDIS_ERRORS = DriverErrors(
    catches=(TimeoutError, rx.RedisError, rx.RedisClusterException, OSError),
    unavailable=_unavailable,
    failure=lambda error: f"redis failure: {type(error).__name__}: {first_line(error)}",
)

translate = REDIS_ERRORS.translate
translated = REDIS_ERRORS.translated
"""Run a block, re-raising any redis-py error as its tokenbank error."""
