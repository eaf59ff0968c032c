"""Request bodies of the REST API (pydantic v2), so the OpenAPI schema says exactly what is accepted.

Their field types are in :mod:`tokenbank.integrations.fastapi.field_types` and the response models in
:mod:`tokenbank.integrations.fastapi.responses`. The request bodies are built for the token's decimals
(:func:`request_bodies`), so every amount the schema allows is one the ledger accepts. They stay in this module,
under this name: when one app mounts routers for tokens of different decimals, OpenAPI names each body after its
module. The field types defined here before are re-exported (the ``X as X`` imports), so imports from this module
keep working.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

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
