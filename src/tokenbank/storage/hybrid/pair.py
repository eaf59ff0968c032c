"""The two stores of hybrid mode as the sync's maintenance code sees them (checks, reconcile, repair, rebuild).

Typed on this small protocol rather than on :class:`~tokenbank.storage.hybrid.backend.HybridStorage`, so that the
backend can call these modules without them importing it back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tokenbank.settings import Settings
    from tokenbank.storage.hybrid.status import SyncStatus
    from tokenbank.storage.redis.backend import RedisStorage
    from tokenbank.storage.sql.backend import SqlStorage


class StorePair(Protocol):
    """Redis (``redis``) serving writes and hot reads, PostgreSQL (``sql``) the ledger of record."""

    @property
    def settings(self) -> Settings: ...

    @property
    def redis(self) -> RedisStorage: ...

    @property
    def sql(self) -> SqlStorage: ...

    def sync_status(self) -> SyncStatus | None: ...
