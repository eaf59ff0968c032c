"""SqlStorage: the ledger on SQLite or PostgreSQL through SQLAlchemy 2 Core."""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from tokenbank.errors import StorageError, SupplyCapExceededError, error_for
from tokenbank.settings import Settings
from tokenbank.storage import _translate
from tokenbank.storage.base import (
    AuditRecord,
    CheckRecord,
    HistoryQuery,
    HoldRecord,
    OpResult,
    Storage,
    StoreStats,
    TokenRecord,
    TxRecord,
    WriteOp,
    configure_details,
    exclusions_to_text,
    register_storage,
)
from tokenbank.storage.capabilities import SqlLedgerAccess
from tokenbank.storage.sql import reads, verify, writer_sqlite
from tokenbank.storage.sql.connection import (
    SqliteThread,
    parse_url,
    postgres_dsn,
    postgres_engine,
    postgres_server_settings,
)
from tokenbank.storage.sql.migrate import upgrade_to_head
from tokenbank.storage.sql.schema import audit, tokens
from tokenbank.storage.status import Status
from tokenbank.storage.wire import SQL

if TYPE_CHECKING:
    from tokenbank.storage.sql.pg_writes import PgWritePool

T = TypeVar("T")
_PG_APPLY = sa.text("SELECT tb_apply(:token, CAST(:ops AS jsonb), :atomic)")


class SqlStorage(Storage, SqlLedgerAccess):
    """One token's ledger in a SQL database. PostgreSQL writes are one autocommit ``tb_apply`` call; SQLite
    work runs synchronously on the store's own thread, one transaction per operation (see connection.py)."""

    driver_errors = _translate.SQL_ERRORS

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.token = settings.symbol
        self.stats = StoreStats()
        url = parse_url(settings)
        self.dialect = url.get_backend_name()
        self._pg: AsyncEngine | None = None
        self._sqlite: SqliteThread | None = None
        self._pg_writes: PgWritePool | None = None
        if self.dialect == "postgresql":
            from tokenbank.storage.sql.pg_writes import PgWritePool

            self._pg = postgres_engine(url, settings)
            # tb_apply is one statement, so autocommit makes a write exactly one round trip.
            self._pg_writes = PgWritePool(postgres_dsn(url), postgres_server_settings(settings), settings.pool_size)
        else:
            self._sqlite = SqliteThread(url)
        # SQLite has one writer, so one batch in flight; PostgreSQL overlaps a few (accounts are locked in a
        # stable order inside tb_apply, so concurrent batches cannot deadlock).
        in_flight = settings.write_concurrency or (1 if self._sqlite is not None else 2)
        self._batch_writes(settings.batch_writes, max_in_flight=in_flight)
        # PostgreSQL NOTIFY channel for balance events; the schema is part of it so isolated ledgers stay apart.
        self._channel = (
            f"tokenbank:{settings.database_schema or 'public'}:{self.token}"
            if settings.enable_notifications and self._pg is not None
            else None
        )

    # lifecycle ---------------------------------------------------------------------------------------------
    async def open(self) -> None:
        schema = self.settings.database_schema
        await self._retrying(lambda: self.run_sync(lambda conn: upgrade_to_head(conn, schema), write=True))
        if self._pg_writes is not None:
            async with _translate.SQL_ERRORS.translated():
                await self._pg_writes.open()

    async def close(self) -> None:
        if self._pg is not None:
            await self._pg.dispose()
        if self._pg_writes is not None:
            await self._pg_writes.close()
        if self._sqlite is not None:
            await self._sqlite.close()

    async def ping(self) -> None:
        await self.run_sync(lambda conn: conn.scalar(sa.text("SELECT 1")))

    # plumbing ----------------------------------------------------------------------------------------------
    async def run_sync(self, fn: Callable[[Connection], T], *, write: bool = False) -> T:
        """Run synchronous SQLAlchemy Core code ``fn(connection)`` in one transaction on this store's database
        (SQLite: on the store's thread, ``BEGIN IMMEDIATE`` if ``write``; PostgreSQL: through the async pool).
        Driver errors come out as StorageError / StorageUnavailableError."""
        async with _translate.SQL_ERRORS.translated():
            if self._sqlite is not None:
                return await self._sqlite.run(fn, write=write)
            assert self._pg is not None
            async with self._pg.begin() as conn:
                return await conn.run_sync(fn)

    async def _retry_delay(self, error: StorageError, attempt: int, *, resend: bool) -> float | None:
        """Deadlocks, serialization failures and key races: retried (bounded, with jitter); the transaction
        was rolled back, so a retry is always safe."""
        cause = error.__cause__
        retryable = cause is not None and _translate.sqlstate(cause) in _translate.RETRYABLE_SQLSTATES
        if not retryable or attempt > self.settings.max_retries:
            return None
        return random.uniform(0, 0.002 * 2**attempt)

    # writes ------------------------------------------------------------------------------------------------
    async def create_token(self, token: TokenRecord, initial_mint: WriteOp | None) -> TokenRecord:
        def work(conn: Connection) -> TokenRecord:
            existing = reads.get_token(conn, self.token)
            if existing is not None:
                return existing
            conn.execute(
                tokens.insert().values(
                    symbol=token.symbol, name=token.name, decimals=token.decimals, emoji=token.emoji,
                    treasury_account=token.treasury_account, initial_supply=token.initial_supply,
                    max_supply=token.max_supply, total_supply=0, created_at=token.created_at,
                    leaderboard_exclude=exclusions_to_text(token.leaderboard_exclude),
                )
            )  # fmt: skip
            details = {"name": token.name, "decimals": token.decimals, "initial_supply": str(token.initial_supply)}
            _insert_audit(conn, self.token, "token.initialize", json.dumps(details), token.created_at)
            if initial_mint is not None:
                [result] = self._apply_sync(conn, [initial_mint], atomic=True)
                if not result.status.ok:
                    raise StorageError(f"initial mint failed: {result.status.name}")
            created = reads.get_token(conn, self.token)
            assert created is not None
            return created

        return await self._retrying(lambda: self.run_sync(work, write=True))

    async def update_token(self, changes: Mapping[str, object]) -> TokenRecord:
        def work(conn: Connection) -> TokenRecord:
            # The token row is locked (SQLite: the write transaction is) before the cap is compared with the
            # supply, and a mint locks the same row, so no mint can slip in between.
            query = sa.select(tokens.c.total_supply).where(tokens.c.symbol == self.token)
            total = conn.scalar(query.with_for_update() if self.dialect == "postgresql" else query)
            if total is None:
                raise error_for(Status.TOKEN_NOT_INITIALIZED, f"token {self.token}")
            cap = changes.get("max_supply")
            if isinstance(cap, int) and cap < total:
                raise SupplyCapExceededError(
                    f"max supply {cap} base units is below the total supply of {total} base units"
                )
            values = {
                key: exclusions_to_text(value) if key == "leaderboard_exclude" else value  # type: ignore[arg-type]
                for key, value in changes.items()
            }
            conn.execute(tokens.update().where(tokens.c.symbol == self.token).values(**values))
            _insert_audit(conn, self.token, "token.configure", configure_details(changes), datetime.now(UTC))
            updated = reads.get_token(conn, self.token)
            assert updated is not None
            return updated

        return await self._retrying(lambda: self.run_sync(work, write=True))

    async def _send(self, ops: Sequence[WriteOp], atomic: bool) -> str | list[OpResult]:
        """One store call: SQLite's results, or PostgreSQL's tb_apply answer as JSON text (see _decode)."""
        if self._sqlite is not None:
            return await self._apply_sqlite(ops, atomic)
        writes = self._pg_writes
        assert writes is not None
        return await writes.apply(self.token, self._pg_ops(ops), atomic)

    def _decode(self, raw: str | list[OpResult]) -> list[OpResult]:
        return raw if isinstance(raw, list) else SQL.results(raw)

    async def _apply_sqlite(self, ops: Sequence[WriteOp], atomic: bool) -> list[OpResult]:
        try:
            return await self.run_sync(lambda conn: writer_sqlite.apply_ops(conn, self.token, ops, atomic), write=True)
        except writer_sqlite.AtomicAbort as abort:  # the transaction was rolled back
            return writer_sqlite.aborted_results(len(ops), abort)

    def _pg_ops(self, ops: Sequence[WriteOp]) -> str:
        return SQL.ops(ops, self._channel)

    def _apply_sync(self, conn: Connection, ops: Sequence[WriteOp], atomic: bool) -> list[OpResult]:
        """Apply ops inside an open transaction (used by create_token)."""
        if self.dialect == "postgresql":
            params = {"token": self.token, "ops": self._pg_ops(ops), "atomic": atomic}
            return SQL.results(conn.scalar(_PG_APPLY, params))
        return writer_sqlite.apply_ops(conn, self.token, ops, atomic)

    async def append_audit(self, action: str, details: str) -> None:
        await self._retrying(
            lambda: self.run_sync(
                lambda conn: _insert_audit(conn, self.token, action, details, datetime.now(UTC)), write=True
            )
        )

    async def listen(self, handler: Callable[[TxRecord], None]) -> Callable[[], Awaitable[None]] | None:
        """PostgreSQL: LISTEN on a dedicated asyncpg connection (events from every process). SQLite: None."""
        if self._pg is None or self._channel is None:
            return None
        import asyncpg

        dsn = postgres_dsn(self._pg.url)
        async with _translate.SQL_ERRORS.translated():
            conn = await asyncpg.connect(dsn, timeout=10)

        def on_notify(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            handler(SQL.tx(payload))

        await conn.add_listener(self._channel, on_notify)

        async def stop() -> None:
            await conn.close()

        return stop

    # reads -------------------------------------------------------------------------------------------------
    async def get_token(self) -> TokenRecord | None:
        return await self.run_sync(lambda conn: reads.get_token(conn, self.token))

    async def get_balances(self, user_ids: Sequence[str]) -> dict[str, int]:
        return await self.run_sync(lambda conn: reads.get_balances(conn, self.token, user_ids))

    async def get_held(self, user_id: str) -> int:
        return await self.run_sync(lambda conn: reads.get_held(conn, self.token, user_id))

    async def top_holders(self, limit: int, offset: int, exclude: Sequence[str]) -> list[tuple[str, int]]:
        return await self.run_sync(lambda conn: reads.top_holders(conn, self.token, limit, offset, exclude))

    async def rank(self, user_id: str, exclude: Sequence[str]) -> int | None:
        return await self.run_sync(lambda conn: reads.rank(conn, self.token, user_id, exclude))

    async def sum_balances(self, user_ids: Sequence[str]) -> int:
        return await self.run_sync(lambda conn: reads.sum_balances(conn, self.token, user_ids))

    async def history(self, query: HistoryQuery) -> list[TxRecord]:
        return await self.run_sync(lambda conn: reads.history(conn, self.token, query))

    async def get_transaction(self, tx_id: str) -> TxRecord | None:
        return await self.run_sync(lambda conn: reads.get_transaction(conn, self.token, tx_id))

    async def get_hold(self, hold_id: str) -> HoldRecord | None:
        return await self.run_sync(lambda conn: reads.get_hold(conn, self.token, hold_id))

    async def expired_holds(self, now: datetime, limit: int) -> list[str]:
        return await self.run_sync(lambda conn: reads.expired_holds(conn, self.token, now, limit))

    async def balance_at(self, user_id: str, at: datetime) -> int:
        return await self.run_sync(lambda conn: reads.balance_at(conn, self.token, user_id, at))

    async def audit_log(self, limit: int, before_id: int | None) -> list[AuditRecord]:
        return await self.run_sync(lambda conn: reads.audit_log(conn, self.token, limit, before_id))

    async def verify(self) -> list[CheckRecord]:
        # One repeatable snapshot on PostgreSQL, so concurrent writes cannot make the sums disagree.
        def checks(conn: Connection) -> list[CheckRecord]:
            if self.dialect == "postgresql":
                conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
            return verify.run_checks(conn, self.token)

        return await self.run_sync(checks)


def _insert_audit(conn: Connection, token: str, action: str, details: str, at: datetime) -> None:
    conn.execute(audit.insert().values(token=token, action=action, details=details, created_at=at))


@register_storage("sql")
def _sql_storage(settings: Settings) -> Storage:
    return SqlStorage(settings)
