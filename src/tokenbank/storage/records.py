"""The records the storage interface speaks: plain frozen dataclasses of base-unit ints, UTC datetimes and enums,
with the few encodings every store shares (an account's controls, a token's settings) kept next to them so that
all stores write them alike. The facade turns them into the public models.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from tokenbank.status import Status


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
"""The token fields :meth:`~tokenbank.storage.base.Storage.update_token` may change (symbol, decimals and
supplies never change)."""


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
