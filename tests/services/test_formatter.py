"""bank.formatter: locale data from Babel, exact Decimal rendering, documented rounding."""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Any

import pytest

from tests.backends import BoundBackend
from tests.support import assert_error, open_bank
from tokenbank import InvalidAccountError, InvalidAmountError, InvalidRequestError, Settings
from tokenbank.services.formatter import FormatOptions, FormatterService, get_formatted_balance

NNBSP = "\u202f"  # French groups with a narrow no-break space (CLDR)
NBSP = "\xa0"


@pytest.fixture
def fmt() -> FormatterService:
    return FormatterService(Settings(symbol="GOLD", emoji="🪙", decimals=2))


@pytest.mark.parametrize(
    ("amount", "options", "expected"),
    [
        ("1234.5", {}, "1,234.50 GOLD"),
        (Decimal("1234.5"), {"locale": "de_DE"}, "1.234,50 GOLD"),
        ("1234.5", {"locale": "fr_FR"}, f"1{NNBSP}234,50 GOLD"),
        ("1234567.5", {"locale": "hi_IN"}, "12,34,567.50 GOLD"),  # the locale's own grouping sizes
        # Babel 2.19 formats de_CH without a group separator (earlier releases gave Swiss apostrophes)
        ("1234567.5", {"locale": "de_AT"}, "1.234.567,50 GOLD"),
        (1234, {}, "1,234.00 GOLD"),
        ("-1234.5", {}, "-1,234.50 GOLD"),
        ("0", {}, "0.00 GOLD"),
        ("92233720368547758.07", {}, "92,233,720,368,547,758.07 GOLD"),
        ("92233720368547758.07", {"locale": "de_DE"}, "92.233.720.368.547.758,07 GOLD"),
        ("92233720368547758.07", {"precision": 18}, "92,233,720,368,547,758.070000000000000000 GOLD"),
        ("9223372036.854775807", {"precision": 9}, "9,223,372,036.854775807 GOLD"),
        ("1234.5", {"grouping": False}, "1234.50 GOLD"),
        ("1234.5", {"grouping": False, "locale": "de_DE"}, "1234,50 GOLD"),
        ("1234.5", {"precision": 0}, "1,234 GOLD"),
        ("1234.5", {"precision": 4}, "1,234.5000 GOLD"),
        ("1234.5", {"trim_zeros": True}, "1,234.5 GOLD"),
        ("1234", {"trim_zeros": True}, "1,234 GOLD"),
        ("1234.5", {"symbol": False}, "1,234.50"),
        ("1234.5", {"symbol_position": "prefix"}, "GOLD 1,234.50"),
        ("1234.5", {"emoji": True}, "🪙 1,234.50 GOLD"),
        ("1234.5", {"emoji": True, "symbol_position": "prefix"}, "🪙 GOLD 1,234.50"),
        ("1234.5", {"emoji": True, "symbol": False}, "🪙 1,234.50"),
        ("1234.5", {"separator": NBSP}, f"1,234.50{NBSP}GOLD"),
    ],
)
def test_plain_formats(fmt: FormatterService, amount: object, options: dict[str, Any], expected: str) -> None:
    assert fmt.format(amount, **options) == expected
    assert fmt.format(amount, FormatOptions(**options)) == expected


@pytest.mark.parametrize(
    ("amount", "options", "expected"),
    [
        ("0.999", {}, "0.99"),  # ROUND_DOWN by default: never show more than the account has
        ("-0.999", {}, "-0.99"),
        ("-0.001", {}, "0.00"),  # no "-0.00"
        ("0.125", {"rounding": decimal.ROUND_HALF_EVEN}, "0.12"),
        ("0.135", {"rounding": decimal.ROUND_HALF_EVEN}, "0.14"),
        ("0.125", {"rounding": decimal.ROUND_HALF_UP}, "0.13"),
        ("0.121", {"rounding": decimal.ROUND_CEILING}, "0.13"),
        ("1.99999999999999999999999999999", {"precision": 2}, "1.99"),
        ("1.99999999999999999999999999999", {"precision": 2, "rounding": decimal.ROUND_HALF_EVEN}, "2.00"),
    ],
)
def test_precision_and_rounding(fmt: FormatterService, amount: str, options: dict[str, Any], expected: str) -> None:
    assert fmt.format_number(amount, **options) == expected


@pytest.mark.parametrize(
    ("amount", "options", "expected"),
    [
        ("1234567", {}, "1.2M"),
        ("12000", {}, "12K"),
        ("12345", {}, "12.3K"),
        ("12345", {"precision": 0}, "12K"),
        ("1234567", {"precision": 2}, "1.23M"),
        ("1999999", {}, "1.9M"),  # ROUND_DOWN
        ("1999999", {"rounding": decimal.ROUND_HALF_EVEN}, "2M"),
        ("999999", {}, "999.9K"),
        ("-1234567", {}, "-1.2M"),
        ("0.567", {}, "0.5"),  # not abbreviated, still capped at the compact precision
        ("999.99", {}, "999.9"),
        ("92233720368547758.07", {}, "92233.7T"),
        ("1234567", {"compact_style": "long"}, "1.2 million"),
        ("1234567", {"locale": "de_DE"}, f"1,2{NBSP}Mio."),
        ("12345.678", {"locale": "de_DE"}, "12345,6"),  # German CLDR data abbreviates from a million
        ("123456789", {"locale": "ja_JP"}, "1.2億"),
    ],
)
def test_compact(fmt: FormatterService, amount: str, options: dict[str, Any], expected: str) -> None:
    assert fmt.format_number(amount, compact=True, **options) == expected


def test_compact_keeps_symbol_and_emoji(fmt: FormatterService) -> None:
    assert fmt.format("1234567", compact=True, emoji=True) == "🪙 1.2M GOLD"


def test_defaults_apply_and_can_be_replaced() -> None:
    fmt = FormatterService(Settings(symbol="GOLD", decimals=4), FormatOptions(locale="de_DE"))
    assert fmt.format("1234.5") == "1.234,5000 GOLD"  # precision defaults to the token's decimals
    fmt.defaults = FormatOptions(symbol=False, trim_zeros=True)
    assert fmt.format("1234.5") == "1,234.5"
    assert fmt.format("1234.5", FormatOptions()) == "1,234.5000 GOLD"  # explicit options win over defaults


def test_token_without_emoji_shows_none() -> None:
    fmt = FormatterService(Settings(symbol="GOLD", emoji=None, decimals=2))
    assert fmt.format("1", emoji=True) == "1.00 GOLD"


def test_decimal_context_of_the_caller_is_untouched(fmt: FormatterService) -> None:
    with decimal.localcontext(prec=5, rounding=decimal.ROUND_UP):
        assert fmt.format_number("92233720368547758.07") == "92,233,720,368,547,758.07"
        assert decimal.getcontext().prec == 5


@pytest.mark.parametrize("amount", [1.5, float("nan"), "NaN", "Infinity", "-inf", "abc", True, None, [1]])
def test_refuses_inexact_or_non_numbers(fmt: FormatterService, amount: object) -> None:
    with pytest.raises(InvalidAmountError) as info:
        fmt.format(amount)
    assert_error(info.value, InvalidAmountError)


@pytest.mark.parametrize(
    "options",
    [
        {"locale": "xx_YY"},
        {"locale": "not a locale!"},
        {"locale": 42},
        {"precision": -1},
        {"precision": 31},
        {"precision": 1.5},
        {"precision": True},
        {"rounding": "ROUND_SOMETIMES"},
        {"symbol_position": "middle"},
        {"compact_style": "tiny"},
    ],
)
def test_bad_options(fmt: FormatterService, options: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError) as info:
        FormatOptions(**options)
    assert_error(info.value, InvalidRequestError)
    with pytest.raises(InvalidRequestError):
        fmt.format("1", **options)


def test_unknown_option_name(fmt: FormatterService) -> None:
    with pytest.raises(InvalidRequestError, match="unknown format option"):
        fmt.format("1", colour="red")


async def test_formatted_balance(backend: BoundBackend) -> None:
    async with open_bank(backend, emoji="🪙", decimals=2, initial_supply="1000000") as bank:
        await bank.transfer("treasury", "alice", "1234.56")
        symbol = bank.settings.symbol
        assert await get_formatted_balance(bank, "alice") == f"1,234.56 {symbol}"
        assert await get_formatted_balance(bank, "alice", locale="de_DE", emoji=True) == f"🪙 1.234,56 {symbol}"
        assert await get_formatted_balance(bank, "treasury", FormatOptions(compact=True)) == f"998.7K {symbol}"
        assert await get_formatted_balance(bank, "nobody", symbol=False) == "0.00"
        with pytest.raises(InvalidAccountError):
            await get_formatted_balance(bank, "")
        with pytest.raises(InvalidRequestError):
            await get_formatted_balance(bank, "alice", locale="xx_YY")
