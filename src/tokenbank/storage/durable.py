"""The durable-events capability of a store: the ledger feed, consumer cursors, worker leases, webhook endpoints
and deliveries, balance monitors and their state.

A store offers it by inheriting :class:`DurableEvents` and returning an :class:`EventState` (SQL tables on SQLite
and PostgreSQL, hybrid's PostgreSQL; hashes and sorted sets under the token's hash tag in Redis). Records speak
base-unit ints and JSON text, like the rest of the storage layer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from tokenbank.storage.base import TxRecord

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
"""Delivery states: waiting to be sent (or retried), acknowledged with a 2xx, dead-lettered after the retry window."""


@dataclass(frozen=True, slots=True)
class EndpointRecord:
    id: str
    url: str
    events: tuple[str, ...]
    secret: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One event for one endpoint. ``(seq, position)`` orders an endpoint's queue (position: the event's place
    among the events of one transaction)."""

    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    seq: int
    position: int
    payload: str
    status: str
    attempts: int
    created_at: datetime
    """When it was queued (or queued again by a redelivery): the retry window counts from here."""
    next_attempt_at: datetime | None = None
    last_attempt_at: datetime | None = None
    delivered_at: datetime | None = None
    response_status: int | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    delivery_id: str
    attempted_at: datetime
    response_status: int | None
    error: str | None
    duration_ms: int


@dataclass(frozen=True, slots=True)
class MonitorRecord:
    id: str
    user_id: str
    """An account id, or ``*`` for every account."""
    below: int | None
    above: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class MonitorStateRecord:
    monitor_id: str
    user_id: str
    zone: str
    """``below``, ``above`` or ``inside``: where the account's balance was when last seen."""
    seq: int


@dataclass(frozen=True, slots=True)
class MonitorEventRecord:
    id: int
    """Position in the token's list of monitor events (assigned by the store; 0 before it is stored)."""
    event_id: str
    monitor_id: str
    user_id: str
    seq: int
    payload: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class EventBatch:
    """What one pass over the feed produced, stored at once with the pass's cursor: the cursor never moves past
    a transaction whose deliveries, monitor states or monitor events were not stored."""

    cursor: str
    upto_seq: int
    deliveries: Sequence[DeliveryRecord] = ()
    states: Sequence[MonitorStateRecord] = ()
    monitor_events: Sequence[MonitorEventRecord] = ()


class EventState(ABC):
    """One token's durable event state in one store."""

    # the feed and its consumers ----------------------------------------------------------------------------
    @abstractmethod
    async def feed(self, after_seq: int, limit: int) -> list[TxRecord]:
        """Committed transactions with ``seq > after_seq`` in seq order, at most ``limit``; never one whose
        lower neighbour could still commit later. Raises FeedGapError when the store no longer holds the next
        transaction."""

    @abstractmethod
    async def get_cursor(self, name: str) -> int:
        """The consumer's last acknowledged seq (0 for a new consumer)."""

    @abstractmethod
    async def set_cursor(self, name: str, seq: int) -> None:
        """Acknowledge up to ``seq``; a cursor only moves forward."""

    @abstractmethod
    async def take_lease(self, name: str, owner: str, seconds: float) -> bool:
        """Take or renew the lease ``name`` for ``owner``; False while another owner holds it unexpired."""

    @abstractmethod
    async def release_lease(self, name: str, owner: str) -> None:
        """Give the lease back if ``owner`` still holds it."""

    # webhooks ---------------------------------------------------------------------------------------------
    @abstractmethod
    async def add_endpoint(self, endpoint: EndpointRecord) -> None: ...

    @abstractmethod
    async def list_endpoints(self) -> list[EndpointRecord]:
        """Every endpoint of the token, oldest first."""

    @abstractmethod
    async def remove_endpoint(self, endpoint_id: str) -> bool:
        """Remove it (its deliveries stay in the log); False if there is no such endpoint."""

    @abstractmethod
    async def record(self, batch: EventBatch) -> None:
        """Store a pass's deliveries (an existing (endpoint, event) pair is left as it is), monitor states and
        monitor events, and move its cursor, atomically."""

    @abstractmethod
    async def queue_head(self, endpoint_id: str) -> DeliveryRecord | None:
        """The endpoint's first pending delivery in event order (the only one that may be sent now)."""

    @abstractmethod
    async def update_delivery(self, delivery: DeliveryRecord, attempt: AttemptRecord | None = None) -> None:
        """Store the delivery's new state (pending again puts it back in its endpoint's queue) and append
        ``attempt`` to its log, atomically."""

    @abstractmethod
    async def get_delivery(self, delivery_id: str) -> DeliveryRecord | None: ...

    @abstractmethod
    async def list_deliveries(self, endpoint_id: str, *, failed: bool, limit: int) -> list[DeliveryRecord]:
        """The endpoint's deliveries, newest event first (``failed``: dead letters only)."""

    @abstractmethod
    async def attempts(self, delivery_id: str) -> list[AttemptRecord]:
        """The delivery's attempts, oldest first."""

    # monitors ---------------------------------------------------------------------------------------------
    @abstractmethod
    async def add_monitor(self, monitor: MonitorRecord) -> None: ...

    @abstractmethod
    async def list_monitors(self) -> list[MonitorRecord]: ...

    @abstractmethod
    async def remove_monitor(self, monitor_id: str) -> bool: ...

    @abstractmethod
    async def monitor_zones(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """The stored zone of each (monitor id, account) that has one."""

    @abstractmethod
    async def monitor_events(self, after_id: int, limit: int) -> list[MonitorEventRecord]:
        """Monitor events with ``id > after_id``, oldest first."""


class DurableEvents(ABC):
    """A store of another package that keeps durable event state of its own."""

    @abstractmethod
    def event_state(self) -> EventState:
        """This token's event state."""


def event_state_for(storage: object) -> EventState:
    """The event state of a store: its own if it declares :class:`DurableEvents`; the SQL ledger of record's for
    ``sql`` and hybrid stores; the token's Redis keys in redis mode. Raises ConfigurationError otherwise."""
    from tokenbank.errors import ConfigurationError
    from tokenbank.storage.capabilities import SqlLedgerAccess

    if isinstance(storage, DurableEvents):
        return storage.event_state()
    if isinstance(storage, SqlLedgerAccess):
        from tokenbank.storage.sql.event_state import SqlEventState

        return SqlEventState(storage.run_sync, storage.token)
    try:
        from tokenbank.storage.redis.backend import RedisStorage
    except ModuleNotFoundError:  # no redis package: the store cannot be a Redis store
        RedisStorage = None  # type: ignore[assignment,misc]
    if RedisStorage is not None and isinstance(storage, RedisStorage):
        from tokenbank.storage.redis.event_state import RedisEventState

        return RedisEventState(storage.client, storage.keys, storage.scripts)
    raise ConfigurationError(f"{type(storage).__name__} keeps no durable event state (no ledger feed)")


__all__ = [
    "DELIVERED",
    "FAILED",
    "PENDING",
    "AttemptRecord",
    "DeliveryRecord",
    "DurableEvents",
    "EndpointRecord",
    "EventBatch",
    "EventState",
    "MonitorEventRecord",
    "MonitorRecord",
    "MonitorStateRecord",
    "event_state_for",
]
