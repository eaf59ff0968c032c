"""HybridStorage: Redis serves every write and hot read; PostgreSQL, fed by the sync worker, is the ledger of record.

Writes are RedisStorage's Lua scripts unchanged, with the ledger stream never trimmed by them (the worker trims
what it has acknowledged). PostgreSQL holds the ``sql`` mode's own schema, so a ``sql`` bank on the same
database and symbol reads the same ledger once the backlog is drained. See docs/hybrid.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from tokenbank.chain.proofs import Checkpoint
from tokenbank.errors import ConfigurationError, InvalidRequestError, StorageError, StorageUnavailableError
from tokenbank.settings import Settings
from tokenbank.status import Status
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
    SyncOperations,
)
from tokenbank.storage.hybrid import checks, stream
from tokenbank.storage.hybrid.backfill import backfill_postgres
from tokenbank.storage.hybrid.chain import carry_hashes
from tokenbank.storage.hybrid.replicate import max_seq
from tokenbank.storage.hybrid.reports import RebuildReport, ReconcileReport
from tokenbank.storage.hybrid.status import SyncOptions, SyncStatus
from tokenbank.storage.hybrid.worker import SyncWorker
from tokenbank.storage.redis.backend import RedisStorage
from tokenbank.storage.redis.errors import translated
from tokenbank.storage.sql.backend import SqlStorage

T = TypeVar("T")

logger = logging.getLogger("tokenbank")

BALANCE_AT_WAIT = 5.0
"""Seconds balance_at waits for PostgreSQL to hold everything written before the call."""
STOP_WAIT = 5.0
"""Seconds close() gives the in-app worker to finish its batch before cancelling it (safe either way)."""


def check_database_url(settings: Settings) -> None:
    """Hybrid mode keeps its ledger of record in PostgreSQL; raises ConfigurationError naming DATABASE_URL."""
    try:
        backend = make_url(settings.database_url).get_backend_name()
    except ArgumentError:
        raise ConfigurationError("DATABASE_URL: not a valid database URL") from None
    if backend != "postgresql":
        raise ConfigurationError(
            f"DATABASE_URL: hybrid mode needs PostgreSQL as its ledger of record, not {backend!r} "
            "(use postgresql+asyncpg://...)"
        )


class HybridStorage(Storage, HealthChecks, SqlLedgerAccess, SyncOperations, ChainStore, ExchangeStore, LotStore):
    """Redis (``.redis``) for writes and hot reads, PostgreSQL (``.sql``) as the durable ledger of record.

    ``sync_options`` tune the in-app worker, started by :meth:`open` when ``settings.enable_synchronization`` and
    ``settings.background`` is ``inline`` (with ``none``, ``tokenbank worker`` syncs).
    """

    def __init__(self, settings: Settings, *, sync_options: SyncOptions | None = None) -> None:
        check_database_url(settings)
        self.settings = settings
        self.redis = RedisStorage(settings, stream_maxlen=None, history_retention=settings.history_retention)
        self.sql = SqlStorage(settings)
        self.sql.chain_label = "chain (PostgreSQL)"
        self.token = settings.symbol
        self.stats: StoreStats = self.redis.stats  # every write goes through Redis: its resends are ours
        self.sync_options = sync_options or SyncOptions(block_ms=250)
        self.worker: SyncWorker | None = None
        self._worker_task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    # lifecycle ---------------------------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect both stores, migrate PostgreSQL, backfill it from a Redis-only ledger if it lacks the token,
        and start the sync worker. Raises StorageUnavailableError if either store does not answer."""
        await self.redis.open()
        await self.sql.open()
        await backfill_postgres(self.redis, self.sql)
        floor = await max_seq(self.sql)
        if floor:
            await stream.fence_seq(self.redis.client, self.redis.keys, floor)
        await stream.ensure_group(self.redis.client, self.redis.keys)
        if self.settings.enable_synchronization and self.settings.background == "inline":
            self.start_worker()

    def start_worker(self, options: SyncOptions | None = None) -> SyncWorker:
        """Run the sync worker in this process, as an asyncio task (stopped by :meth:`close`)."""
        if self.worker is None:
            self.worker = SyncWorker(self.redis, self.sql, options or self.sync_options)
            self._stop = asyncio.Event()
            self._worker_task = asyncio.create_task(self.worker.run(self._stop), name="tokenbank-sync")
        return self.worker

    async def stop_worker(self) -> None:
        """Stop the in-app worker: at once if it is waiting for entries, else after its batch (bounded); then it
        writes what it had read and leaves the group. Cancelling mid-batch would be safe too (see worker.py)."""
        task, worker = self._worker_task, self.worker
        self._worker_task, self.worker = None, None
        if task is not None and worker is not None:
            self._stop.set()
            if worker.waiting:
                task.cancel()
            done, _ = await asyncio.wait({task}, timeout=STOP_WAIT)
            if not done:
                task.cancel()
                await asyncio.wait({task})
            if not task.cancelled() and task.exception() is not None:  # run() logs and retries; never expected
                logger.error("sync worker ended with %r", task.exception(), extra={"operation": "sync"})
            await worker.finish()
        if worker is not None:
            await worker.close()

    async def close(self) -> None:
        await self.stop_worker()
        await self.redis.close()
        await self.sql.close()

    async def ping(self) -> None:
        """Redis answers: the store serves (PostgreSQL being down only degrades it, see health_checks)."""
        await self.redis.ping()

    async def listen(self, handler: Callable[[TxRecord], None]) -> Callable[[], Awaitable[None]] | None:
        return await self.redis.listen(handler)

    # writes ------------------------------------------------------------------------------------------------
    async def create_token(self, token: TokenRecord, initial_mint: WriteOp | None) -> TokenRecord:
        """Create the token in PostgreSQL (row only, supply 0: the worker applies the initial mint from the
        stream) and then in Redis. Refuses to start a new ledger in Redis while PostgreSQL holds one: Redis lost
        its data, and ``tokenbank rebuild-cache`` must restore it first (raises StorageError)."""
        existing = await self.redis.get_token()
        if existing is not None:
            return existing
        if await max_seq(self.sql):
            raise StorageError(
                f"Redis has no ledger for token {self.settings.symbol} but PostgreSQL has one (Redis lost its "
                "data?): run `tokenbank rebuild-cache` to restore Redis from PostgreSQL"
            )
        await checks.ensure_postgres_token(self.sql, token)
        return await self.redis.create_token(token, initial_mint)

    async def update_token(self, changes: Mapping[str, object]) -> TokenRecord:
        """Changed in Redis with its audit entry (the cap checked there, where mints happen); the worker
        carries both to PostgreSQL."""
        return await self.redis.update_token(changes)

    async def apply(self, ops: Sequence[WriteOp], *, atomic: bool = False) -> list[OpResult]:
        return await self.redis.apply(ops, atomic=atomic)

    def exchange_problem(self, other: Storage) -> str | None:
        """Redis's rules (one ledger group), and one PostgreSQL ledger of record for both tokens."""
        if not isinstance(other, HybridStorage):
            return f"the banks use different kinds of store ({type(self).__name__}, {type(other).__name__})"
        return self.redis.exchange_problem(other.redis) or self.sql.exchange_problem(other.sql)

    async def apply_exchange(self, other: Storage, op: WriteOp, other_op: WriteOp) -> tuple[OpResult, OpResult]:
        """Redis's one script; each token's stream carries its own leg to PostgreSQL."""
        assert isinstance(other, HybridStorage)
        return await self.redis.apply_exchange(other.redis, op, other_op)

    async def append_audit(self, action: str, details: str) -> None:
        await self.redis.append_audit(action, details)

    # hot reads: Redis --------------------------------------------------------------------------------------
    async def get_token(self) -> TokenRecord | None:
        return await self.redis.get_token()

    async def get_balances(self, user_ids: Sequence[str]) -> dict[str, int]:
        return await self.redis.get_balances(user_ids)

    async def get_held(self, user_id: str) -> int:
        return await self.redis.get_held(user_id)

    async def get_lots(self, user_id: str) -> list[LotRecord]:
        return await self.redis.get_lots(user_id)

    async def expired_lots(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        return await self.redis.expired_lots(now, limit)

    async def expiring_lots(self, after: datetime, until: datetime, limit: int) -> list[LotRecord]:
        return await self.redis.expiring_lots(after, until, limit)

    async def spendable_balances(self, user_ids: Sequence[str], now: datetime) -> dict[str, int]:
        return await self.redis.spendable_balances(user_ids, now)

    async def top_holders(self, limit: int, offset: int, exclude: Sequence[str]) -> list[tuple[str, int]]:
        return await self.redis.top_holders(limit, offset, exclude)

    async def rank(self, user_id: str, exclude: Sequence[str]) -> int | None:
        return await self.redis.rank(user_id, exclude)

    async def sum_balances(self, user_ids: Sequence[str]) -> int:
        return await self.redis.sum_balances(user_ids)

    async def get_hold(self, hold_id: str) -> HoldRecord | None:
        return await self.redis.get_hold(hold_id)

    async def expired_holds(self, now: datetime, limit: int) -> list[str]:
        return await self.redis.expired_holds(now, limit)

    async def audit_log(self, limit: int, before_id: int | None) -> list[AuditRecord]:
        """From Redis, which keeps every audit entry (ids are Redis's; PostgreSQL numbers its copies itself)."""
        return await self.redis.audit_log(limit, before_id)

    # reads that reach the ledger of record -----------------------------------------------------------------
    async def history(self, query: HistoryQuery) -> list[TxRecord]:
        """Newest first from the account's Redis index; past what Redis keeps (the newest
        ``history_retention`` entries per account), the page continues from PostgreSQL. Cursors are seqs,
        identical in both stores, so one cursor walks across the boundary."""
        items = await self.redis.history(query)
        if len(items) >= query.limit or not await self._trimmed(query.user_id):
            return items
        before = items[-1].seq if items else query.before_seq
        rest = await self.sql.history(
            HistoryQuery(query.user_id, query.limit - len(items), before, query.types, query.since, query.until)
        )
        seen = {item.id for item in items}
        return [*items, *(tx for tx in rest if tx.id not in seen)]

    async def _trimmed(self, user_id: str) -> bool:
        async with translated():
            return bool(await self.redis.client.hexists(self.redis.keys.htrim, user_id))

    async def get_transaction(self, tx_id: str) -> TxRecord | None:
        found = await self.redis.get_transaction(tx_id)
        return found if found is not None else await self.sql.get_transaction(tx_id)

    async def balance_at(self, user_id: str, at: datetime) -> int:
        """From PostgreSQL, once it holds everything written before this call (bounded by BALANCE_AT_WAIT). If
        the sync is further behind than that, Redis answers where it still has the account's full history;
        otherwise StorageUnavailableError says PostgreSQL is behind."""
        client, keys = self.redis.client, self.redis.keys
        if await stream.wait_drained(client, keys, BALANCE_AT_WAIT):
            self.sql.expect_writes()  # a read replica must first replay what the sync (maybe elsewhere) wrote
            return await self.sql.balance_at(user_id, at)
        try:
            return await self.redis.balance_at(user_id, at)
        except InvalidRequestError:
            backlog = await stream.read_backlog(client, keys)
            raise StorageUnavailableError(
                f"PostgreSQL is {backlog.entries} entries ({backlog.lag_seconds:.1f} s) behind Redis and Redis no "
                f"longer has the full history of {user_id!r}: retry when the sync has caught up"
            ) from None

    # verification and health -------------------------------------------------------------------------------
    async def set_controls(
        self, user_id: str, change: ControlsRecord, groups: Sequence[str], action: str, now: datetime | None = None
    ) -> Status:
        """Redis enforces them; the change's audit entry carries it to PostgreSQL with the sync."""
        return await self.redis.set_controls(user_id, change, groups, action, now)

    async def get_controls(self, user_id: str, now: datetime) -> ControlsRecord | None:
        return await self.redis.get_controls(user_id, now)

    async def verify(self) -> list[CheckRecord]:
        """Each store's own invariants (names prefixed ``redis:`` / ``postgresql:``), then the two compared
        once PostgreSQL has caught up (supply, transaction count, quarantined conflicts)."""
        return await checks.verify_both(self)

    async def health_checks(self) -> list[HealthCheck]:
        """PostgreSQL reachability and the sync backlog and lag (and the read replica's, if one is configured);
        ``degraded`` past the thresholds."""
        return [*await checks.health(self), *await self.sql.health_checks()]

    # the ledger of record and the sync -----------------------------------------------------------------------
    async def run_sync(self, fn: Callable[[Connection], T], *, write: bool = False) -> T:
        """Reports read the ledger of record: PostgreSQL (see :meth:`SqlStorage.run_sync`)."""
        return await self.sql.run_sync(fn, write=write)

    async def run_report(self, fn: Callable[[Connection], T]) -> T:
        """Reports may come from PostgreSQL's read replica (see :meth:`SqlStorage.run_report`)."""
        return await self.sql.run_report(fn)

    def sync_status(self) -> SyncStatus | None:
        """The in-app worker's own figures (None when it does not run in this process)."""
        return self.worker.status if self.worker is not None else None

    async def reconcile(self, *, repair: bool = False) -> ReconcileReport:
        """Compare Redis with PostgreSQL account by account once the backlog is drained; ``repair`` fixes Redis
        from PostgreSQL (the store of record) with an audit entry. Raises StorageUnavailableError."""
        from tokenbank.storage.hybrid.reconcile import reconcile

        return await reconcile(self, repair=repair)

    async def rebuild_cache(self, *, force: bool = False) -> RebuildReport:
        """Rebuild Redis from PostgreSQL; refuses (StorageError) while Redis still holds the token unless
        ``force``. Raises StorageUnavailableError."""
        from tokenbank.storage.hybrid.rebuild import rebuild_cache

        return await rebuild_cache(self, force=force)

    # hash chain: given where the seq is given (Redis), copied to PostgreSQL's rows -------------------------------
    async def chain_seal(self, *, wait: float | None = None) -> None:
        """Seal Redis's chain, then give the rows the sync has copied to PostgreSQL the same hashes (the PostgreSQL
        chain check recomputes them from PostgreSQL's own rows, so a copy that differs is caught)."""
        await self.redis.chain_seal()
        await carry_hashes(self)

    async def chain_entries(self, after_seq: int, limit: int) -> list[ChainEntry]:
        return await self.redis.chain_entries(after_seq, limit)

    async def chain_entry(self, tx_id: str) -> ChainEntry | None:
        return await self.redis.chain_entry(tx_id)

    async def chain_checkpoints(self, after_seq: int, limit: int) -> list[Checkpoint]:
        return await self.redis.chain_checkpoints(after_seq, limit)

    async def chain_last_checkpoint(self) -> Checkpoint | None:
        return await self.redis.chain_last_checkpoint()

    async def chain_add_checkpoint(self, checkpoint: Checkpoint) -> bool:
        return await self.redis.chain_add_checkpoint(checkpoint)

    def chain_mirrors(self) -> list[ChainStore]:
        return [self.sql]


@register_storage("hybrid")
def _hybrid_storage(settings: Settings) -> Storage:
    return HybridStorage(settings)
