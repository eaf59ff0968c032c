"""amounts: exact conversion between token amounts and integer base units."""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import pytest

from tokenbank import InvalidAmountError
from tokenbank.amounts import MAX_BASE_UNITS, from_base_units, to_base_units


@pytest.mark.parametrize(
    ("amount", "decimals", "units"),
    [
        (1, 0, 1),
        (1, 2, 100),
        ("12.5", 2, 1250),
        ("12.50", 2, 1250),
        ("007", 0, 7),
        (Decimal("0.01"), 2, 1),
        # A Decimal is a number, whatever its notation: Decimal("1E+2") is 100.
        (Decimal("1E+2"), 0, 100),
        (Decimal("1E-2"), 2, 1),
        (Decimal("1.000000"), 0, 1),  # trailing zeros are not extra precision
        ("0.000000000000000001", 18, 1),
        ("9.223372036854775807", 18, MAX_BASE_UNITS),
        (MAX_BASE_UNITS, 0, MAX_BASE_UNITS),
        (2**53 + 1, 0, 2**53 + 1),
        (str(2**53 + 1), 0, 2**53 + 1),
        ("92233720368547758.07", 2, MAX_BASE_UNITS),
    ],
)
def test_to_base_units(amount: object, decimals: int, units: int) -> None:
    result = to_base_units(amount, decimals)
    assert result == units and type(result) is int


@pytest.mark.parametrize(
    ("amount", "decimals"),
    [
        (1.5, 2),
        (1.0, 2),
        (math.nan, 2),
        (math.inf, 2),
        (True, 0),
        (False, 0),
        (None, 2),
        (0, 2),
        ("0", 2),
        ("-0.00", 2),
        (Decimal("-0"), 2),
        (-1, 0),
        ("0.001", 2),
        ("0.5", 0),
        ("0.0000000000000000001", 18),
        ("NaN", 2),
        ("-NaN", 2),
        ("sNaN", 2),
        (Decimal("sNaN"), 2),
        ("Infinity", 2),
        ("-inf", 2),
        (Decimal("Infinity"), 2),
        (MAX_BASE_UNITS + 1, 0),
        (2**63, 0),
        ("92233720368547758.08", 2),
        ("9.223372036854775808", 18),
        ("1e400", 0),
        ("", 2),
        ("   ", 2),
        ("abc", 2),
        ("1,5", 2),
        ("1.2.3", 2),
        ("0x10", 0),
        ("1" * 81, 0),
        (b"1", 0),
        ([1], 0),
        (object(), 0),
        # Text is plain decimal notation only, the same rule as the CLI and HTTP.
        ("1e2", 0),
        ("1E-2", 2),
        ("1E+2", 0),
        (" 7 ", 0),
        ("7\n", 0),
        ("+7", 0),
        ("-7", 0),
        ("1_000", 0),
        (".5", 2),
        ("5.", 2),
        ("\u0661", 0),  # a non-ASCII digit Decimal() would read as 1
        # Beyond the default 28-digit decimal context: must be refused, not rounded to something valid.
        ("1.00000000000000000000000000001", 0),
        ("5.0000000000000000000000000000000000000001", 2),
        (Decimal("0.999999999999999999999999999999"), 2),
    ],
)
def test_to_base_units_refuses(amount: object, decimals: int) -> None:
    with pytest.raises(InvalidAmountError) as caught:
        to_base_units(amount, decimals)
    assert caught.value.code == "invalid_amount"


def test_float_message_says_why() -> None:
    with pytest.raises(InvalidAmountError, match="floats are not exact"):
        to_base_units(0.1, 2)


@pytest.mark.parametrize("text", ["1e2", "+7", " 7", "-7e0"])
def test_text_message_names_the_rule(text: str) -> None:
    with pytest.raises(InvalidAmountError, match=r"plain decimal number such as 12 or 12\.50") as caught:
        to_base_units(text, 2)
    assert repr(text) in str(caught.value)


def test_negative_text_is_refused_as_not_positive() -> None:
    with pytest.raises(InvalidAmountError, match=r"must be positive, got '-7'"):
        to_base_units("-7", 2)


def test_long_text_is_cut_in_the_message() -> None:
    with pytest.raises(InvalidAmountError) as caught:
        to_base_units("9" * 10_000, 0)
    assert len(str(caught.value)) < 250


def test_a_tiny_decimal_context_does_not_change_results() -> None:
    with localcontext() as ctx:
        ctx.prec = 5
        assert to_base_units("1234567.89", 2) == 123456789
        assert from_base_units(MAX_BASE_UNITS, 2) == Decimal("92233720368547758.07")


@pytest.mark.parametrize(
    ("units", "decimals", "text"),
    [
        (0, 2, "0.00"),
        (1, 2, "0.01"),
        (1250, 2, "12.50"),
        (7, 0, "7"),
        (MAX_BASE_UNITS, 0, str(MAX_BASE_UNITS)),
        (2**53 + 1, 0, "9007199254740993"),
        (MAX_BASE_UNITS, 18, "9.223372036854775807"),
        (1, 18, "0.000000000000000001"),
    ],
)
def test_from_base_units(units: int, decimals: int, text: str) -> None:
    value = from_base_units(units, decimals)
    assert isinstance(value, Decimal)
    assert value == Decimal(text)
    assert format(value, "f") == text
    if units:
        assert to_base_units(value, decimals) == units


def test_round_trip_at_every_precision() -> None:
    for decimals in range(19):
        for units in (1, 10**decimals, 2**53 + 1, MAX_BASE_UNITS):
            assert to_base_units(from_base_units(units, decimals), decimals) == units
            assert to_base_units(format(from_base_units(units, decimals), "f"), decimals) == units
