"""Exact conversion between user-facing token amounts and integer base units.

One rule for amounts written as text, the same in Python, on the command line and over HTTP: plain decimal
notation only (``"12"``, ``"12.50"``). Exponents, signs, whitespace, separators, NaN and Infinity are refused.
A ``Decimal`` is a number, not notation: ``Decimal("1E+2")`` is the amount 100.
"""

from __future__ import annotations

import re
from decimal import Decimal

from tokenbank.errors import InvalidAmountError

MAX_BASE_UNITS = 2**63 - 1
"""Largest amount, balance or supply any store keeps exactly (a signed 64-bit integer)."""

AmountInput = int | Decimal | str

# A minus sign parses (the formatter shows negative figures); every write refuses a non-positive amount after.
_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_MAX_TEXT = 80


def to_base_units(amount: object, decimals: int) -> int:
    """Convert a positive token amount to base units, refusing anything inexact.

    Raises InvalidAmountError for floats, bools, non-numbers, strings not in plain decimal notation (exponents,
    signs, whitespace), NaN/Infinity, zero, negatives, more fractional digits than ``decimals``, or more than
    :data:`MAX_BASE_UNITS` base units.
    """
    if type(amount) is int and amount > 0:  # the common case, exact without Decimal (bools are not ints here)
        units: int = amount * 10**decimals
        if units > MAX_BASE_UNITS:
            raise InvalidAmountError(f"amount {amount!r} is beyond the supported range")
        return units
    value = to_decimal(amount)
    if not value.is_finite():
        raise InvalidAmountError(f"amount must be finite, got {amount!r}")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    # Exact integer arithmetic on the digits: Decimal arithmetic would round to the context's 28 digits.
    while digits and digits[-1] == 0 and exponent < -decimals:
        digits, exponent = digits[:-1], exponent + 1
    if exponent < -decimals:
        raise InvalidAmountError(f"amount {amount!r} has more than {decimals} fractional digits")
    coefficient = int("".join(map(str, digits)) or "0")
    if coefficient == 0 or sign:
        raise InvalidAmountError(f"amount must be positive, got {amount!r}")
    scale = exponent + decimals
    if len(str(coefficient)) + scale > len(str(MAX_BASE_UNITS)):
        raise InvalidAmountError(f"amount {amount!r} is beyond the supported range")
    units = coefficient * pow(10, max(scale, 0))
    if units > MAX_BASE_UNITS:
        raise InvalidAmountError(f"amount {amount!r} is beyond the supported range")
    return units


def from_base_units(units: int, decimals: int) -> Decimal:
    """Base units back to a Decimal with exactly ``decimals`` fractional digits (exact in any decimal context)."""
    sign, digits, _ = Decimal(units).as_tuple()
    return Decimal((sign, digits, -decimals))


def to_decimal(amount: object) -> Decimal:
    if isinstance(amount, bool):
        raise InvalidAmountError("a bool is not an amount")
    if isinstance(amount, float):
        raise InvalidAmountError("floats are not exact; pass Decimal or str")
    if isinstance(amount, Decimal):
        return amount
    if isinstance(amount, int):
        return Decimal(amount)
    if isinstance(amount, str):
        if len(amount) > _MAX_TEXT or not _PLAIN_DECIMAL.fullmatch(amount):
            shown = amount if len(amount) <= _MAX_TEXT else amount[:_MAX_TEXT] + "..."
            raise InvalidAmountError(
                f"amount must be a plain decimal number such as 12 or 12.50 (no plus sign, exponent, "
                f"separator or whitespace), got {shown!r}"
            )
        return Decimal(amount)
    raise InvalidAmountError(f"amount must be int, Decimal or str, got {type(amount).__name__}")
