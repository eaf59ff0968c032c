"""Token balances in US dollars, from a static ``TOKEN_USD_PRICE`` or an async price provider.

The product ``balance x price`` is computed exactly, then rounded ONCE to cents with ROUND_HALF_EVEN
(banker's rounding: halves go to the even cent, so rounding errors do not drift one way over many
conversions). The price itself is never rounded.
"""

from __future__ import annotations

import decimal
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from tokenbank.amounts import to_decimal
from tokenbank.errors import ConfigurationError, InvalidAmountError, PriceUnavailableError, TokenBankError

if TYPE_CHECKING:
    from tokenbank.settings import Settings


class BalanceReader(Protocol):
    """The settings (``TOKEN_USD_PRICE``) and an account's balance: the ledger, or the bank over it."""

    @property
    def settings(self) -> Settings: ...

    async def get_balance(self, user_id: str) -> Decimal: ...


PriceProvider = Callable[[], Awaitable[Decimal]]
"""``async def price() -> Decimal``: the USD price of one token, e.g. read from an exchange or a cache."""

CENT = Decimal("0.01")
USD_ROUNDING = decimal.ROUND_HALF_EVEN


class PricingService:
    """USD values of balances and amounts. A ``provider`` (given to the bank) wins over the static
    ``TOKEN_USD_PRICE``; it is awaited on every call, so cache inside it if the source is slow."""

    def __init__(self, ledger: BalanceReader, provider: PriceProvider | None = None) -> None:
        self._ledger = ledger
        self.provider = provider

    async def get_usd_price(self) -> Decimal:
        """The USD price of one token, unrounded.

        Raises ConfigurationError (naming TOKEN_USD_PRICE) if neither a provider nor a static price is
        configured; PriceUnavailableError if the provider raises or returns a negative, NaN, infinite or
        non-Decimal price (a float is refused: it is not exact).
        """
        if self.provider is not None:
            return await ask_provider(self.provider, "the USD price provider")
        price = self._ledger.settings.usd_price
        if price is None:
            raise ConfigurationError(
                "TOKEN_USD_PRICE: no USD price configured; set TOKEN_USD_PRICE or give the bank a price provider"
            )
        return price

    async def to_usd(self, amount: object) -> Decimal:
        """``amount`` tokens in USD, rounded to cents (ROUND_HALF_EVEN). Raises InvalidAmountError for a
        float, NaN or non-number, and the errors of :meth:`get_usd_price`."""
        value = to_decimal(amount)
        if not value.is_finite():
            raise InvalidAmountError(f"amount must be finite, got {amount!r}")
        return usd_value(value, await self.get_usd_price())

    async def get_balance_in_usd(self, user_id: str) -> Decimal:
        """The account's spendable balance in USD, rounded to cents (ROUND_HALF_EVEN).
        Raises InvalidAccountError, StorageError and the errors of :meth:`get_usd_price`."""
        price = await self.get_usd_price()  # a missing price fails before the store is asked
        return usd_value(await self._ledger.get_balance(user_id), price)


def usd_value(amount: Decimal, price: Decimal) -> Decimal:
    """``amount x price`` rounded to cents with ROUND_HALF_EVEN, exact up to that one rounding."""
    digits = len(amount.as_tuple().digits) + len(price.as_tuple().digits)
    # A context as wide as the product makes the multiplication exact; only quantize rounds.
    with decimal.localcontext(prec=digits + 4, rounding=USD_ROUNDING):
        return (amount * price).quantize(CENT)


async def ask_provider(provider: Callable[[], Awaitable[object]], what: str) -> Decimal:
    """The provider's answer as a finite Decimal >= 0; PriceUnavailableError (naming ``what``) when it fails or
    returns anything else (a float included: it is not exact)."""
    try:
        price = await provider()
    except TokenBankError:
        raise
    except Exception as exc:
        raise PriceUnavailableError(f"{what} failed: {type(exc).__name__}: {exc}") from exc
    if isinstance(price, bool) or not isinstance(price, Decimal | int):
        hint = " (floats are not exact; return a Decimal)" if isinstance(price, float) else ""
        raise PriceUnavailableError(f"{what} returned {type(price).__name__}{hint}")
    price = Decimal(price)
    if not price.is_finite() or price < 0:
        raise PriceUnavailableError(f"{what} returned an invalid price: {price}")
    return price
