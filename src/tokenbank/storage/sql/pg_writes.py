"""PostgreSQL's side of SqlStorage (:class:`PgWriter`); its write path is ``tb_apply`` calls on a plain asyncpg pool.

Every write is one autocommit statement, so SQLAlchemy adds nothing to it but CPU: its execute path (greenlet
hand-off, compiled-statement setup, pool checkout) cost ≈0.6 ms of client CPU per call, as much as 16 batched
transfers' own Python work (docs/performance.md). Reads, migrations and ``create_token`` stay on SQLAlchemy.
Imported only for PostgreSQL, so SQLite-only installs need no asyncpg.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg
import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from tokenbank.errors import StorageUnavailableError
from tokenbank.settings import Settings
from tokenbank.status import Status
from tokenbank.storage import _translate
from tokenbank.storage.base import OpResult, TxRecord, WriteOp
from tokenbank.storage.sql.connection import postgres_dsn, postgres_engine, postgres_server_settings
from tokenbank.storage.sql.writer import SqlWriter
from tokenbank.storage.wire import SQL

T = TypeVar("T")

_APPLY = "SELECT tb_apply($1, $2::jsonb, $3)::text"


async def _no_reset(_conn: asyncpg.Connection) -> None:
    """tb_apply in autocommit leaves no session state; asyncpg's default reset would cost a round trip per call."""


class PgWritePool:
    """A lazily filled asyncpg pool (connections open on first use) sending ``tb_apply`` and returning its
    JSON answer as text. Driver errors come out as StorageError / StorageUnavailableError with the driver
    error as ``__cause__`` (its SQLSTATE decides retries)."""

    def __init__(self, dsn: str, server_settings: dict[str, str], size: int) -> None:
        self._dsn = dsn
        self._server_settings = server_settings
        self._size = size
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(
            self._dsn,
            min_size=0,
            max_size=self._size,
            reset=_no_reset,
            timeout=10,
            command_timeout=60,
            server_settings=self._server_settings,
        )

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def apply(self, token: str, ops_json: str, atomic: bool) -> str:
        if self._pool is None:
            raise StorageUnavailableError("the PostgreSQL write pool is closed")
        try:
            async with self._pool.acquire(timeout=10) as conn:
                answer = await conn.fetchval(_APPLY, token, ops_json, atomic)
        except asyncpg.InterfaceError as exc:  # e.g. the connection closed under the call
            raise StorageUnavailableError(f"database connection lost: {type(exc).__name__}") from exc
        except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
            raise _translate.SQL_ERRORS.translate(exc) from exc
        assert isinstance(answer, str)
        return answer

    async def apply_pair(self, first: tuple[str, str], second: tuple[str, str]) -> tuple[str, str | None]:
        """Two atomic ``tb_apply`` calls ``(token, ops_json)``, the second only if the first applied, in ONE
        transaction and one statement (three round trips with BEGIN and COMMIT), rolled back unless both
        applied. The answers (None: the second was not made)."""
        if self._pool is None:
            raise StorageUnavailableError("the PostgreSQL write pool is closed")
        answers: tuple[str, str | None] = ("", None)
        try:
            async with self._pool.acquire(timeout=10) as conn, conn.transaction():
                row = await conn.fetchrow(_APPLY_PAIR, *first, *second)
                assert row is not None
                answers = (row[0], row[1])
                if answers[1] is None or not all(r.status.ok for r in SQL.results(answers[1])):
                    raise _RollBack
        except _RollBack:
            pass
        except asyncpg.InterfaceError as exc:
            raise StorageUnavailableError(f"database connection lost: {type(exc).__name__}") from exc
        except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
            raise _translate.SQL_ERRORS.translate(exc) from exc
        return answers


_APPLY_PAIR = (
    "WITH a AS MATERIALIZED (SELECT tb_apply($1, $2::jsonb, true)::text AS r) "
    "SELECT a.r, CASE WHEN a.r::jsonb @? '$[*] ? (@.s > 1)' THEN NULL ELSE tb_apply($3, $4::jsonb, true)::text END "
    "FROM a"
)
"""Both legs of an exchange in one statement: the second token's call runs only when the first's applied."""


class _RollBack(Exception):
    """Leaves a transaction block so that it rolls back."""


def _encode(writer: SqlWriter, op: WriteOp) -> str:
    return writer.encode([op]) if isinstance(writer, PgWriter) else SQL.ops([op])


_PG_APPLY = sa.text("SELECT tb_apply(:token, CAST(:ops AS jsonb), :atomic)")


class PgWriter(SqlWriter):
    """PostgreSQL: SQLAlchemy's async pool for reads, migrations and token changes; writes through
    :class:`PgWritePool`, one autocommit ``tb_apply`` call (one round trip) per batch."""

    # Accounts are locked in a stable order inside tb_apply, so overlapping batches cannot deadlock.
    in_flight = 2

    def __init__(self, url: URL, settings: Settings) -> None:
        self.token = settings.symbol
        self._engine: AsyncEngine = postgres_engine(url, settings)
        self._writes = PgWritePool(postgres_dsn(url), postgres_server_settings(settings), settings.pool_size)
        # The NOTIFY channel of balance events; the schema is part of it so isolated ledgers stay apart.
        self._channel = (
            f"tokenbank:{settings.database_schema or 'public'}:{self.token}" if settings.enable_notifications else None
        )

    async def open(self) -> None:
        await self._writes.open()

    async def close(self) -> None:
        await self._engine.dispose()
        await self._writes.close()

    async def run(self, fn: Callable[[Connection], T], *, write: bool = False) -> T:
        async with self._engine.begin() as conn:
            return await conn.run_sync(fn)

    async def send(self, ops: Sequence[WriteOp], atomic: bool) -> str:
        return await self._writes.apply(self.token, SQL.ops(ops, self._channel), atomic)

    def decode(self, raw: str) -> list[OpResult]:
        return SQL.results(raw)

    async def apply_tokens(self, legs: Sequence[tuple[SqlWriter, WriteOp]]) -> list[OpResult]:
        (writer_a, op_a), (writer_b, op_b) = legs
        first, second = await self._writes.apply_pair(
            (writer_a.token, _encode(writer_a, op_a)), (writer_b.token, _encode(writer_b, op_b))
        )
        result_a = SQL.results(first)[0]
        result_b = None if second is None else SQL.results(second)[0]
        if result_b is None:
            return [result_a, OpResult(Status.BATCH_ABORTED)]
        if not result_b.status.ok:
            return [OpResult(Status.BATCH_ABORTED), result_b]
        return [result_a, result_b]

    def encode(self, ops: Sequence[WriteOp]) -> str:
        """Ops as ``tb_apply`` reads them, with this token's balance event channel."""
        return SQL.ops(ops, self._channel)

    def apply_in(self, conn: Connection, ops: Sequence[WriteOp], atomic: bool) -> list[OpResult]:
        params = {"token": self.token, "ops": SQL.ops(ops, self._channel), "atomic": atomic}
        return SQL.results(conn.scalar(_PG_APPLY, params))

    def lock_token_row(self, query: sa.Select[Any]) -> sa.Select[Any]:
        return query.with_for_update()

    def snapshot(self, conn: Connection) -> None:
        conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))

    async def listen(self, handler: Callable[[TxRecord], None]) -> Callable[[], Awaitable[None]] | None:
        """LISTEN on a dedicated asyncpg connection (events from every process)."""
        if self._channel is None:
            return None
        async with _translate.SQL_ERRORS.translated():
            conn = await asyncpg.connect(postgres_dsn(self._engine.url), timeout=10)

        def on_notify(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            handler(SQL.tx(payload))

        await conn.add_listener(self._channel, on_notify)

        async def stop() -> None:
            await conn.close()

        return stop
