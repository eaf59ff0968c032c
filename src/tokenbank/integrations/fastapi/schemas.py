"""Request and response bodies of the REST API (pydantic v2), so the OpenAPI schema says exactly what is accepted.

Amounts travel as JSON strings of plain decimals ("12.50"): a JSON number for an amount is refused (422), so no
client can lose precision through a float. The amount pattern is built for the token's decimals
(:func:`request_bodies`), so every amount the schema allows is one the ledger accepts.
"""

from __future__ import annotations

import base64
import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model
from pydantic_core import PydanticCustomError

from tokenbank import models
from tokenbank.health import HealthReport
from tokenbank.ids import MAX_ACCOUNT_ID_LENGTH, MAX_IDEMPOTENCY_KEY_LENGTH, MAX_METADATA_BYTES, MAX_REASON_LENGTH
from tokenbank.models import HoldStatus, TransactionType
from tokenbank.operations import MAX_HOLD_SECONDS
from tokenbank.services.accounts import MAX_WINDOW_SECONDS
from tokenbank.splits import MAX_LEGS as MAX_SPLIT_LEGS

MAX_DECIMALS = 18
MAX_LOOKUP_ID_LENGTH = 64
"""Transaction and hold ids are at most 64 characters (UUIDs, or the ids of an imported ledger)."""
SIGNED_AMOUNT_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]+$"
"""Ids are ordinary data (``:``, quotes, spaces, SQL...), only control characters are refused."""
MAX_BATCH = 1000


def amount_pattern(decimals: int | None) -> str:
    """The regular expression of the amounts a token with ``decimals`` accepts: positive, canonical (no leading
    zeros), at most ``decimals`` fractional digits, and below 9 * 10**18 base units (the ledger's limit is
    2**63 - 1, so every amount the pattern allows fits). ``None`` (decimals unknown): up to 19 whole and 18
    fractional digits; the ledger then refuses what exceeds the token's own decimals or range."""
    places = MAX_DECIMALS if decimals is None else decimals
    if decimals is None:
        whole = ["[1-9][0-9]{0,18}"]
    else:
        free = MAX_DECIMALS - decimals  # whole digits that can never overflow, whatever they are
        whole = [] if free == 0 else ["[1-9]" + _upto(free - 1)]
        whole.append("[1-8]" + (f"[0-9]{{{free}}}" if free else ""))  # one digit more, led by 1-8: < 9 * 10**18
    if places == 0:
        return f"^(?:{'|'.join(whole)})$"
    below_one = "|".join("0" * zeros + "[1-9]" + _upto(places - 1 - zeros) for zeros in range(places))
    return f"^(?:(?:{'|'.join(whole)})(?:\\.[0-9]{_upto(places - 1, 1)})?|0\\.(?:{below_one}))$"


def _upto(count: int, least: int = 0) -> str:
    """A repetition count of ``[0-9]`` (or of the preceding item with ``least``): ``least`` to ``count`` more."""
    if least:
        return "" if count == 0 else f"{{1,{count + 1}}}"
    return "" if count == 0 else "[0-9]?" if count == 1 else f"[0-9]{{0,{count}}}"


def amount_rule(decimals: int | None) -> str:
    """What an amount must be, in words (error messages and the schema's description)."""
    if decimals == 0:
        digits = "a whole number"
    elif decimals is None:
        digits = "at most as many fractional digits as the token's decimals"
    else:
        digits = f"at most {decimals} fractional digit{'s' if decimals > 1 else ''}"
    return (
        f'a positive decimal string like "{_example(decimals)}" with {digits}: no sign, exponent, leading zeros, '
        "separators or spaces, and a JSON string, not a number"
    )


def _example(decimals: int | None) -> str:
    return "12" if decimals == 0 else "12.5" if decimals == 1 else "12.50"


@functools.cache
def amount_type(decimals: int | None) -> Any:
    """The ``amount`` field type for a token with ``decimals``: its pattern in the schema, and a refusal in
    words (not the regular expression) when a value does not match."""
    pattern = amount_pattern(decimals)
    matches = re.compile(pattern).match
    message = f"amount must be {amount_rule(decimals)}"

    def check(value: object) -> object:
        if not isinstance(value, str) or not matches(value):
            raise PydanticCustomError("amount_format", message)
        return value

    return Annotated[
        str,
        BeforeValidator(check),
        Field(
            description=f"Token amount: {amount_rule(decimals)}.",
            examples=[_example(decimals)],
            json_schema_extra={"pattern": pattern},
        ),
    ]


def cursor_pattern() -> str:
    """The regular expression of the history cursors the API accepts: exactly the ones it hands out (the
    URL-safe base64 of ``s1:<seq>``, seq a positive integer of at most 18 digits, without padding)."""

    def b64(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).decode()

    digits = "0123456789"

    def pairs(texts: list[str], width: int) -> str:
        return "(?:" + "|".join(sorted({b64(t)[:width] for t in texts})) + ")"

    lead = pairs([f"{d}00" for d in digits], 2)  # a group's first digit: its first two base64 characters
    lead_nz = pairs([f"{d}00" for d in digits[1:]], 2)
    mid = "[" + "".join(sorted({b64(f"0{d}0")[2] for d in digits})) + "]"
    last = "[" + "".join(sorted({b64(f"00{d}")[3] for d in digits})) + "]"
    one, one_nz = pairs(list(digits), 2), pairs(list(digits[1:]), 2)  # a final group of one digit
    group, group_nz = lead + mid + last, lead_nz + mid + last
    tail = f"(?:{one}|{lead}{mid})"
    return f"^{b64('s1:')}(?:{one_nz}|{lead_nz}{mid}|{group_nz}(?:{group}){{0,4}}{tail}?|{group_nz}(?:{group}){{5}})$"


CURSOR_PATTERN = cursor_pattern()
SignedAmount = Annotated[str, Field(pattern=SIGNED_AMOUNT_PATTERN, examples=["-12.50"])]
OutAmount = Annotated[str, Field(pattern=SIGNED_AMOUNT_PATTERN, examples=["1000.00"])]
AccountId = Annotated[
    str, Field(min_length=1, max_length=MAX_ACCOUNT_ID_LENGTH, pattern=ID_PATTERN, examples=["alice"])
]
Receiver = Annotated[
    str,
    Field(
        min_length=1, max_length=MAX_ACCOUNT_ID_LENGTH, pattern=ID_PATTERN, examples=["bob"],
        description="Must differ from `from_user_id` (a move to oneself is refused: 422 `invalid_account`).",
    ),
]  # fmt: skip
Reason = Annotated[str, Field(max_length=MAX_REASON_LENGTH, pattern=r"^[^\x00]*$")]
Metadata = Annotated[
    dict[str, Any],
    Field(
        description=f"Any JSON object, at most {MAX_METADATA_BYTES} bytes as compact JSON.", examples=[{"order": 42}]
    ),
]
if TYPE_CHECKING:
    Amount = str
else:
    Amount = amount_type(None)

TIME_PATTERN = (
    r"^[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(?:\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
)
"""An RFC 3339 time with its offset (``2030-01-01T00:00:00Z``), to the microsecond the ledger keeps."""
_match_time = re.compile(TIME_PATTERN).match


def _utc_time(value: object) -> datetime:
    """A time in ``TIME_PATTERN``, as an aware UTC datetime (a day the month lacks, year 0 or a time beyond
    year 9999 in UTC is refused in words)."""
    if not isinstance(value, str) or not _match_time(value):
        raise PydanticCustomError("time_format", "must be an RFC 3339 time with an offset, e.g. 2030-01-01T00:00:00Z")
    try:
        return datetime.fromisoformat(value).astimezone(UTC)
    except (ValueError, OverflowError):
        raise PydanticCustomError("time_range", "must be a real time between years 1 and 9999 (UTC)") from None


Time = Annotated[
    datetime,
    BeforeValidator(_utc_time),
    Field(json_schema_extra={"type": "string", "format": "date-time", "pattern": TIME_PATTERN}),
]


def amount_text(value: Decimal) -> str:
    """A Decimal as plain text, never in exponent notation (``Decimal('1E-18')`` -> ``'0.000000000000000001'``)."""
    return format(value, "f")


def _whole_float(value: object) -> object:
    """JSON Schema counts ``60.0`` as an integer, so the API does too (strict mode alone would refuse it)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


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
    expires_in_seconds: Annotated[int, Field(ge=1, le=MAX_HOLD_SECONDS), BeforeValidator(_whole_float)]
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
    seconds: Annotated[int, Field(ge=1, le=MAX_WINDOW_SECONDS), BeforeValidator(_whole_float)]


class LimitsBody(_Request):
    """The account's limits, replacing the ones it had (a limit left out or null: none)."""

    max_balance: Amount | None = Field(None, description="Credits that would take the balance above it are refused.")
    spend_per_window: SpendWindowBody | None = Field(
        None, description="At most `amount` spent (transfers, burns, holds) in any rolling `seconds` long window."
    )
    overdraft: Amount | None = Field(
        None, description="Debits may take the balance down to minus it (left out or null: not below zero)."
    )


PERCENT_PATTERN = r"(?:100(?:\.0{1,18})?|[1-9][0-9]?(?:\.[0-9]{1,18})?|0\.[0-9]{0,17}[1-9][0-9]{0,17})%"
"""A percentage share: more than 0, at most 100, then ``%`` (``"12.5%"``)."""


@functools.cache
def share_type(decimals: int | None) -> Any:
    """The ``share`` field type of a split leg: an amount of the token's decimals, or a percentage."""
    pattern = f"^(?:{amount_pattern(decimals)[1:-1]}|{PERCENT_PATTERN})$"
    matches = re.compile(pattern).match
    message = f'share must be a percentage such as "12.5%" (more than 0, at most 100) or {amount_rule(decimals)}'

    def check(value: object) -> object:
        if not isinstance(value, str) or not matches(value):
            raise PydanticCustomError("share_format", message)
        return value

    return Annotated[
        str,
        BeforeValidator(check),
        Field(
            description='A percentage of the split\'s amount such as "12.5%", or a fixed amount '
            f"({amount_rule(decimals)}).",
            examples=["12.5%", _example(decimals)],
            json_schema_extra={"pattern": pattern},
        ),
    ]


if TYPE_CHECKING:
    Share = str
else:
    Share = share_type(None)


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
