"""SqlStorage: the ledger on SQLite or PostgreSQL through SQLAlchemy 2 Core (async)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from tokenbank.errors import StorageError
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
    register_storage,
)
from tokenbank.storage.sql import reads, records, verify, writer_sqlite
from tokenbank.storage.sql.connection import create_engine, is_memory_sqlite
from tokenbank.storage.sql.migrate import upgrade_to_head
from tokenbank.storage.sql.schema import audit, tokens
from tokenbank.storage.status import Status

T = TypeVar("T")
_PG_APPLY = sa.text("SELECT tb_apply(:token, CAST(:ops AS jsonb), :atomic)")


class SqlStorage(Storage):
    """One token's ledger in a SQL database. PostgreSQL writes are one ``tb_apply`` call; SQLite writes are
    one ``BEGIN IMMEDIATE`` transaction, serialised in-process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.token = settings.symbol
        self.engine = create_engine(settings)
        self.dialect = self.engine.dialect.name
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        # PostgreSQL NOTIFY channel for balance events; the schema is part of it so isolated ledgers stay apart.
        self._channel = (
            f"tokenbank:{settings.database_schema or 'public'}:{self.token}" if settings.enable_notifications else None
        )
        self.stats = StoreStats()
        # SQLite allows one writer; waiting here is cheaper than SQLITE_BUSY retries. An in-memory database
        # has a single shared connection, so readers must queue behind writers too.
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None
        self._read_lock = self._write_lock if is_memory_sqlite(self.engine) else None

    @classmethod
    def from_settings(cls, settings: Settings) -> SqlStorage:
        return cls(settings)

    # lifecycle ---------------------------------------------------------------------------------------------
    async def open(self) -> None:
        async with _translate.translated():
            if self.dialect == "postgresql" and self.settings.database_schema:
                async with self.engine.begin() as conn:
                    await conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{self.settings.database_schema}"'))
            await upgrade_to_head(self.engine)

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> None:
        await self._read(lambda conn: conn.scalar(sa.text("SELECT 1")))

    # plumbing ----------------------------------------------------------------------------------------------
    def _lock(self, lock: asyncio.Lock | None) -> AbstractAsyncContextManager[Any]:
        return lock if lock is not None else nullcontext()

    async def _read(self, query: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        async with _translate.translated(), self._lock(self._read_lock), self.engine.connect() as conn:
            return await query(conn)

    @asynccontextmanager
    async def _write_tx(self) -> AsyncIterator[AsyncConnection]:
        async with self._lock(self._write_lock), self.engine.connect() as conn:
            conn = await conn.execution_options(tb_write=True)
            async with conn.begin():
                yield conn

    async def _with_retries(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work``, retrying (bounded, with jitter) on deadlocks, serialization failures and key races."""
        attempt = 0
        while True:
            try:
                async with _translate.translated():
                    return await work()
            except StorageError as exc:
                cause = exc.__cause__
                retryable = isinstance(cause, sa_exc.DBAPIError) and (
                    _translate.sqlstate(cause) in _translate.RETRYABLE_SQLSTATES
                )
                if not retryable or attempt >= self.settings.max_retries:
                    raise
                attempt += 1
                self.stats.retries += 1
                await asyncio.sleep(random.uniform(0, 0.002 * 2**attempt))

    # writes ------------------------------------------------------------------------------------------------
    async def create_token(self, token: TokenRecord, initial_mint: WriteOp | None) -> TokenRecord:
        async def work() -> TokenRecord:
            async with self._write_tx() as conn:
                existing = await reads.get_token(conn, self.token)
                if existing is not None:
                    return existing
                await conn.execute(
                    tokens.insert().values(
                        symbol=token.symbol, name=token.name, decimals=token.decimals, emoji=token.emoji,
                        treasury_account=token.treasury_account, initial_supply=token.initial_supply,
                        max_supply=token.max_supply, total_supply=0, created_at=token.created_at,
                    )
                )  # fmt: skip
                await conn.execute(
                    audit.insert().values(
                        token=self.token, action="token.initialize", created_at=token.created_at,
                        details=json.dumps({"name": token.name, "decimals": token.decimals,
                                            "initial_supply": str(token.initial_supply)}),
                    )
                )  # fmt: skip
                if initial_mint is not None:
                    [result] = await self._apply_on(conn, [initial_mint], atomic=True)
                    if not result.status.ok:
                        raise StorageError(f"initial mint failed: {result.status.name}")
                created = await reads.get_token(conn, self.token)
                assert created is not None
                return created

        return await self._with_retries(work)

    async def update_token(self, changes: dict[str, object]) -> TokenRecord:
        async def work() -> TokenRecord:
            async with self._write_tx() as conn:
                await conn.execute(tokens.update().where(tokens.c.symbol == self.token).values(**changes))
                await conn.execute(
                    audit.insert().values(
                        token=self.token, action="token.configure", created_at=sa.func.now(),
                        details=json.dumps({k: None if v is None else str(v) for k, v in changes.items()}),
                    )
                )  # fmt: skip
                updated = await reads.get_token(conn, self.token)
                assert updated is not None
                return updated

        return await self._with_retries(work)

    async def apply(self, ops: Sequence[WriteOp], *, atomic: bool = False) -> list[OpResult]:
        async def work() -> list[OpResult]:
            if self.dialect == "postgresql":
                # tb_apply is one statement, so autocommit makes a write exactly one round trip.
                async with self._autocommit.connect() as conn:
                    return await self._apply_on(conn, ops, atomic)
            try:
                async with self._write_tx() as conn:
                    return await self._apply_on(conn, ops, atomic)
            except writer_sqlite._Abort as abort:
                return writer_sqlite.aborted_results(len(ops), abort)

        return await self._with_retries(work)

    async def _apply_on(self, conn: AsyncConnection, ops: Sequence[WriteOp], atomic: bool) -> list[OpResult]:
        if self.dialect != "postgresql":
            return await writer_sqlite.apply_ops(conn, self.token, ops, atomic)
        payload = json.dumps([_op_json(op, self._channel) for op in ops], separators=(",", ":"))
        raw = await conn.scalar(_PG_APPLY, {"token": self.token, "ops": payload, "atomic": atomic})
        return [_result_from_json(item) for item in (json.loads(raw) if isinstance(raw, str) else raw)]

    async def append_audit(self, action: str, details: str) -> None:
        async def work() -> None:
            async with self._write_tx() as conn:
                await conn.execute(
                    audit.insert().values(token=self.token, action=action, details=details, created_at=sa.func.now())
                )

        await self._with_retries(work)

    async def listen(self, handler: Callable[[TxRecord], None]) -> Callable[[], Awaitable[None]] | None:
        """PostgreSQL: LISTEN on a dedicated asyncpg connection (events from every process). SQLite: None."""
        if self.dialect != "postgresql" or self._channel is None:
            return None
        import asyncpg

        dsn = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        async with _translate.translated():
            conn = await asyncpg.connect(dsn, timeout=10)

        def on_notify(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            handler(records.tx_from_row(json.loads(payload)))

        await conn.add_listener(self._channel, on_notify)

        async def stop() -> None:
            await conn.close()

        return stop

    # reads -------------------------------------------------------------------------------------------------
    async def get_token(self) -> TokenRecord | None:
        return await self._read(lambda conn: reads.get_token(conn, self.token))

    async def get_balances(self, user_ids: Sequence[str]) -> dict[str, int]:
        return await self._read(lambda conn: reads.get_balances(conn, self.token, user_ids))

    async def get_held(self, user_id: str) -> int:
        return await self._read(lambda conn: reads.get_held(conn, self.token, user_id))

    async def top_holders(self, limit: int, offset: int, exclude: Sequence[str]) -> list[tuple[str, int]]:
        return await self._read(lambda conn: reads.top_holders(conn, self.token, limit, offset, exclude))

    async def rank(self, user_id: str, exclude: Sequence[str]) -> int | None:
        return await self._read(lambda conn: reads.rank(conn, self.token, user_id, exclude))

    async def sum_balances(self, user_ids: Sequence[str]) -> int:
        return await self._read(lambda conn: reads.sum_balances(conn, self.token, user_ids))

    async def history(self, query: HistoryQuery) -> list[TxRecord]:
        return await self._read(lambda conn: reads.history(conn, self.token, query))

    async def get_transaction(self, tx_id: str) -> TxRecord | None:
        return await self._read(lambda conn: reads.get_transaction(conn, self.token, tx_id))

    async def get_hold(self, hold_id: str) -> HoldRecord | None:
        return await self._read(lambda conn: reads.get_hold(conn, self.token, hold_id))

    async def expired_holds(self, now: datetime, limit: int) -> list[str]:
        return await self._read(lambda conn: reads.expired_holds(conn, self.token, now, limit))

    async def balance_at(self, user_id: str, at: datetime) -> int:
        return await self._read(lambda conn: reads.balance_at(conn, self.token, user_id, at))

    async def audit_log(self, limit: int, before_id: int | None) -> list[AuditRecord]:
        return await self._read(lambda conn: reads.audit_log(conn, self.token, limit, before_id))

    async def verify(self) -> list[CheckRecord]:
        # One repeatable snapshot on PostgreSQL, so concurrent writes cannot make the sums disagree.
        async def checks(conn: AsyncConnection) -> list[CheckRecord]:
            if self.dialect == "postgresql":
                await conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
            return await verify.run_checks(conn, self.token)

        return await self._read(checks)


def _op_json(op: WriteOp, notify_channel: str | None) -> dict[str, Any]:
    """A WriteOp as the JSON object ``tb_apply`` reads (amounts as strings, absent fields left out)."""
    fields: dict[str, Any] = {
        "kind": op.kind.value,
        "id": op.tx_id,
        "from": op.from_user_id,
        "to": op.to_user_id,
        "amount": None if op.amount is None else str(op.amount),
        "key": op.idempotency_key,
        "hash": op.fingerprint,
        "meta": op.metadata,
        "reason": op.reason,
        "hold_id": op.hold_id,
        "expires_at": op.expires_at.isoformat() if op.expires_at else None,
        "reverses_id": op.reverses_id,
        "ts": op.timestamp.isoformat() if op.timestamp else None,
        "audit": op.audit_action,
        "notify": notify_channel,
    }
    if op.kind.value == "capture":
        from tokenbank.ids import new_id

        fields["id2"] = new_id()
    return {key: value for key, value in fields.items() if value is not None}


def _result_from_json(item: dict[str, Any]) -> OpResult:
    hold = item.get("h")
    return OpResult(
        status=Status(item["s"]),
        transactions=tuple(records.tx_from_row(tx) for tx in item.get("t") or ()),
        hold=records.hold_from_row(hold) if hold else None,
    )


@register_storage("sql")
def _sql_storage(settings: Settings) -> Storage:
    return SqlStorage(settings)
