"""Immutable result models returned by the public API (amounts as Decimal, times as aware UTC)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from tokenbank.amounts import AmountInput
from tokenbank.errors import TokenBankError


class TransactionType(StrEnum):
    TRANSFER = "transfer"
    MINT = "mint"
    BURN = "burn"
    HOLD = "hold"
    CAPTURE = "capture"
    VOID = "void"
    REVERSAL = "reversal"
    GRANT = "grant"
    EXPIRE = "expire"


class HoldStatus(StrEnum):
    PENDING = "pending"
    CAPTURED = "captured"
    VOIDED = "voided"


@dataclass(frozen=True, slots=True)
class TokenInfo:
    name: str
    symbol: str
    decimals: int
    emoji: str | None
    treasury_account: str
    initial_supply: Decimal
    max_supply: Decimal | None
    total_supply: Decimal
    created_at: datetime
    leaderboard_exclude: tuple[str, ...] = ()
    """Accounts left out of the leaderboard and circulating supply (by default the treasury)."""


@dataclass(frozen=True, slots=True)
class SettingDrift:
    """A setting that disagrees with the stored token and was therefore ignored: the stored value is the truth
    (change it with ``TokenBank.configure_token`` or ``tokenbank token configure``)."""

    field: str
    """The ``Settings`` field, e.g. ``max_supply``."""
    variable: str
    """Its environment variable, e.g. ``TOKEN_MAX_SUPPLY``."""
    configured: str
    """What the settings say, as text (``none`` for no value)."""
    stored: str
    """What the stored token says, as text."""

    def describe(self) -> str:
        return f"{self.variable}: settings say {self.configured}, the stored token says {self.stored}"


@dataclass(frozen=True, slots=True)
class LotMove:
    """One lot a transaction touched: ``amount`` taken from it (positive) or given back to it (negative)."""

    lot_id: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Lot:
    """A credit lot: what is left (``amount``) of what a grant gave (``granted``), spendable from
    ``available_at`` (None: at once) until ``expires_at`` (None: never)."""

    id: str
    user_id: str
    amount: Decimal
    granted: Decimal
    expires_at: datetime | None
    available_at: datetime | None
    category: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class BalanceDetail:
    """Where an account's tokens stand now: ``available`` (spendable), ``held`` (reserved by pending holds and
    stakes), ``pending`` (lots not yet available), ``expired`` (lots past their expiry that the sweep has not moved
    to the breakage account yet); ``expiring`` the lots with an expiry, soonest first, and ``lots`` every lot
    with something left, in spend order. available + pending + expired is the account's balance."""

    user_id: str
    available: Decimal
    held: Decimal
    pending: Decimal
    expired: Decimal
    expiring: list[Lot]
    lots: list[Lot]


@dataclass(frozen=True, slots=True)
class Vesting:
    """A schedule of maturing lots: ``amount`` granted to ``user_id`` in tranches becoming spendable every
    ``interval`` from ``start`` (none before ``cliff``) until ``start + duration``."""

    id: str
    user_id: str
    amount: Decimal
    start: datetime
    duration: timedelta
    cliff: timedelta
    interval: timedelta
    lots: list[Lot]
    replayed: bool = field(default=False, compare=False)


@dataclass(frozen=True, slots=True)
class Transaction:
    id: str
    seq: int
    type: TransactionType
    from_user_id: str | None
    to_user_id: str | None
    amount: Decimal
    timestamp: datetime
    metadata: dict[str, Any] | None = None
    idempotency_key: str | None = None
    reason: str | None = None
    hold_id: str | None = None
    reverses_id: str | None = None
    lot_moves: tuple[LotMove, ...] = ()
    """What the transaction took from credit lots (positive) or gave back to them (negative), in order."""
    expires_at: datetime | None = None
    """A grant's lot: when it expires (None: never, or not a grant)."""
    available_at: datetime | None = None
    """A grant's lot: when it becomes spendable (None: at once, or not a grant)."""
    category: str | None = None
    """A grant's lot: its category."""
    replayed: bool = field(default=False, compare=False)
    """True when this call was answered from an earlier write with the same idempotency key (nothing new
    was applied); set on what ``transfer``, ``mint``, ``burn``, ``reverse`` and ``transfer_many`` return."""

    @property
    def split_id(self) -> str | None:
        """The split this transaction is a leg of (``metadata["split_id"]``, set by ``transfer_split``), else None."""
        value = (self.metadata or {}).get("split_id")
        return value if isinstance(value, str) else None

    @property
    def exchange_id(self) -> str | None:
        """The exchange this transaction is a leg of (``metadata["exchange_id"]``, set by ``tokenbank.exchange``),
        else None."""
        value = (self.metadata or {}).get("exchange_id")
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class Exchange:
    """Two tokens changing hands at once (``tokenbank.exchange``): ``pay`` is the user's payment to the counterparty
    in one token, ``receive`` the counterparty's payment to the user in the other; both were written or neither.
    Each leg is a ``transfer`` whose metadata links it to the other (see docs/exchange.md)."""

    id: str
    pay_symbol: str
    pay: Transaction
    receive_symbol: str
    receive: Transaction
    replayed: bool = field(default=False, compare=False)
    """True when this call was answered from an earlier exchange with the same idempotency key."""


@dataclass(frozen=True, slots=True)
class TransactionPage:
    items: list[Transaction]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Holder:
    user_id: str
    balance: Decimal
    rank: int


@dataclass(frozen=True, slots=True)
class Hold:
    id: str
    from_user_id: str
    to_user_id: str
    amount: Decimal
    captured_amount: Decimal
    status: HoldStatus
    expires_at: datetime
    created_at: datetime
    metadata: dict[str, Any] | None = None
    replayed: bool = field(default=False, compare=False)
    """True when ``hold()`` was answered from an earlier hold with the same idempotency key."""


class StakeStatus(StrEnum):
    STAKED = "staked"
    RELEASED = "released"


@dataclass(frozen=True, slots=True)
class Stake:
    """Tokens locked by their owner until ``unlock_at``; :meth:`TokenBank.unstake` then gives them back with
    ``reward`` minted on top. While staked they are held out of the owner's balance (the stake is a hold for the
    staking pool that no capture, void or expiry sweep can end)."""

    id: str
    user_id: str
    amount: Decimal
    reward: Decimal
    unlock_at: datetime
    status: StakeStatus
    created_at: datetime
    metadata: dict[str, Any] | None = None
    replayed: bool = field(default=False, compare=False)
    """True when the call was answered from an earlier one (the same idempotency key, or an unstake made before)."""


@dataclass(frozen=True, slots=True)
class TransferRequest:
    """One item of :meth:`TokenBank.transfer_many`."""

    from_user_id: str
    to_user_id: str
    amount: AmountInput
    idempotency_key: str | None = None
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class TransferResult:
    """The outcome of one :class:`TransferRequest`: its transaction or its error."""

    request: TransferRequest
    transaction: Transaction | None = None
    error: TokenBankError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    action: str
    details: dict[str, Any]
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Result of :meth:`TokenBank.verify`: every invariant checked, with what was found."""

    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)


@dataclass(frozen=True, slots=True)
class Freeze:
    """A freeze in force: which directions it stops, why, and until when (None: until unfrozen)."""

    debits: bool
    credits: bool
    reason: str | None
    until: datetime | None


@dataclass(frozen=True, slots=True)
class SpendLimit:
    """At most ``amount`` spent (transfers, burns, holds) in any ``seconds`` long rolling window."""

    amount: Decimal
    seconds: int


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """One account: its balances and controls (:meth:`TokenBank.get_account`)."""

    user_id: str
    balance: Decimal
    """Spendable now."""
    held: Decimal
    """Reserved by pending holds."""
    frozen: Freeze | None
    """The freeze in force now (one whose ``until`` has passed is over: None)."""
    closed: bool
    max_balance: Decimal | None
    spend_limit: SpendLimit | None
    spent_in_window: Decimal
    """What the account's current window has spent (0 without a spend limit)."""
    overdraft: Decimal | None = None
    """How far below zero debits may take the balance (None: not at all)."""
