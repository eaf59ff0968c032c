"""The field types of the REST API's bodies: amounts, split shares, ids, times and history cursors, each with the
pattern the OpenAPI schema shows and a refusal in words.

Amounts travel as JSON strings of plain decimals ("12.50"): a JSON number for an amount is refused (422), so no
client can lose precision through a float. The amount pattern is built for the token's decimals
(:func:`amount_type`), so every amount the schema allows is one the ledger accepts.
"""

from __future__ import annotations

import base64
import functools
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError

from tokenbank.ids import MAX_ACCOUNT_ID_LENGTH, MAX_METADATA_BYTES, MAX_REASON_LENGTH

MAX_DECIMALS = 18
MAX_LOOKUP_ID_LENGTH = 64
"""Transaction and hold ids are at most 64 characters (UUIDs, or the ids of an imported ledger)."""
SIGNED_AMOUNT_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]+$"
"""Ids are ordinary data (``:``, quotes, spaces, SQL...), only control characters are refused."""


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


def whole_float(value: object) -> object:
    """JSON Schema counts ``60.0`` as an integer, so the API does too (strict mode alone would refuse it)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


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
