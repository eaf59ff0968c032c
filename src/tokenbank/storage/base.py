"""The storage interface every backend implements, and the records it speaks (base-unit ints, enums).

Each write is ONE call to :meth:`Storage.apply`, which the store makes atomic in its own way (one SQL
transaction or stored-function call; one Lua script). The facade owns validation and the public models.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from tokenbank.errors import StorageError
from tokenbank.status import Status
from tokenbank.storage._translate import DriverErrors
from tokenbank.storage.batching import WriteBatcher

if TYPE_CHECKING:
    from tokenbank.settings import Settings

T = TypeVar("T")


class OpKind(StrEnum):
    TRANSFER = "transfer"
    MINT = "mint"
    BURN = "burn"
    HOLD = "hold"
    CAPTURE = "capture"
    VOID = "void"
    REVERSE = "reversal"
    GRANT = "grant"
    EXPIRE = "expire"


@dataclass(frozen=True, slots=True)
class WriteOp:
    """One ledger write. Which fields matter depends on ``kind``:

    transfer: from, to, amount; mint: to, amount; burn: from, amount; hold: from, to, amount, hold_id,
    expires_at; capture: hold_id, amount (None = all); void: hold_id; reversal: reverses_id; grant: to, amount,
    from (None: minted from supply), expires_at, available_at, category (the new lot's id is ``tx_id``); expire:
    lot_id, from (the lot's owner), to (the breakage account).
    """

    kind: OpKind
    tx_id: str
    from_user_id: str | None = None
    to_user_id: str | None = None
    amount: int | None = None
    idempotency_key: str | None = None
    fingerprint: str | None = None
    metadata: str | None = None
    reason: str | None = None
    hold_id: str | None = None
    expires_at: datetime | None = None
    reverses_id: str | None = None
    timestamp: datetime | None = None
    audit_action: str | None = None
    available_at: datetime | None = None
    category: str | None = None
    lot_id: str | None = None


LotMoves = tuple[tuple[str, int], ...]
"""What a transaction did to lots, in order: ``(lot_id, units)``, positive when taken from the lot (a debit, a
hold's reservation, an expiry), negative when given back to it (a void, a reversal)."""


@dataclass(frozen=True, slots=True)
class TxRecord:
    seq: int
    id: str
    type: str
    from_user_id: str | None
    to_user_id: str | None
    amount: int
    timestamp: datetime
    metadata: str | None = None
    idempotency_key: str | None = None
    reason: str | None = None
    hold_id: str | None = None
    reverses_id: str | None = None
    from_balance_after: int | None = None
    to_balance_after: int | None = None
    lots: LotMoves = ()
    expires_at: datetime | None = None
    """A grant's lot: when it expires (None: never)."""
    available_at: datetime | None = None
    """A grant's lot: when it becomes spendable (None: at once)."""
    category: str | None = None
    """A grant's lot: its category (None: none)."""


@dataclass(frozen=True, slots=True)
class LotRecord:
    """One credit lot as a store keeps it: granted ``amount``, ``remaining`` now (what debits, holds and expiry
    have not taken), spendable from ``available_at`` (None: at once) until ``expires_at`` (None: never)."""

    id: str
    user_id: str
    amount: int
    remaining: int
    expires_at: datetime | None
    available_at: datetime | None
    category: str | None
    created_at: datetime

    def spendable_at(self, now: datetime) -> bool:
        return (self.available_at is None or self.available_at <= now) and (
            self.expires_at is None or self.expires_at > now
        )


@dataclass(frozen=True, slots=True)
class HoldRecord:
    id: str
    from_user_id: str
    to_user_id: str
    amount: int
    captured_amount: int
    status: str
    expires_at: datetime
    created_at: datetime
    metadata: str | None = None


@dataclass(frozen=True, slots=True)
class ControlsRecord:
    """An account's controls as a store keeps them (amounts in base units, times in UTC). A store enforces them
    inside the write itself: a frozen direction, a closed account, the maximum balance, the spend per window."""

    debits_frozen: bool = False
    credits_frozen: bool = False
    frozen_until: datetime | None = None
    """The freeze ends at this time by itself (None: until unfrozen)."""
    freeze_reason: str | None = None
    closed: bool = False
    max_balance: int | None = None
    window_amount: int | None = None
    window_seconds: int | None = None
    overdraft: int | None = None
    """How far below zero debits may take the balance (None: not at all, as for every other account)."""
    window_spent: int = 0
    """Read only: what the counted debits of the current window add up to (ignored when written)."""

    def to_json(self, user_id: str) -> str:
        """The one encoding of an account's controls: Redis's ``ctrl`` hash holds it (ops.lua reads it), and the
        audit entry of a change carries it (hybrid mode's sync copies changes to PostgreSQL from there). Only the
        controls the account has appear: ``df``/``cf`` debits/credits frozen, ``until`` (microseconds since the
        epoch), ``reason``, ``closed``, ``max`` (maximum balance), ``wa``/``ws`` (spend window amount, seconds);
        ``od`` (overdraft); amounts are decimal strings of base units."""
        fields: dict[str, object] = {"user_id": user_id}
        if self.debits_frozen:
            fields["df"] = True
        if self.credits_frozen:
            fields["cf"] = True
        if self.frozen_until is not None:
            fields["until"] = str(_micros(self.frozen_until))
        if self.freeze_reason is not None:
            fields["reason"] = self.freeze_reason
        if self.closed:
            fields["closed"] = True
        if self.max_balance is not None:
            fields["max"] = str(self.max_balance)
        if self.window_amount is not None and self.window_seconds is not None:
            fields["wa"], fields["ws"] = str(self.window_amount), self.window_seconds
        if self.overdraft is not None:
            fields["od"] = str(self.overdraft)
        return json.dumps(fields, ensure_ascii=False, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, window_spent: int = 0) -> tuple[str, ControlsRecord]:
        """(user id, controls) of :meth:`to_json`'s text."""
        d = json.loads(text)
        until = d.get("until")
        return d["user_id"], cls(
            debits_frozen=bool(d.get("df")), credits_frozen=bool(d.get("cf")),
            frozen_until=None if until is None else _EPOCH + timedelta(microseconds=int(until)),
            freeze_reason=d.get("reason"), closed=bool(d.get("closed")),
            max_balance=None if d.get("max") is None else int(d["max"]),
            window_amount=None if d.get("wa") is None else int(d["wa"]),
            window_seconds=None if d.get("ws") is None else int(d["ws"]),
            overdraft=None if d.get("od") is None else int(d["od"]), window_spent=window_spent,
        )  # fmt: skip

    def merged(self, change: ControlsRecord, groups: Sequence[str]) -> ControlsRecord:
        """These controls with the ``groups`` of ``change`` (``freeze``, ``close``, ``limits``) in their place."""
        values = {name: getattr(self, name) for name in CONTROL_COLUMNS}
        for group in groups:
            values.update({name: getattr(change, name) for name in _CONTROL_GROUPS[group]})
        return ControlsRecord(**values)


_CONTROL_GROUPS = {
    "freeze": ("debits_frozen", "credits_frozen", "frozen_until", "freeze_reason"),
    "close": ("closed",),
    "limits": ("max_balance", "window_amount", "window_seconds", "overdraft"),
}
CONTROL_COLUMNS = tuple(name for names in _CONTROL_GROUPS.values() for name in names)
"""The stored controls of an account, in the order of the SQL table's columns (``window_spent`` is read only)."""
CONTROL_FIELDS = {"freeze": ("df", "cf", "until", "reason"), "close": ("closed",), "limits": ("max", "wa", "ws", "od")}
"""The JSON fields (:meth:`ControlsRecord.to_json`) of each group a change replaces."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: datetime) -> int:
    delta = moment.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


CONTROL_ACTIONS = {"freeze": "account.freeze", "unfreeze": "account.unfreeze", "close": "account.close",
                   "limits": "account.limits"}  # fmt: skip
"""The audit actions of control changes; their details are :meth:`ControlsRecord.to_json`."""


@dataclass(frozen=True, slots=True)
class OpResult:
    """Outcome of one WriteOp: a status, the transactions it wrote (or the replayed ones), its hold."""

    status: Status
    transactions: tuple[TxRecord, ...] = ()
    hold: HoldRecord | None = None


@dataclass(frozen=True, slots=True)
class TokenRecord:
    symbol: str
    name: str
    decimals: int
    emoji: str | None
    treasury_account: str
    initial_supply: int
    max_supply: int | None
    total_supply: int
    created_at: datetime
    leaderboard_exclude: tuple[str, ...] | None = None
    """Accounts left out of the leaderboard and circulating supply; None (also a token stored before this
    setting existed) means the treasury account alone, whichever account that is."""

    @property
    def excluded_accounts(self) -> tuple[str, ...]:
        return (self.treasury_account,) if self.leaderboard_exclude is None else self.leaderboard_exclude


TOKEN_SETTINGS = ("name", "emoji", "treasury_account", "max_supply", "leaderboard_exclude")
"""The token fields :meth:`Storage.update_token` may change (symbol, decimals and supplies never change)."""


def exclusions_to_text(accounts: Sequence[str] | None) -> str | None:
    """Leaderboard exclusions as stored (a JSON array; None stays None: the treasury alone)."""
    return None if accounts is None else json.dumps(list(accounts), ensure_ascii=False, separators=(",", ":"))


def exclusions_from_text(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(json.loads(text))


def configure_details(changes: Mapping[str, object]) -> str:
    """The details of a ``token.configure`` audit entry: each changed field with its new value (amounts in
    base units as strings, exclusions as a list, None for a removed value)."""
    details: dict[str, object] = {}
    for key, value in changes.items():
        if value is None or isinstance(value, str):
            details[key] = value
        elif isinstance(value, tuple | list):
            details[key] = list(value)
        else:
            details[key] = str(value)
    return json.dumps(details, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    action: str
    details: str
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class CheckRecord:
    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    user_id: str
    limit: int
    before_seq: int | None = None
    types: tuple[str, ...] | None = None
    since: datetime | None = None
    until: datetime | None = None


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
