"""Request and response bodies of the REST API (pydantic v2), so the OpenAPI schema says exactly what is accepted.

Their field types are in :mod:`tokenbank.integrations.fastapi.field_types`; the request bodies are built for the
token's decimals (:func:`request_bodies`), so every amount the schema allows is one the ledger accepts. The models
stay in this one module: OpenAPI names a model after its module when two share a name. The field types defined
here before are re-exported (the ``X as X`` imports), so imports from this module keep working.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from tokenbank import models
from tokenbank.health import HealthReport
from tokenbank.ids import MAX_ACCOUNT_ID_LENGTH, MAX_IDEMPOTENCY_KEY_LENGTH, MAX_REASON_LENGTH
from tokenbank.integrations.fastapi.field_types import CURSOR_PATTERN as CURSOR_PATTERN
from tokenbank.integrations.fastapi.field_types import ID_PATTERN as ID_PATTERN
from tokenbank.integrations.fastapi.field_types import MAX_DECIMALS as MAX_DECIMALS
from tokenbank.integrations.fastapi.field_types import MAX_LOOKUP_ID_LENGTH as MAX_LOOKUP_ID_LENGTH
from tokenbank.integrations.fastapi.field_types import PERCENT_PATTERN as PERCENT_PATTERN
from tokenbank.integrations.fastapi.field_types import SIGNED_AMOUNT_PATTERN as SIGNED_AMOUNT_PATTERN
from tokenbank.integrations.fastapi.field_types import TIME_PATTERN as TIME_PATTERN
from tokenbank.integrations.fastapi.field_types import AccountId as AccountId
from tokenbank.integrations.fastapi.field_types import Amount as Amount
from tokenbank.integrations.fastapi.field_types import Metadata as Metadata
from tokenbank.integrations.fastapi.field_types import OutAmount as OutAmount
from tokenbank.integrations.fastapi.field_types import Reason as Reason
from tokenbank.integrations.fastapi.field_types import Receiver as Receiver
from tokenbank.integrations.fastapi.field_types import Share as Share
from tokenbank.integrations.fastapi.field_types import SignedAmount as SignedAmount
from tokenbank.integrations.fastapi.field_types import Time as Time
from tokenbank.integrations.fastapi.field_types import amount_pattern as amount_pattern
from tokenbank.integrations.fastapi.field_types import amount_rule as amount_rule
from tokenbank.integrations.fastapi.field_types import amount_text as amount_text
from tokenbank.integrations.fastapi.field_types import amount_type as amount_type
from tokenbank.integrations.fastapi.field_types import cursor_pattern as cursor_pattern
from tokenbank.integrations.fastapi.field_types import share_type as share_type
from tokenbank.integrations.fastapi.field_types import whole_float
from tokenbank.models import HoldStatus, TransactionType
from tokenbank.operations import MAX_HOLD_SECONDS
from tokenbank.services.accounts import MAX_WINDOW_SECONDS
from tokenbank.splits import MAX_LEGS as MAX_SPLIT_LEGS

MAX_BATCH = 1000


class _Request(BaseModel):
    # strict: "true" is not a bool and "60" not an int; forbid: a misspelt field is an error, not ignored.
    model_config = ConfigDict(strict=True, extra="forbid")


class TransferBody(_Request):
    from_user_id: AccountId
    to_user_id: Receiver
    amount: Amount
    metadata: Metadata | None = None
    reason: Reason | None = None


class BatchItem(_Request):
    from_user_id: AccountId
    to_user_id: Receiver
    amount: Amount
    idempotency_key: (
        Annotated[str, Field(min_length=1, max_length=MAX_IDEMPOTENCY_KEY_LENGTH, pattern=ID_PATTERN)] | None
    ) = None
    metadata: Metadata | None = None


class BatchBody(_Request):
    transfers: Annotated[list[BatchItem], Field(min_length=1, max_length=MAX_BATCH)]
    atomic: bool = Field(False, description="All or nothing (every item fails if one does).")


class MintBody(_Request):
    to_user_id: AccountId
    amount: Amount
    reason: Reason | None = None
    metadata: Metadata | None = None


class BurnBody(_Request):
    user_id: AccountId
    amount: Amount
    reason: Reason | None = None
    metadata: Metadata | None = None


class HoldBody(_Request):
    from_user_id: AccountId
    to_user_id: Receiver
    amount: Amount
    expires_in_seconds: Annotated[int, Field(ge=1, le=MAX_HOLD_SECONDS), BeforeValidator(whole_float)]
    metadata: Metadata | None = None
    reason: Reason | None = None


_CAPTURE_AMOUNT = "Part of the hold to pay out (default: all of it)."


class CaptureBody(_Request):
    amount: Amount | None = Field(None, description=_CAPTURE_AMOUNT)
    reason: Reason | None = None


class VoidBody(_Request):
    reason: Reason | None = None


class ReverseBody(_Request):
    reason: Annotated[str, Field(min_length=1, max_length=MAX_REASON_LENGTH, pattern=r"^[^\x00]+$")]
    metadata: Metadata | None = None


class FreezeBody(_Request):
    debits: bool = Field(True, description="Stop what the account sends: transfers, burns, holds (default).")
    credits: bool = Field(
        False, description="Stop what it receives: transfers, mints, captures. At least one of the two is true."
    )
    reason: Annotated[str, Field(min_length=1, max_length=MAX_REASON_LENGTH, pattern=r"^[^\x00]+$")]
    until: Time | None = Field(None, description="When the freeze ends by itself (in the future); null: at unfreeze.")


class SpendWindowBody(_Request):
    amount: Amount
    seconds: Annotated[int, Field(ge=1, le=MAX_WINDOW_SECONDS), BeforeValidator(whole_float)]


class LimitsBody(_Request):
    """The account's limits, replacing the ones it had (a limit left out or null: none)."""

    max_balance: Amount | None = Field(None, description="Credits that would take the balance above it are refused.")
    spend_per_window: SpendWindowBody | None = Field(
        None, description="At most `amount` spent (transfers, burns, holds) in any rolling `seconds` long window."
    )
    overdraft: Amount | None = Field(
        None, description="Debits may take the balance down to minus it (left out or null: not below zero)."
    )


class SplitLegBody(_Request):
    to_user_id: Annotated[
        str,
        Field(
            min_length=1, max_length=MAX_ACCOUNT_ID_LENGTH, pattern=ID_PATTERN, examples=["platform"],
            description="Differs from `from_user_id` and from every other leg's (422 `invalid_account`).",
        ),
    ]  # fmt: skip
    share: Share


_LEGS = (
    "Percentages add up to at most 100 and, with the fixed amounts, to at most `amount` (else 422 "
    "`invalid_amount` with `param` `legs`)."
)


class SplitBody(_Request):
    from_user_id: AccountId
    amount: Amount
    legs: Annotated[list[SplitLegBody], Field(min_length=1, max_length=MAX_SPLIT_LEGS, description=_LEGS)]
    remainder_to: AccountId | None = Field(
        None, description="Receives what the legs leave of `amount` (default: the first leg); not the sender."
    )
    metadata: Metadata | None = None
    reason: Reason | None = None


@dataclass(frozen=True)
class RequestBodies:
    """The request bodies with amounts in one token's decimals (subclasses of the classes above)."""

    transfer: type[TransferBody]
    batch: type[BatchBody]
    mint: type[MintBody]
    burn: type[BurnBody]
    hold: type[HoldBody]
    capture: type[CaptureBody]
    limits: type[LimitsBody]
    split: type[SplitBody]


@functools.cache
def request_bodies(decimals: int | None) -> RequestBodies:
    """The request bodies whose amount pattern allows exactly what a token with ``decimals`` accepts; the
    same classes for the same decimals (so one app's schema names each once)."""
    if decimals is None:
        return RequestBodies(TransferBody, BatchBody, MintBody, BurnBody, HoldBody, CaptureBody, LimitsBody, SplitBody)
    amount = amount_type(decimals)

    def derive(base: type[_Request], **fields: Any) -> Any:
        return create_model(base.__name__, __base__=base, __module__=__name__, **fields)

    item = derive(BatchItem, amount=(amount, ...))
    window = derive(SpendWindowBody, amount=(amount, ...))
    leg = derive(SplitLegBody, share=(share_type(decimals), ...))
    legs = Annotated[list[leg], Field(min_length=1, max_length=MAX_SPLIT_LEGS, description=_LEGS)]  # type: ignore[valid-type]
    transfers = Annotated[list[item], Field(min_length=1, max_length=MAX_BATCH)]  # type: ignore[valid-type]
    return RequestBodies(
        transfer=derive(TransferBody, amount=(amount, ...)),
        batch=derive(BatchBody, transfers=(transfers, ...)),
        mint=derive(MintBody, amount=(amount, ...)),
        burn=derive(BurnBody, amount=(amount, ...)),
        hold=derive(HoldBody, amount=(amount, ...)),
        capture=derive(CaptureBody, amount=(amount | None, Field(None, description=_CAPTURE_AMOUNT))),
        limits=derive(
            LimitsBody,
            max_balance=(amount | None, LimitsBody.model_fields["max_balance"]),
            spend_per_window=(window | None, LimitsBody.model_fields["spend_per_window"]),
            overdraft=(amount | None, LimitsBody.model_fields["overdraft"]),
        ),
        split=derive(SplitBody, amount=(amount, ...), legs=(legs, ...)),
    )


@functools.cache
def with_amounts(base: type[BaseModel], decimals: int | None, *names: str) -> type[BaseModel]:
    """``base`` with its amount fields ``names`` held to a token with ``decimals`` (``base`` itself without
    decimals); the same class for the same arguments, so one app's schema names it once."""
    if decimals is None:
        return base
    amount = amount_type(decimals)
    fields: dict[str, Any] = {}
    for name in names:  # a fresh field: the base's carries the generic amount's pattern
        field = base.model_fields[name]
        if field.is_required():
            fields[name] = (amount, Field(description=field.description))
        else:
            fields[name] = (amount | None, Field(field.default, description=field.description))
    return create_model(base.__name__, __base__=base, __module__=base.__module__, **fields)


# responses -------------------------------------------------------------------------------------------------
class Error(BaseModel):
    """Every error answer: a stable machine-readable ``code``, a human-readable ``message``, and the request
    field at fault in ``param`` (null when no single field is)."""

    code: str = Field(examples=["insufficient_balance"])
    message: str = Field(examples=["insufficient balance: 'alice' has 12.50 available, 30.00 requested"])
    param: str | None = Field(
        None,
        description="The request field at fault: a body field (`amount`, `to_user_id`; `transfers.2.amount` "
        "inside a batch), a path parameter (`hold_id`, `transaction_id`), `idempotency_key` for the "
        "Idempotency-Key header, or a query parameter; null when no single field is.",
        examples=["amount"],
    )


class Transaction(BaseModel):
    id: str
    seq: int
    type: TransactionType
    from_user_id: str | None
    to_user_id: str | None
    amount: OutAmount
    timestamp: datetime
    metadata: dict[str, Any] | None
    idempotency_key: str | None
    reason: str | None
    hold_id: str | None
    reverses_id: str | None
    lot_moves: list[LotMove] = Field(
        default_factory=list, description="Credit lots it took from (positive) or gave back to (negative)."
    )
    expires_at: datetime | None = Field(None, description="A grant's lot: when it expires.")
    available_at: datetime | None = Field(None, description="A grant's lot: when it becomes spendable.")
    category: str | None = Field(None, description="A grant's lot: its category.")

    @classmethod
    def of(cls, tx: models.Transaction) -> Transaction:
        return cls(
            id=tx.id, seq=tx.seq, type=tx.type, from_user_id=tx.from_user_id, to_user_id=tx.to_user_id,
            amount=amount_text(tx.amount), timestamp=tx.timestamp, metadata=tx.metadata,
            idempotency_key=tx.idempotency_key, reason=tx.reason, hold_id=tx.hold_id, reverses_id=tx.reverses_id,
            lot_moves=[LotMove(lot_id=m.lot_id, amount=amount_text(m.amount)) for m in tx.lot_moves],
            expires_at=tx.expires_at, available_at=tx.available_at, category=tx.category,
        )  # fmt: skip


class LotMove(BaseModel):
    lot_id: str
    amount: OutAmount


class Hold(BaseModel):
    id: str
    from_user_id: str
    to_user_id: str
    amount: OutAmount
    captured_amount: OutAmount
    status: HoldStatus
    expires_at: datetime
    created_at: datetime
    metadata: dict[str, Any] | None

    @classmethod
    def of(cls, hold: models.Hold) -> Hold:
        return cls(
            id=hold.id, from_user_id=hold.from_user_id, to_user_id=hold.to_user_id, amount=amount_text(hold.amount),
            captured_amount=amount_text(hold.captured_amount), status=hold.status, expires_at=hold.expires_at,
            created_at=hold.created_at, metadata=hold.metadata,
        )  # fmt: skip


class TokenInfo(BaseModel):
    name: str
    symbol: str
    decimals: int
    emoji: str | None
    treasury_account: str
    initial_supply: OutAmount
    max_supply: OutAmount | None
    total_supply: OutAmount
    circulating_supply: OutAmount
    created_at: datetime

    @classmethod
    def of(cls, info: models.TokenInfo, circulating: Decimal) -> TokenInfo:
        return cls(
            name=info.name, symbol=info.symbol, decimals=info.decimals, emoji=info.emoji,
            treasury_account=info.treasury_account, initial_supply=amount_text(info.initial_supply),
            max_supply=None if info.max_supply is None else amount_text(info.max_supply),
            total_supply=amount_text(info.total_supply), circulating_supply=amount_text(circulating),
            created_at=info.created_at,
        )  # fmt: skip


class Balance(BaseModel):
    user_id: str
    balance: OutAmount
    formatted: str | None = Field(None, description="Only with ?format=1: the balance as display text.")


class Rank(BaseModel):
    user_id: str
    rank: int | None = Field(description="1-based leaderboard position; null for excluded or empty accounts.")
    balance: OutAmount


class Holder(BaseModel):
    user_id: str
    balance: OutAmount
    rank: int

    @classmethod
    def of(cls, holder: models.Holder) -> Holder:
        return cls(user_id=holder.user_id, balance=amount_text(holder.balance), rank=holder.rank)


class TransactionPage(BaseModel):
    items: list[Transaction]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next (older) page; null at the end.")


class TransferResult(BaseModel):
    ok: bool
    transaction: Transaction | None = None
    error: Error | None = None


class BatchResult(BaseModel):
    results: list[TransferResult] = Field(description="One result per requested transfer, in order.")


class BatchAborted(BaseModel):
    """An atomic batch that applied nothing: the error, and every item's result (the failing item with its own
    error, the others with ``batch_aborted``)."""

    code: str = Field(examples=["batch_aborted"])
    message: str
    param: str | None = Field(None, description="The failing item's field, e.g. `transfers.1.amount`.")
    results: list[TransferResult] = Field(description="One result per requested transfer, in order.")


class Freeze(BaseModel):
    debits: bool
    credits: bool
    reason: str | None
    until: datetime | None = Field(description="When it ends by itself; null: at unfreeze.")


class SpendLimit(BaseModel):
    amount: OutAmount
    seconds: int


class Account(BaseModel):
    """One account's balances and controls."""

    user_id: str
    balance: OutAmount = Field(description="Spendable now.")
    held: OutAmount = Field(description="Reserved by pending holds.")
    frozen: Freeze | None = Field(description="The freeze in force; null when there is none.")
    closed: bool
    max_balance: OutAmount | None
    spend_limit: SpendLimit | None
    spent_in_window: OutAmount = Field(description="What the current spend window has spent (0 without a limit).")
    overdraft: OutAmount | None = Field(None, description="How far below zero debits may take the balance.")

    @classmethod
    def of(cls, info: models.AccountInfo) -> Account:
        frozen = info.frozen
        limit = info.spend_limit
        return cls(
            user_id=info.user_id, balance=amount_text(info.balance), held=amount_text(info.held),
            frozen=None if frozen is None else Freeze(
                debits=frozen.debits, credits=frozen.credits, reason=frozen.reason, until=frozen.until
            ),
            closed=info.closed, max_balance=None if info.max_balance is None else amount_text(info.max_balance),
            spend_limit=None if limit is None else SpendLimit(amount=amount_text(limit.amount), seconds=limit.seconds),
            spent_in_window=amount_text(info.spent_in_window),
            overdraft=None if info.overdraft is None else amount_text(info.overdraft),
        )  # fmt: skip


class HealthCheck(BaseModel):
    name: str
    status: Literal["ok", "degraded", "down"]
    detail: str
    latency_ms: float | None


class Health(BaseModel):
    status: Literal["ok", "degraded", "down"]
    checks: list[HealthCheck]

    @classmethod
    def of(cls, report: HealthReport) -> Health:
        checks = [
            HealthCheck(name=c.name, status=c.status, detail=c.detail, latency_ms=c.latency_ms) for c in report.checks
        ]
        return cls(status=report.status, checks=checks)


class BalanceEvent(BaseModel):
    """The ``data`` of one ``balance`` event on the events stream."""

    user_id: str
    balance: OutAmount | None
    change: SignedAmount
    transaction_id: str
    transaction_type: TransactionType
    timestamp: datetime
