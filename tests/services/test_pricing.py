"""get_balance_in_usd: a static TOKEN_USD_PRICE or an async provider, exact, rounded once to cents."""

from __future__ import annotations

import decimal
from decimal import Decimal
from fractions import Fraction

import pytest

from tests.backends import BoundBackend
from tests.support import assert_error, open_bank
from tokenbank import ConfigurationError, InvalidAccountError, InvalidAmountError, Settings, TokenBank
from tokenbank.errors import PriceUnavailableError
from tokenbank.services.pricing import PricingService, usd_value

MAX_BALANCE = "92233720368547758.07"  # 2**63 - 1 base units at 2 decimals


async def test_static_price(backend: BoundBackend) -> None:
    async with open_bank(backend, usd_price="0.25", initial_supply="1000") as bank:
        await bank.transfer("treasury", "alice", "10.10")
        pricing = PricingService(bank)
        assert await pricing.get_usd_price() == Decimal("0.25")
        assert await pricing.get_balance_in_usd("alice") == Decimal("2.52")  # 2.525 -> 2.52 (half even)
        assert await pricing.get_balance_in_usd("treasury") == Decimal("247.48")  # 989.90 x 0.25 = 247.475
        assert await pricing.get_balance_in_usd("nobody") == Decimal("0.00")
        with pytest.raises(InvalidAccountError):
            await pricing.get_balance_in_usd("")


async def test_provider_wins_and_is_asked_every_time(backend: BoundBackend) -> None:
    prices = iter([Decimal("2"), Decimal("3.5")])
    calls = 0

    async def provider() -> Decimal:
        nonlocal calls
        calls += 1
        return next(prices)

    async with open_bank(backend, usd_price="100", initial_supply="1000") as bank:
        await bank.transfer("treasury", "alice", "1.01")
        pricing = PricingService(bank, provider)
        assert await pricing.get_balance_in_usd("alice") == Decimal("2.02")
        assert await pricing.get_balance_in_usd("alice") == Decimal("3.54")  # 3.535 -> 3.54 (half even)
        assert calls == 2


async def test_exact_at_the_largest_balance(backend: BoundBackend) -> None:
    price = Decimal("1.234567891234567891")

    async def provider() -> Decimal:
        return price

    async with open_bank(backend, decimals=2) as bank:
        await bank.mint("alice", MAX_BALANCE)
        usd = await PricingService(bank, provider).get_balance_in_usd("alice")
    exact = Fraction(MAX_BALANCE) * Fraction(price)
    cents = round(exact * 100)  # Python's round of a Fraction is half-to-even
    assert usd == Decimal(cents).scaleb(-2)
    assert usd == Decimal("113868789656116817.68")  # ...817.6791..., rounded to the cent


async def test_no_price_configured_names_the_variable(backend: BoundBackend) -> None:
    async with open_bank(backend, initial_supply="10") as bank:
        with pytest.raises(ConfigurationError, match="TOKEN_USD_PRICE") as info:
            await PricingService(bank).get_balance_in_usd("treasury")
        assert_error(info.value, ConfigurationError)


def _returning(value: object):  # type: ignore[no-untyped-def]
    async def provider() -> object:
        return value

    return provider


async def _raising() -> Decimal:
    raise TimeoutError("exchange did not answer")


@pytest.mark.parametrize(
    ("provider", "message"),
    [
        (_returning(Decimal("-0.01")), "invalid price"),
        (_returning(Decimal("NaN")), "invalid price"),
        (_returning(Decimal("sNaN")), "invalid price"),
        (_returning(Decimal("Infinity")), "invalid price"),
        (_returning(0.25), "floats are not exact"),
        (_returning("0.25"), "returned str"),
        (_returning(None), "returned NoneType"),
        (_returning(True), "returned bool"),
        (_raising, "TimeoutError: exchange did not answer"),
    ],
)
async def test_bad_provider_price_is_a_typed_error(provider: object, message: str) -> None:
    async with TokenBank(Settings(database_url="sqlite+aiosqlite:///:memory:", initial_supply=10)) as bank:
        pricing = PricingService(bank, provider)  # type: ignore[arg-type]
        with pytest.raises(PriceUnavailableError, match=message) as info:
            await pricing.get_balance_in_usd("treasury")
        assert_error(info.value, PriceUnavailableError)
        assert info.value.code == "price_unavailable"


async def test_zero_and_integer_prices() -> None:
    async with TokenBank(Settings(database_url="sqlite+aiosqlite:///:memory:", initial_supply=10)) as bank:
        assert await PricingService(bank, _returning(0)).get_balance_in_usd("treasury") == Decimal("0.00")
        assert await PricingService(bank, _returning(3)).get_balance_in_usd("treasury") == Decimal("30.00")


async def test_to_usd() -> None:
    async with TokenBank(Settings(database_url="sqlite+aiosqlite:///:memory:", usd_price="0.5")) as bank:
        pricing = PricingService(bank)
        assert await pricing.to_usd("0.05") == Decimal("0.02")  # 0.025 -> 0.02
        assert await pricing.to_usd("0.15") == Decimal("0.08")  # 0.075 -> 0.08
        assert await pricing.to_usd(-3) == Decimal("-1.50")
        for bad in (0.1, "NaN", "x"):
            with pytest.raises(InvalidAmountError):
                await pricing.to_usd(bad)


@pytest.mark.parametrize(
    ("amount", "price", "expected"),
    [
        ("0.005", "1", "0.00"),
        ("0.015", "1", "0.02"),
        ("0.025", "1", "0.02"),
        ("1", "0.0049999999999999999999999999999", "0.00"),
        ("99999999999999999999", "99999999999999999999.999", "9999999999999999999899900000000000000000.00"),
    ],
)
def test_usd_value_rounds_once_half_even(amount: str, price: str, expected: str) -> None:
    with decimal.localcontext(prec=3):  # the caller's context plays no part
        assert usd_value(Decimal(amount), Decimal(price)) == Decimal(expected)
