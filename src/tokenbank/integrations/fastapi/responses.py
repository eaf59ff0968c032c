"""Response models of the REST API (pydantic v2), so the OpenAPI schema says exactly what each answer holds.

Amounts are decimal strings (:data:`~tokenbank.integrations.fastapi.field_types.OutAmount`), never floats; each
model's ``of`` builds it from the ledger's own record. OpenAPI names each model after its class alone, so no other
model of the API may share a name with one of these.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field

from tokenbank import models
from tokenbank.health import HealthReport
from tokenbank.integrations.fastapi.field_types import OutAmount, SignedAmount, amount_text
from tokenbank.models import HoldStatus, TransactionType


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
