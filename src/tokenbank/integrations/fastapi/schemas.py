"""Request and response bodies of the REST API (pydantic v2), so the OpenAPI schema says exactly what is accepted.

Amounts travel as JSON strings of plain decimals ("12.50"): a JSON number for an amount is refused (422), so no
client can lose precision through a float. Ids are 1-128 characters without control characters.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tokenbank import models
from tokenbank.health import HealthReport
from tokenbank.ids import MAX_ACCOUNT_ID_LENGTH, MAX_METADATA_BYTES, MAX_REASON_LENGTH
from tokenbank.models import HoldStatus, TransactionType
from tokenbank.operations import MAX_HOLD_SECONDS

AMOUNT_PATTERN = r"^[0-9]{1,20}(\.[0-9]{1,18})?$"
"""A positive plain decimal as text: no sign, exponent, separators or whitespace. Zero, too many fractional
digits for the token, or more than 2**63-1 base units are refused by the ledger (422 ``invalid_amount``)."""
SIGNED_AMOUNT_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]+$"
"""Ids are ordinary data (``:``, quotes, spaces, SQL...), only control characters are refused."""
MAX_BATCH = 1000

Amount = Annotated[
    str,
    Field(
        pattern=AMOUNT_PATTERN,
        max_length=39,
        description='Token amount as a decimal string, e.g. "12.50" (never a JSON number).',
        examples=["12.50"],
    ),
]
SignedAmount = Annotated[str, Field(pattern=SIGNED_AMOUNT_PATTERN, examples=["-12.50"])]
OutAmount = Annotated[str, Field(pattern=SIGNED_AMOUNT_PATTERN, examples=["1000.00"])]
AccountId = Annotated[
    str, Field(min_length=1, max_length=MAX_ACCOUNT_ID_LENGTH, pattern=ID_PATTERN, examples=["alice"])
]
Reason = Annotated[str, Field(max_length=MAX_REASON_LENGTH, pattern=r"^[^\x00]*$")]
Metadata = Annotated[
    dict[str, Any],
    Field(
        description=f"Any JSON object, at most {MAX_METADATA_BYTES} bytes as compact JSON.", examples=[{"order": 42}]
    ),
]


def amount_text(value: Decimal) -> str:
    """A Decimal as plain text, never in exponent notation (``Decimal('1E-18')`` -> ``'0.000000000000000001'``)."""
    return format(value, "f")


class _Request(BaseModel):
    # strict: "true" is not a bool and "60" not an int; forbid: a misspelt field is an error, not ignored.
    model_config = ConfigDict(strict=True, extra="forbid")


class TransferBody(_Request):
    from_user_id: AccountId
    to_user_id: AccountId
    amount: Amount
    metadata: Metadata | None = None
    reason: Reason | None = None


class BatchItem(_Request):
    from_user_id: AccountId
    to_user_id: AccountId
    amount: Amount
    idempotency_key: Annotated[str, Field(min_length=1, max_length=128)] | None = None
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
    to_user_id: AccountId
    amount: Amount
    expires_in_seconds: Annotated[int, Field(ge=1, le=MAX_HOLD_SECONDS)]
    metadata: Metadata | None = None
    reason: Reason | None = None


class CaptureBody(_Request):
    amount: Amount | None = Field(None, description="Part of the hold to pay out (default: all of it).")
    reason: Reason | None = None


class VoidBody(_Request):
    reason: Reason | None = None


class ReverseBody(_Request):
    reason: Annotated[str, Field(min_length=1, max_length=MAX_REASON_LENGTH, pattern=r"^[^\x00]+$")]
    metadata: Metadata | None = None


# responses -------------------------------------------------------------------------------------------------
class Error(BaseModel):
    """Every error answer: a stable machine-readable ``code`` and a human-readable ``message``."""

    code: str = Field(examples=["insufficient_balance"])
    message: str


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

    @classmethod
    def of(cls, tx: models.Transaction) -> Transaction:
        return cls(
            id=tx.id, seq=tx.seq, type=tx.type, from_user_id=tx.from_user_id, to_user_id=tx.to_user_id,
            amount=amount_text(tx.amount), timestamp=tx.timestamp, metadata=tx.metadata,
            idempotency_key=tx.idempotency_key, reason=tx.reason, hold_id=tx.hold_id, reverses_id=tx.reverses_id,
        )  # fmt: skip


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
