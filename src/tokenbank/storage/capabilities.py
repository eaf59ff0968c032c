"""Capabilities a store may declare on top of :class:`~tokenbank.storage.base.Storage`.

A backend inherits the ones it offers; callers ask with ``isinstance`` and a store without one simply lacks the
feature. Nothing here is found by looking for attributes.

- :class:`HealthChecks`: the store adds its own checks to a health report (the hybrid store: sync lag).
- :class:`SqlLedgerAccess`: the ledger of record is SQL and reports may query it (``sql``; hybrid's PostgreSQL).
- :class:`SyncOperations`: two stores kept in step (hybrid): sync status, reconcile, rebuild the cache.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    from sqlalchemy import Connection

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


__all__ = ["HealthCheck", "HealthChecks", "HealthStatus", "SqlLedgerAccess", "SyncOperations"]
