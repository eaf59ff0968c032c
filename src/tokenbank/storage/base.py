"""The storage interface every backend implements, and the registry of storage modes.

Each write is ONE call to :meth:`Storage.apply`, which the store makes atomic in its own way (one SQL
transaction or stored-function call; one Lua script). The facade owns validation and the public models. The
records it speaks are in :mod:`tokenbank.storage.records`.
"""

from __future__ import annotations

import asyncio
import importlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from tokenbank.errors import StorageError
from tokenbank.status import Status
from tokenbank.storage._translate import DriverErrors
from tokenbank.storage.batching import WriteBatcher

# The records are part of this module's storage contract, so they are importable from here too.
from tokenbank.storage.records import CONTROL_ACTIONS as CONTROL_ACTIONS
from tokenbank.storage.records import CONTROL_COLUMNS as CONTROL_COLUMNS
from tokenbank.storage.records import CONTROL_FIELDS as CONTROL_FIELDS
from tokenbank.storage.records import TOKEN_SETTINGS as TOKEN_SETTINGS
from tokenbank.storage.records import AuditRecord as AuditRecord
from tokenbank.storage.records import CheckRecord as CheckRecord
from tokenbank.storage.records import ControlsRecord as ControlsRecord
from tokenbank.storage.records import HistoryQuery as HistoryQuery
from tokenbank.storage.records import HoldRecord as HoldRecord
from tokenbank.storage.records import LotMoves as LotMoves
from tokenbank.storage.records import LotRecord as LotRecord
from tokenbank.storage.records import OpKind as OpKind
from tokenbank.storage.records import OpResult as OpResult
from tokenbank.storage.records import TokenRecord as TokenRecord
from tokenbank.storage.records import TxRecord as TxRecord
from tokenbank.storage.records import WriteOp as WriteOp
from tokenbank.storage.records import configure_details as configure_details
from tokenbank.storage.records import exclusions_from_text as exclusions_from_text
from tokenbank.storage.records import exclusions_to_text as exclusions_to_text

if TYPE_CHECKING:
    from tokenbank.settings import Settings

T = TypeVar("T")


@dataclass(slots=True)
class StoreStats:
    """Counters a store keeps about itself (retries after deadlocks, etc.), for metrics and tests."""

    retries: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class Storage(ABC):
    """A ledger store for ONE token (scoped by its symbol). All amounts are base-unit ints."""

    stats: StoreStats

    @abstractmethod
    async def open(self) -> None:
        """Connect and create or upgrade the schema. Raises StorageUnavailableError."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def ping(self) -> None:
        """Round trip to the store; raises StorageUnavailableError if it does not answer."""

    @abstractmethod
    async def create_token(self, token: TokenRecord, initial_mint: WriteOp | None) -> TokenRecord:
        """Create the token row and apply its initial mint atomically, or return the existing token."""

    @abstractmethod
    async def get_token(self) -> TokenRecord | None: ...

    @abstractmethod
    async def update_token(self, changes: Mapping[str, object]) -> TokenRecord:
        """Change token settings (keys of :data:`TOKEN_SETTINGS`; ``max_supply`` in base units or None,
        ``leaderboard_exclude`` a tuple or None) with one ``token.configure`` audit entry, atomically. Raises
        SupplyCapExceededError, changing nothing, if a new max supply is below the total supply at that moment
        (checked inside the same transaction or script as the change), TokenNotInitializedError without a
        token."""

    @abstractmethod
    async def get_balances(self, user_ids: Sequence[str]) -> dict[str, int]:
        """Spendable balance of each account (0 for unknown ones)."""

    @abstractmethod
    async def get_held(self, user_id: str) -> int:
        """Amount held out of the account by pending holds."""

    @abstractmethod
    async def top_holders(self, limit: int, offset: int, exclude: Sequence[str]) -> list[tuple[str, int]]:
        """Accounts with a positive balance, highest first, ties by account id."""

    @abstractmethod
    async def rank(self, user_id: str, exclude: Sequence[str]) -> int | None:
        """1-based leaderboard position, None for excluded or empty accounts."""

    @abstractmethod
    async def sum_balances(self, user_ids: Sequence[str]) -> int:
        """Balance plus held amount, summed over the given accounts (for circulating supply)."""

    @abstractmethod
    async def history(self, query: HistoryQuery) -> list[TxRecord]:
        """The account's transactions, newest first, with ``seq < before_seq``."""

    @abstractmethod
    async def get_transaction(self, tx_id: str) -> TxRecord | None: ...

    @abstractmethod
    async def get_hold(self, hold_id: str) -> HoldRecord | None: ...

    @abstractmethod
    async def expired_holds(self, now: datetime, limit: int) -> list[str]:
        """Ids of pending holds whose expiry is at or before ``now``."""

    @abstractmethod
    async def balance_at(self, user_id: str, at: datetime) -> int:
        """Spendable balance right after the last transaction at or before ``at``."""

    @abstractmethod
    async def audit_log(self, limit: int, before_id: int | None) -> list[AuditRecord]: ...

    @abstractmethod
    async def append_audit(self, action: str, details: str) -> None: ...

    @abstractmethod
    async def set_controls(
        self, user_id: str, change: ControlsRecord, groups: Sequence[str], action: str, now: datetime | None = None
    ) -> Status:
        """Replace the ``groups`` (``freeze``, ``close``, ``limits``) of the account's controls with ``change``'s,
        with an audit entry ``action`` holding the result, ordered with the account's writes. Refuses (nothing
        changed): ACCOUNT_CLOSED when it is closed already; ACCOUNT_NOT_EMPTY when the change closes an account
        that still has a balance or held funds; OVERDRAFT_IN_USE when it leaves the account owing more than its
        overdraft allows. ``now``: the bank's time when it has a clock of its own (None: the store's). A change of
        limits forgets the spends that left the account's window by then (all of them when the window is removed).
        """

    @abstractmethod
    async def get_controls(self, user_id: str, now: datetime) -> ControlsRecord | None:
        """The account's controls (None: it has none), with what its window ending at ``now`` has spent."""

    async def prune_spends(self, now: datetime) -> int:
        """Forget the spends that left their account's window; how many. Stores that prune as they write
        (Redis) have nothing to do here."""
        return 0

    @abstractmethod
    async def verify(self) -> list[CheckRecord]:
        """Check the ledger invariants inside the store; one record per check."""

    async def listen(self, handler: Callable[[TxRecord], None]) -> Callable[[], Awaitable[None]] | None:
        """Deliver every committed transaction of this token, written by ANY process, to ``handler``.

        Returns a coroutine function that stops listening, or None when the store cannot see other
        processes' writes (then the facade dispatches its own writes after commit).
        """
        return None

    # writes: one policy for every store (batching, bounded retries, error translation) --------------------
    driver_errors: ClassVar[DriverErrors]
    """The store's table at the error boundary: every call of :meth:`_retrying` runs inside it."""
    _batcher: WriteBatcher[Any] | None = None

    async def apply(self, ops: Sequence[WriteOp], *, atomic: bool = False) -> list[OpResult]:
        """Apply ops in order, one result each. ``atomic``: all succeed or none is applied.

        One store call (:meth:`_send`, then :meth:`_decode` its answer) through the error boundary, sent again
        as the store's :meth:`_retry_delay` allows. With batching on, concurrent non-atomic calls leave together
        as one store call (see storage/batching.py). Raises StorageError / StorageUnavailableError."""
        if self._batcher is not None:
            return await self._batcher.apply(ops, atomic)
        return self._decode(await self._send_retrying(ops, atomic))

    def _batch_writes(self, enabled: bool, *, max_in_flight: int, max_ops: int = 1000) -> None:
        """Turn natural batching on (or off); the store's constructor calls it once."""
        self._batcher = (
            WriteBatcher(self._send_retrying, self._decode, max_in_flight=max_in_flight, max_ops=max_ops)
            if enabled
            else None
        )

    async def _send_retrying(self, ops: Sequence[WriteOp], atomic: bool) -> Any:
        return await self._retrying(lambda: self._send(ops, atomic))

    async def _retrying(self, call: Callable[[], Awaitable[T]], *, resend: bool = True) -> T:
        """Run one store call inside the store's error boundary, again for as long as :meth:`_retry_delay` gives
        a delay. ``resend``: the call may go again after a failure that leaves unknown whether it took effect."""
        attempt = 0
        while True:
            try:
                async with self.driver_errors.translated():
                    return await call()
            except StorageError as exc:
                attempt += 1
                delay = await self._retry_delay(exc, attempt, resend=resend)
                if delay is None:
                    raise
                self.stats.retries += 1
                if delay > 0:
                    await asyncio.sleep(delay)

    async def _send(self, ops: Sequence[WriteOp], atomic: bool) -> Any:
        """Hook: one store call applying ``ops`` (``atomic``: all or none); returns the store's raw answer."""
        raise NotImplementedError

    def _decode(self, raw: Any) -> list[OpResult]:
        """Hook: the raw answer of :meth:`_send` as one result per op (client CPU only: it runs after the next
        batch has been sent)."""
        raise NotImplementedError

    async def _retry_delay(self, error: StorageError, attempt: int, *, resend: bool) -> float | None:
        """Hook: seconds to wait before sending a call that failed ``attempt`` times again, or None to raise
        ``error`` (the default: never retry)."""
        return None


StorageFactory = Callable[["Settings"], Storage]


@dataclass(slots=True)
class _Backend:
    module: str
    """Imported on first use, so a bank loads only its own store's dependencies; importing it registers the
    factory (with :func:`register_storage`)."""
    extra: str
    """What to install when the module's dependencies are missing."""
    factory: StorageFactory | None = None


_REGISTRY: dict[str, _Backend] = {
    "sql": _Backend("tokenbank.storage.sql.backend", "tokenbank"),
    "redis": _Backend("tokenbank.storage.redis.backend", "tokenbank[redis]"),
    "hybrid": _Backend("tokenbank.storage.hybrid.backend", "tokenbank[redis,postgres]"),
}
"""The one registry of storage modes: where each backend lives and, once imported, its factory."""


def register_storage(mode: str) -> Callable[[StorageFactory], StorageFactory]:
    """Register a factory for a storage mode (see :func:`storage_from_settings`)."""

    def decorator(factory: StorageFactory) -> StorageFactory:
        backend = _REGISTRY.setdefault(mode, _Backend(factory.__module__, "tokenbank"))
        backend.factory = factory
        return factory

    return decorator


def storage_from_settings(settings: Settings) -> Storage:
    """Build the store for ``settings.storage_mode``. Raises ConfigurationError for an unknown mode or a missing
    optional dependency (naming what to install)."""
    from tokenbank.errors import ConfigurationError

    mode = settings.storage_mode.value
    backend = _REGISTRY.get(mode)
    if backend is None:
        raise ConfigurationError(f"TOKEN_STORAGE_MODE: storage mode {mode!r} is not available")
    if backend.factory is None:
        try:
            importlib.import_module(backend.module)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("tokenbank"):
                raise ConfigurationError(f"TOKEN_STORAGE_MODE: storage mode {mode!r} is not available") from None
            raise ConfigurationError(
                f"TOKEN_STORAGE_MODE={mode} needs the {exc.name!r} package: pip install '{backend.extra}'"
            ) from None
    if backend.factory is None:
        raise ConfigurationError(f"TOKEN_STORAGE_MODE: storage mode {mode!r} is not available")
    return backend.factory(settings)
