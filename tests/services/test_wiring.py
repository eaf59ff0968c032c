"""The services as the bank exposes them, on every backend: bank.formatter, bank.pricing and bank.analytics
are the service objects; bank.balances.get_formatted_balance formats with the formatter's options (grouping,
locale, emoji, compact) and get_balance_in_usd converts at the token's USD price; TokenBank(price_provider=...)
takes the price from the given coroutine instead.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.backends import BoundBackend
from tests.support import open_bank
from tokenbank import Settings, TokenBank
from tokenbank.services.analytics import AnalyticsService
from tokenbank.services.formatter import FormatOptions, FormatterService
from tokenbank.services.pricing import PricingService


def _wired() -> bool:
    bank = TokenBank(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    return all(hasattr(bank, name) for name in ("formatter", "pricing", "analytics")) and all(
        hasattr(bank.balances, name) for name in ("get_formatted_balance", "get_balance_in_usd")
    )


pytestmark = pytest.mark.skipif(not _wired(), reason="bank.formatter / pricing / analytics are not wired yet")


async def test_services_are_attributes(backend: BoundBackend) -> None:
    async with open_bank(backend, emoji="🪙", initial_supply="2000000", usd_price="0.5") as bank:
        assert isinstance(bank.formatter, FormatterService)  # type: ignore[attr-defined]
        assert isinstance(bank.pricing, PricingService)  # type: ignore[attr-defined]
        assert isinstance(bank.analytics, AnalyticsService)  # type: ignore[attr-defined]
        await bank.transfer("treasury", "alice", "1234.5")
        symbol = bank.settings.symbol
        balances = bank.balances
        assert await balances.get_formatted_balance("alice") == f"1,234.50 {symbol}"  # type: ignore[attr-defined]
        assert (
            await balances.get_formatted_balance("alice", FormatOptions(locale="de_DE", emoji=True))  # type: ignore[attr-defined]
            == f"🪙 1.234,50 {symbol}"
        )
        bank.formatter.defaults = FormatOptions(compact=True)  # type: ignore[attr-defined]
        assert await balances.get_formatted_balance("treasury") == f"1.9M {symbol}"  # type: ignore[attr-defined]
        assert await balances.get_balance_in_usd("alice") == Decimal("617.25")  # type: ignore[attr-defined]


async def test_price_provider_is_given_to_the_bank(backend: BoundBackend) -> None:
    async def price() -> Decimal:
        return Decimal("0.125")

    async with TokenBank(backend.settings(initial_supply="10"), price_provider=price) as bank:  # type: ignore[call-arg]
        assert await bank.balances.get_balance_in_usd("treasury") == Decimal("1.25")  # type: ignore[attr-defined]
