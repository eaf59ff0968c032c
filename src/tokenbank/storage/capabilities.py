"""Capabilities a store may declare on top of :class:`~tokenbank.storage.base.Storage`.

A backend inherits the ones it offers; callers ask with ``isinstance`` and a store without one simply lacks the
feature. Nothing here is found by looking for attributes.

- :class:`HealthChecks`: the store adds its own checks to a health report (the hybrid store: sync lag).
- :class:`SqlLedgerAccess`: the ledger of record is SQL and reports may query it (``sql``; hybrid's PostgreSQL).
- :class:`SyncOperations`: two stores kept in step (hybrid): sync status, reconcile, rebuild the cache.
- :class:`ChainStore`: the journal's hash chain and signed checkpoints (every store; see docs/chain.md).
- :class:`ExchangeStore`: one op on this store's token and one on another token's store, in ONE atomic call
  (every store, when both tokens live in one database or one Redis ledger group; see docs/exchange.md).
- :class:`LotStore`: credit lots (grants that expire or mature), spent first-expiring-first by every debit
  inside the store's own write (see docs/lots.md).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy import Connection

    from tokenbank.chain.proofs import Checkpoint
    from tokenbank.storage.base import LotRecord, OpResult, Storage, TxRecord, WriteOp
    from tokenbank.storage.hybrid.reports import RebuildReport, ReconcileReport
    from tokenbank.storage.hybrid.status import SyncStatus

T = TypeVar("T")

HealthStatus = Literal["ok", "degraded", "down"]


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """One probe: its name, its status, a human-readable detail (never a secret) and how long it took."""

    name: str
    status: HealthStatus
    detail: str = ""
    latency_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "latency_ms": self.latency_ms}


class HealthChecks(ABC):
    """A store that contributes checks of its own to a health report, run once its ping answered."""

    @abstractmethod
    async def health_checks(self) -> Iterable[HealthCheck]:
        """The store's own checks; a failure that leaves the store serving is ``degraded``, not ``down``."""


class SqlLedgerAccess(ABC):
    """A store whose ledger of record is SQL, open to read-only reports (analytics, exports)."""

    token: str
    """The token symbol the ledger rows are keyed by."""

    @abstractmethod
    async def run_sync(self, fn: Callable[[Connection], T], *, write: bool = False) -> T:
        """Run synchronous SQLAlchemy Core code ``fn(connection)`` in one transaction on the SQL ledger.
        Raises StorageError / StorageUnavailableError."""

    async def run_report(self, fn: Callable[[Connection], T]) -> T:
        """A read-only ``fn(connection)`` that a read replica may serve (history, leaderboard, analytics), still
        seeing every write this store made; the ledger itself when there is no replica."""
        return await self.run_sync(fn)


class SyncOperations(ABC):
    """A store made of a fast store and a ledger of record kept in step by a sync (hybrid mode)."""

    @abstractmethod
    def sync_status(self) -> SyncStatus | None:
        """The in-process sync worker's figures, None when none runs in this process."""

    @abstractmethod
    async def reconcile(self, *, repair: bool = False) -> ReconcileReport:
        """Compare the two stores once the backlog is drained; ``repair`` fixes the fast store from the ledger of
        record. Raises StorageUnavailableError."""

    @abstractmethod
    async def rebuild_cache(self, *, force: bool = False) -> RebuildReport:
        """Rebuild the fast store from the ledger of record. Raises StorageError (refused), StorageUnavailableError."""


@dataclass(frozen=True, slots=True)
class ChainEntry:
    """One journal entry with its stored chain hash (None: not hashed yet, or older than the chain)."""

    tx: TxRecord
    hash: str | None


class ChainStore(ABC):
    """A store that keeps each journal entry's chain hash and the signed checkpoints over them."""

    chain_label: str = "chain"
    """The name of this store's chain check in a verify report."""

    @abstractmethod
    async def chain_seal(self, *, wait: float | None = None) -> None:
        """Hash every entry no write below can still change, in seq order (a store that hashes as it writes has
        nothing to do). ``wait``: at most this many seconds for writes in flight (None: the store's default).
        Raises StorageError / StorageUnavailableError."""

    @abstractmethod
    async def chain_entries(self, after_seq: int, limit: int) -> list[ChainEntry]:
        """Up to ``limit`` journal entries with seq above ``after_seq``, in seq order, hashed or not."""

    @abstractmethod
    async def chain_entry(self, tx_id: str) -> ChainEntry | None:
        """The journal entry with this transaction id."""

    @abstractmethod
    async def chain_checkpoints(self, after_seq: int, limit: int) -> list[Checkpoint]:
        """Up to ``limit`` stored checkpoints ending above ``after_seq``, in seq order."""

    @abstractmethod
    async def chain_last_checkpoint(self) -> Checkpoint | None: ...

    @abstractmethod
    async def chain_add_checkpoint(self, checkpoint: Checkpoint) -> bool:
        """Store a checkpoint that follows the last stored one; False (nothing stored) when another checkpoint
        was stored since ``checkpoint.previous_seq`` was read."""

    def chain_hashes_on_write(self) -> bool:
        """Whether every entry is hashed as it is written (then an unhashed entry after hashed ones is a break,
        not an entry the sealer has yet to reach)."""
        return False

    def chain_mirrors(self) -> list[ChainStore]:
        """Other copies of the chain that a verify report checks too (hybrid: PostgreSQL's)."""
        return []


class ExchangeStore(ABC):
    """A store that applies an op of its own token and an op of another token's store in one atomic call."""

    @abstractmethod
    def exchange_problem(self, other: Storage) -> str | None:
        """Why ``other`` cannot share one atomic call with this store (another kind of store, another database
        or Redis ledger group, the same token), or None when it can."""

    @abstractmethod
    async def apply_exchange(self, other: Storage, op: WriteOp, other_op: WriteOp) -> tuple[OpResult, OpResult]:
        """Apply ``op`` to this store's token and ``other_op`` to ``other``'s, both or neither, in one
        transaction or script, the tokens in the order of their symbols. A refused op reports its status and the
        other ``BATCH_ABORTED`` (when both would be refused, the first in that order reports). The caller has
        checked :meth:`exchange_problem`. Raises StorageError / StorageUnavailableError."""


__all__ = [
    "ChainEntry",
    "ChainStore",
    "ExchangeStore",
    "HealthCheck",
    "HealthChecks",
    "HealthStatus",
    "SqlLedgerAccess",
    "SyncOperations",
]


class LotStore(ABC):
    """A store that keeps credit lots: ``grant`` and ``expire`` ops, and every debit taking from the debited
    account's spendable lots (soonest expiry first, lots without expiry next, by lot id within a moment) before
    its plain balance, in the same atomic write. A lot is spendable from its ``available_at`` until its
    ``expires_at``; before and after, what is left of it is locked (counted in the balance, not spendable)."""

    @abstractmethod
    async def get_lots(self, user_id: str) -> list[LotRecord]:
        """The account's lots with something left, in spend order (soonest expiry first, then no expiry; by id)."""

    @abstractmethod
    async def expired_lots(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """``(lot_id, user_id)`` of up to ``limit`` lots expired at ``now`` with something left, soonest first."""

    @abstractmethod
    async def expiring_lots(self, after: datetime, until: datetime, limit: int) -> list[LotRecord]:
        """Up to ``limit`` lots with something left and ``after < expires_at <= until``, soonest expiry first,
        then by lot id (the ``lot.expiring`` warnings of the event pass)."""

    @abstractmethod
    async def spendable_balances(self, user_ids: Sequence[str], now: datetime) -> dict[str, int]:
        """Each account's balance less what its lots hold locked at ``now`` (not yet available, or expired)."""
