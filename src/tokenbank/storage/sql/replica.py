"""Reads a PostgreSQL streaming replica may serve (``DATABASE_READ_URL``), without ever giving a bank a stale view
of its own writes.

Replication is PostgreSQL's own; this module only decides, per read, whether the replica may answer:

- A bank that has written since its last replica read asks the primary once for a WAL position past the commit
  records of those writes (:data:`PRIMARY_POSITION`). Writes themselves pay nothing: one LSN query covers every
  write committed before it, however many batches that was.
- Before reading, the replica must have replayed that position (``pg_last_wal_replay_lsn()``); the highest position
  seen is remembered, so once the replica is known to be past it no further check is made. It is polled for up to
  ``TOKEN_REPLICA_WAIT_MS``, then the primary answers (counted in :class:`ReplicaStats`, logged at debug).
- A replica that cannot be reached or fails a query: the primary answers, one warning per outage, and the replica is
  left alone for :data:`DOWN_RETRY_SECONDS` before it is tried again. A caller never sees a replica error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection

from tokenbank.errors import TokenBankError
from tokenbank.settings import Settings
from tokenbank.storage import _translate
from tokenbank.storage.capabilities import HealthCheck, HealthStatus
from tokenbank.storage.sql.connection import parse_read_url, postgres_engine

T = TypeVar("T")


class Runner(Protocol):
    """Runs ``fn(connection)`` in one transaction on the primary (the store's ``run_sync``)."""

    def __call__(self, fn: Callable[[Connection], T], /) -> Awaitable[T]: ...


logger = logging.getLogger("tokenbank")

CONNECT_TIMEOUT_SECONDS = 2.0
"""A replica that does not accept a connection within this is treated as down (the primary answers)."""
DOWN_RETRY_SECONDS = 1.0
"""After a replica failure, reads go straight to the primary for this long before the replica is tried again."""
HEALTH_TIMEOUT_SECONDS = 1.5
POLL_FIRST_SECONDS = 0.001
POLL_MAX_SECONDS = 0.02

_HEALTH_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, TokenBankError, *_translate.SQL_ERRORS.catches)
_REPLAY = sa.text("SELECT pg_last_wal_replay_lsn()::text")
POSITION_PAST_COMMITS = (
    "CASE WHEN current_setting('synchronous_commit') = 'off' THEN pg_current_wal_insert_lsn()"
    " ELSE pg_current_wal_flush_lsn() END::text"
)
PRIMARY_POSITION = sa.text(f"SELECT {POSITION_PAST_COMMITS}")
"""Where the replica must have replayed to hold every write committed before the query: the flushed WAL, as a
commit returns only once its record is flushed; with ``synchronous_commit = off`` it may not be yet, so the
inserted WAL. (The inserted WAL would always do, but it also holds other sessions' unflushed records, which the
replica receives only at the WAL writer's next flush, up to ``wal_writer_delay`` later: a wait for nothing.)"""
_PRIMARY_FLUSHED = sa.text("SELECT pg_current_wal_flush_lsn()::text")
_STATUS = sa.text(
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,"
    " EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8"
)


def parse_lsn(text: str) -> int:
    """A WAL position as PostgreSQL prints it (``16/B374D848``) as one comparable integer."""
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


@dataclass(slots=True)
class ReplicaStats:
    """How reads were served since the store opened."""

    reads: int = 0
    """Served by the replica."""
    lag_fallbacks: int = 0
    """Served by the primary: the replica had not replayed this bank's last write within the wait."""
    down_fallbacks: int = 0
    """Served by the primary: the replica could not be reached or failed the query."""
    waits: int = 0
    """Replica reads that first waited for the replica to replay this bank's writes."""


class ReplicaReader:
    """The replica's own SQLAlchemy pool (the primary's server settings, search_path included) and the bookkeeping
    that keeps read-your-writes. ``primary`` runs a read on the primary (the store's own transaction runner)."""

    def __init__(self, url: URL, settings: Settings, primary: Runner) -> None:
        self.engine = postgres_engine(url, settings, connect_timeout=CONNECT_TIMEOUT_SECONDS)
        self.wait_seconds = settings.replica_wait_ms / 1000
        self.lag_limit_seconds = settings.sync_lag_degraded_seconds
        self.stats = ReplicaStats()
        self._primary = primary
        self._writes = 0  # writes committed by this bank
        self._covered = 0  # how many of them ``_needed`` covers
        self._needed = 0  # the primary WAL position the replica must have replayed
        self._replayed = 0  # the highest replay position seen on the replica
        self._lsn_lock = asyncio.Lock()
        self._down_until = 0.0
        self._down = False

    def note_write(self) -> None:
        """A write of this bank committed: the next replica read must see it (called after the commit)."""
        self._writes += 1

    async def close(self) -> None:
        await self.engine.dispose()

    # reads ---------------------------------------------------------------------------------------------------
    async def run(self, fn: Callable[[Connection], T]) -> T:
        """``fn(connection)`` in one transaction on the replica if it holds this bank's writes (waiting for them
        up to the configured time), else on the primary. Errors are the primary's only."""
        primary = self._primary
        if time.monotonic() < self._down_until:
            self.stats.down_fallbacks += 1
            return await primary(fn)
        await self._cover_writes()
        try:
            answered = await self._on_replica(fn)
        except _translate.SQL_ERRORS.catches as exc:
            self._failed(exc)
            return await primary(fn)
        if answered is None:
            self.stats.lag_fallbacks += 1
            logger.debug(
                "replica behind this bank's last write after %.0f ms: reading the primary",
                self.wait_seconds * 1000,
                extra={"operation": "replica.read"},
            )
            return await primary(fn)
        self._answered()
        self.stats.reads += 1
        return answered[0]

    async def _on_replica(self, fn: Callable[[Connection], T]) -> tuple[T] | None:
        """``(fn's result,)`` from the replica once it has replayed this bank's writes; None if it did not in time."""
        async with self.engine.connect() as conn:
            if not await self._caught_up(conn):
                return None
            if conn.in_transaction():
                await conn.rollback()  # fn's transaction starts clean (SET TRANSACTION must come first)
            result = await conn.run_sync(fn)
            await conn.commit()
            return (result,)

    async def _cover_writes(self) -> None:
        """Make ``_needed`` cover every write committed so far: one primary query shared by concurrent readers."""
        wanted = self._writes
        if self._covered >= wanted:
            return
        async with self._lsn_lock:
            if self._covered >= wanted:
                return
            count = self._writes
            position = await self._primary(lambda conn: conn.scalar(PRIMARY_POSITION))
            assert isinstance(position, str)
            self._needed = max(self._needed, parse_lsn(position))
            self._covered = count

    async def _caught_up(self, conn: AsyncConnection) -> bool:
        """Whether the replica has replayed ``_needed``, polling it for up to the wait."""
        if self._needed <= self._replayed:
            return True
        self.stats.waits += 1
        deadline = time.monotonic() + self.wait_seconds
        pause = POLL_FIRST_SECONDS
        while True:
            replayed = await conn.scalar(_REPLAY)
            if replayed is None:  # not in recovery: a promoted replica or the primary itself; nothing to wait for
                self._replayed = max(self._replayed, self._needed)
                return True
            self._replayed = max(self._replayed, parse_lsn(replayed))
            if self._replayed >= self._needed:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, POLL_MAX_SECONDS)

    def _failed(self, exc: BaseException) -> None:
        self.stats.down_fallbacks += 1
        self._down_until = time.monotonic() + DOWN_RETRY_SECONDS
        if not self._down:
            self._down = True
            logger.warning(
                "read replica failed (%s): reading the primary, retrying the replica every %g s",
                _reason(exc),
                DOWN_RETRY_SECONDS,
                extra={"operation": "replica.read"},
            )

    def _answered(self) -> None:
        if self._down:
            self._down = False
            logger.info("read replica answers again", extra={"operation": "replica.read"})

    # health --------------------------------------------------------------------------------------------------
    async def health(self) -> HealthCheck:
        """``replica``: reachable and replaying, with its lag behind the primary in bytes and seconds;
        ``degraded`` when it is down, not a standby, or lags more than TOKEN_SYNC_LAG_DEGRADED_SECONDS."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS):
                async with self.engine.connect() as conn:
                    row = (await conn.execute(_STATUS)).one()
                flushed = await self._primary(lambda conn: conn.scalar(_PRIMARY_FLUSHED))
        except _HEALTH_ERRORS as exc:
            detail = f"unreachable ({_reason(exc)}); reads fall back to the primary; {self._counts()}"
            return HealthCheck("replica", "degraded", detail, _ms(started))
        in_recovery, replayed, replay_age = row
        if not in_recovery or replayed is None:
            detail = f"not a standby (not in recovery): it no longer follows the primary; {self._counts()}"
            return HealthCheck("replica", "degraded", detail, _ms(started))
        assert isinstance(flushed, str)
        lag_bytes = max(0, parse_lsn(flushed) - parse_lsn(replayed))
        # The last replayed commit's age is the lag only while something is left to replay (idle: no lag).
        lag_seconds = float(replay_age or 0.0) if lag_bytes else 0.0
        status: HealthStatus = "degraded" if lag_seconds > self.lag_limit_seconds else "ok"
        detail = (
            f"lag {lag_bytes} bytes, {lag_seconds:.1f} s (degraded above {self.lag_limit_seconds:g} s); "
            f"{self._counts()}"
        )
        return HealthCheck("replica", status, detail, _ms(started))

    def _counts(self) -> str:
        s = self.stats
        return f"{s.reads} reads served, {s.lag_fallbacks} fell back on lag, {s.down_fallbacks} on failure"


def replica_for(settings: Settings, primary: Runner) -> ReplicaReader | None:
    """The replica reader ``DATABASE_READ_URL`` asks for, None without one."""
    url = parse_read_url(settings)
    return None if url is None else ReplicaReader(url, settings, primary)


def _reason(exc: BaseException) -> str:
    """What went wrong, safe to log: tokenbank messages carry no secrets, driver messages may hold a URL."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    translated = _translate.SQL_ERRORS.translate(exc)
    return f"{translated.code}: {translated.message}"


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
