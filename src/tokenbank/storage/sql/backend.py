"""SqlStorage: the ledger on SQLite or PostgreSQL through SQLAlchemy 2 Core."""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection

from tokenbank.chain.proofs import Checkpoint
from tokenbank.errors import StorageError, SupplyCapExceededError, error_for
from tokenbank.settings import Settings, StorageMode
from tokenbank.status import Status
from tokenbank.storage import _translate
from tokenbank.storage.base import (
    AuditRecord,
    CheckRecord,
    ControlsRecord,
    HistoryQuery,
    HoldRecord,
    LotRecord,
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
from tokenbank.storage.capabilities import (
    ChainEntry,
    ChainStore,
    ExchangeStore,
    HealthCheck,
    HealthChecks,
    LotStore,
    SqlLedgerAccess,
)
from tokenbank.storage.sql import chain, leaderboard, reads, verify
from tokenbank.storage.sql.connection import parse_url
from tokenbank.storage.sql.controls import prune_spends, read_controls, write_controls
from tokenbank.storage.sql.migrate import (
    current_revision,
    head_revision,
    prepare_schema,
    upgrade_sql,
    upgrade_to_head,
)
from tokenbank.storage.sql.replica import ReplicaReader, replica_for
from tokenbank.storage.sql.schema import audit, tokens
from tokenbank.storage.sql.writer import writer_for

T = TypeVar("T")


_CONFIGURE_HOT = sa.text("SELECT tb_hot_configure(:token, :account, :slices)")
_HOT_ACCOUNTS = sa.text("SELECT DISTINCT user_id FROM tb_account_shards WHERE token = :token")


class SqlStorage(Storage, SqlLedgerAccess, ChainStore, HealthChecks, ExchangeStore, LotStore):
    """One token's ledger in a SQL database. What differs between SQLite and PostgreSQL is the writer chosen
    when the store is built (see writer.py): PostgreSQL writes are one autocommit ``tb_apply`` call; SQLite work
    runs synchronously on the store's own thread, one transaction per operation (see connection.py)."""

    driver_errors = _translate.SQL_ERRORS

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.token = settings.symbol
        self.stats = StoreStats()
        self._writer = writer_for(settings)
        self.replica: ReplicaReader | None = replica_for(settings, self.run_sync)
        """The read replica (``DATABASE_READ_URL``) serving history, leaderboard, rank, balance_at and reports."""
        self._batch_writes(settings.batch_writes, max_in_flight=settings.write_concurrency or self._writer.in_flight)

    # lifecycle ---------------------------------------------------------------------------------------------
    async def open(self) -> None:
        schema, auto = self.settings.database_schema, self.settings.auto_migrate
        await self._retrying(
            lambda: self.run_sync(lambda conn: prepare_schema(conn, schema, auto_migrate=auto), write=True)
        )
        async with _translate.SQL_ERRORS.translated():
            await self._writer.open()
        hybrid = self.settings.storage_mode != StorageMode.SQL
        if (self.settings.hot_accounts or hybrid) and parse_url(self.settings).get_backend_name() == "postgresql":
            await self._retrying(lambda: self.run_sync(self._configure_hot_accounts, write=True))

    def _configure_hot_accounts(self, conn: Connection) -> None:
        """Each account of ``hot_accounts`` split into its slices (or joined back), in user_id order like every
        other lock taker; an account not named stays as it is (a process started without the setting, a CLI read,
        changes nothing). SQLite applies one write at a time, so nothing waits on a row there and the setting
        changes nothing. Under hybrid mode the sync worker writes balances into account rows, so accounts split
        earlier are joined back."""
        if self.settings.storage_mode == StorageMode.SQL:
            wanted = dict(self.settings.hot_accounts)
        else:
            wanted = dict.fromkeys(conn.scalars(_HOT_ACCOUNTS, {"token": self.token}).all(), 1)
        for account, slices in sorted(wanted.items()):
            conn.execute(_CONFIGURE_HOT, {"token": self.token, "account": account, "slices": slices})

    async def close(self) -> None:
        await self._writer.close()
        if self.replica is not None:
            await self.replica.close()

    async def migrate(self) -> tuple[str | None, str]:
        """Bring the schema to this release's head whatever ``auto_migrate`` says (``tokenbank migrate``), without
        opening the store; the revisions (before, head)."""
        schema = self.settings.database_schema
        before = await self.run_sync(current_revision)
        await self._retrying(lambda: self.run_sync(lambda conn: upgrade_to_head(conn, schema), write=True))
        return before, head_revision()

    async def pending_migration_sql(self) -> str:
        """The SQL :meth:`migrate` would run on this database now (empty at head), for a reviewed deploy."""
        current = await self.run_sync(current_revision)
        dialect = parse_url(self.settings).get_backend_name()
        sql = upgrade_sql(dialect, current)
        schema = self.settings.database_schema
        if sql and dialect == "postgresql" and schema:
            sql = f'CREATE SCHEMA IF NOT EXISTS "{schema}";\nSET search_path TO "{schema}";\n\n{sql}'
        return sql

    async def ping(self) -> None:
        await self.run_sync(lambda conn: conn.scalar(sa.text("SELECT 1")))

    # plumbing ----------------------------------------------------------------------------------------------
    async def run_sync(self, fn: Callable[[Connection], T], *, write: bool = False) -> T:
        """Run synchronous SQLAlchemy Core code ``fn(connection)`` in one transaction on this store's database
        (SQLite: on the store's thread, ``BEGIN IMMEDIATE`` if ``write``; PostgreSQL: through the async pool).
        Driver errors come out as StorageError / StorageUnavailableError."""
        async with _translate.SQL_ERRORS.translated():
            result = await self._writer.run(fn, write=write)
        if write and self.replica is not None:
            self.replica.note_write()
        return result

    async def run_report(self, fn: Callable[[Connection], T]) -> T:
        """A read the replica may serve (see replica.py); the primary without one."""
        if self.replica is None:
            return await self.run_sync(fn)
        return await self.replica.run(fn)

    def expect_writes(self) -> None:
        """Rows another process wrote (a sync worker) must be visible to the next replica read."""
        if self.replica is not None:
            self.replica.note_write()

    async def health_checks(self) -> list[HealthCheck]:
        """``replica`` when one is configured: reachable, and its lag behind the primary."""
        return [] if self.replica is None else [await self.replica.health()]

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
            reads.insert_token(conn, token)
            details = {"name": token.name, "decimals": token.decimals, "initial_supply": str(token.initial_supply)}
            _insert_audit(conn, self.token, "token.initialize", json.dumps(details), token.created_at)
            if initial_mint is not None:
                [result] = self._writer.apply_in(conn, [initial_mint], atomic=True)
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
            total = conn.scalar(self._writer.lock_token_row(query))
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

    async def _send(self, ops: Sequence[WriteOp], atomic: bool) -> Any:
        try:
            return await self._writer.send(ops, atomic)
        finally:  # even a failed call may have committed before its answer was lost
            if self.replica is not None:
                self.replica.note_write()

    def _decode(self, raw: Any) -> list[OpResult]:
        return self._writer.decode(raw)

    def exchange_problem(self, other: Storage) -> str | None:
        """Both tokens must be in one database: the same DATABASE_URL and TOKEN_DATABASE_SCHEMA (an in-memory
        SQLite database belongs to its bank alone)."""
        if not isinstance(other, SqlStorage):
            return f"the banks use different kinds of store ({type(self).__name__}, {type(other).__name__})"
        if other.token == self.token:
            return "both banks hold the same token"
        mine, theirs = self.settings, other.settings
        if (mine.database_url, mine.database_schema) != (theirs.database_url, theirs.database_schema):
            return "the banks are on different databases (DATABASE_URL and TOKEN_DATABASE_SCHEMA must be the same)"
        if parse_url(mine).get_backend_name() == "sqlite" and parse_url(mine).database in (None, "", ":memory:"):
            return "an in-memory SQLite database belongs to one bank; use a database file"
        return None

    async def apply_exchange(self, other: Storage, op: WriteOp, other_op: WriteOp) -> tuple[OpResult, OpResult]:
        """Both ops in one transaction on this store's connection. The tokens are written in the order of their
        symbols, so two exchanges in opposite directions lock rows in one order (no deadlock)."""
        assert isinstance(other, SqlStorage)
        legs = [(self._writer, op), (other._writer, other_op)]
        swap = other.token < self.token
        if swap:
            legs.reverse()
        try:
            results = await self._retrying(lambda: self._writer.apply_tokens(legs))
        finally:  # even a failed call may have committed before its answer was lost
            self.expect_writes()
            other.expect_writes()
        first, second = results
        return (second, first) if swap else (first, second)

    async def append_audit(self, action: str, details: str) -> None:
        await self._retrying(
            lambda: self.run_sync(
                lambda conn: _insert_audit(conn, self.token, action, details, datetime.now(UTC)), write=True
            )
        )

    async def listen(self, handler: Callable[[TxRecord], None]) -> Callable[[], Awaitable[None]] | None:
        """PostgreSQL: LISTEN NOTIFY (events from every process). SQLite: None."""
        return await self._writer.listen(handler)

    # reads -------------------------------------------------------------------------------------------------
    async def get_token(self) -> TokenRecord | None:
        return await self.run_sync(lambda conn: reads.get_token(conn, self.token))

    async def get_balances(self, user_ids: Sequence[str]) -> dict[str, int]:
        return await self.run_sync(lambda conn: reads.get_balances(conn, self.token, user_ids))

    async def get_held(self, user_id: str) -> int:
        return await self.run_sync(lambda conn: reads.get_held(conn, self.token, user_id))

    async def top_holders(self, limit: int, offset: int, exclude: Sequence[str]) -> list[tuple[str, int]]:
        return await self.run_report(lambda conn: leaderboard.top_holders(conn, self.token, limit, offset, exclude))

    async def rank(self, user_id: str, exclude: Sequence[str]) -> int | None:
        return await self.run_report(lambda conn: leaderboard.rank(conn, self.token, user_id, exclude))

    async def sum_balances(self, user_ids: Sequence[str]) -> int:
        return await self.run_sync(lambda conn: reads.sum_balances(conn, self.token, user_ids))

    async def history(self, query: HistoryQuery) -> list[TxRecord]:
        return await self.run_report(lambda conn: reads.history(conn, self.token, query))

    async def get_transaction(self, tx_id: str) -> TxRecord | None:
        return await self.run_sync(lambda conn: reads.get_transaction(conn, self.token, tx_id))

    async def get_hold(self, hold_id: str) -> HoldRecord | None:
        return await self.run_sync(lambda conn: reads.get_hold(conn, self.token, hold_id))

    async def expired_holds(self, now: datetime, limit: int) -> list[str]:
        return await self.run_sync(lambda conn: reads.expired_holds(conn, self.token, now, limit))

    async def balance_at(self, user_id: str, at: datetime) -> int:
        return await self.run_report(lambda conn: reads.balance_at(conn, self.token, user_id, at))

    async def audit_log(self, limit: int, before_id: int | None) -> list[AuditRecord]:
        return await self.run_sync(lambda conn: reads.audit_log(conn, self.token, limit, before_id))

    async def get_lots(self, user_id: str) -> list[LotRecord]:
        return await self.run_sync(lambda conn: reads.get_lots(conn, self.token, user_id))

    async def expired_lots(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        return await self.run_sync(lambda conn: reads.expired_lots(conn, self.token, now, limit))

    async def expiring_lots(self, after: datetime, until: datetime, limit: int) -> list[LotRecord]:
        return await self.run_sync(lambda conn: reads.expiring_lots(conn, self.token, after, until, limit))

    async def spendable_balances(self, user_ids: Sequence[str], now: datetime) -> dict[str, int]:
        return await self.run_sync(lambda conn: reads.spendable_balances(conn, self.token, user_ids, now))

    async def set_controls(
        self, user_id: str, change: ControlsRecord, groups: Sequence[str], action: str, now: datetime | None = None
    ) -> Status:
        at = now or datetime.now(UTC)
        return await self.run_sync(
            lambda conn: write_controls(conn, self.token, user_id, change, groups, action, at), write=True
        )

    async def prune_spends(self, now: datetime) -> int:
        return await self.run_sync(lambda conn: prune_spends(conn, self.token, now), write=True)

    async def get_controls(self, user_id: str, now: datetime) -> ControlsRecord | None:
        return await self.run_sync(lambda conn: read_controls(conn, self.token, user_id, now))

    async def verify(self) -> list[CheckRecord]:
        # One repeatable snapshot on PostgreSQL, so concurrent writes cannot make the sums disagree.
        def checks(conn: Connection) -> list[CheckRecord]:
            self._writer.snapshot(conn)
            return verify.run_checks(conn, self.token)

        return await self.run_sync(checks)

    # hash chain (sql/chain.py) -----------------------------------------------------------------------------
    async def chain_seal(self, *, wait: float | None = None) -> None:
        if self._writer.hashes_on_write:
            return
        timeout = chain.HORIZON_TIMEOUT if wait is None else wait
        upto = await self.run_sync(lambda conn: chain.horizon(conn, timeout=timeout))
        while await self.run_sync(lambda conn: chain.seal_upto(conn, self.token, upto), write=True):
            pass

    def chain_hashes_on_write(self) -> bool:
        return self._writer.hashes_on_write

    async def chain_entries(self, after_seq: int, limit: int) -> list[ChainEntry]:
        return await self.run_sync(lambda conn: chain.entries(conn, self.token, after_seq, limit))

    async def chain_entry(self, tx_id: str) -> ChainEntry | None:
        return await self.run_sync(lambda conn: chain.entry(conn, self.token, tx_id))

    async def chain_checkpoints(self, after_seq: int, limit: int) -> list[Checkpoint]:
        return await self.run_sync(lambda conn: chain.checkpoint_list(conn, self.token, after_seq, limit))

    async def chain_last_checkpoint(self) -> Checkpoint | None:
        return await self.run_sync(lambda conn: chain.last_checkpoint(conn, self.token))

    async def chain_add_checkpoint(self, checkpoint: Checkpoint) -> bool:
        return await self.run_sync(lambda conn: chain.add_checkpoint(conn, checkpoint), write=True)


def _insert_audit(conn: Connection, token: str, action: str, details: str, at: datetime) -> None:
    conn.execute(audit.insert().values(token=token, action=action, details=details, created_at=at))


@register_storage("sql")
def _sql_storage(settings: Settings) -> Storage:
    return SqlStorage(settings)
