"""The services as the bank exposes them, on every backend: bank.formatter, bank.pricing and bank.analytics
are the service objects; bank.balances.get_formatted_balance formats with the formatter's options (grouping,
locale, emoji, compact) and get_balance_in_usd converts at the token's USD price; TokenBank(price_provider=...)
takes the price from the given coroutine instead.
"""

from __future__ import annotations

from decimal import Decimal

from tests.backends import BoundBackend
from tests.support import open_bank
from tokenbank import TokenBank
from tokenbank.services.analytics import AnalyticsService
from tokenbank.services.formatter import FormatOptions, FormatterService
from tokenbank.services.pricing import PricingService


async def test_services_are_attributes(backend: BoundBackend) -> None:
    async with open_bank(backend, emoji="🪙", initial_supply="2000000", usd_price="0.5") as bank:
        assert isinstance(bank.formatter, FormatterService)
        assert isinstance(bank.pricing, PricingService)
        assert isinstance(bank.analytics, AnalyticsService)
        await bank.transfer("treasury", "alice", "1234.5")
        symbol = bank.settings.symbol
        balances = bank.balances
        assert await balances.get_formatted_balance("alice") == f"1,234.50 {symbol}"
        assert (
            await balances.get_formatted_balance("alice", FormatOptions(locale="de_DE", emoji=True))
            == f"🪙 1.234,50 {symbol}"
        )
        bank.formatter.defaults = FormatOptions(compact=True)
        assert await balances.get_formatted_balance("treasury") == f"1.9M {symbol}"
        assert await balances.get_balance_in_usd("alice") == Decimal("617.25")


async def test_price_provider_is_given_to_the_bank(backend: BoundBackend) -> None:
    async def price() -> Decimal:
        return Decimal("0.125")

    async with TokenBank(backend.settings(initial_supply="10"), price_provider=price) as bank:
        assert await bank.balances.get_balance_in_usd("treasury") == Decimal("1.25")
