"""``bank.balances``: balance reads, as the seed's BalanceService offers them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tokenbank.events import BalanceCallback
from tokenbank.ids import check_account_id
from tokenbank.services import formatter
from tokenbank.services.formatter import FormatOptions

if TYPE_CHECKING:
    from tokenbank.bank import TokenBank


class BalancesService:
    def __init__(self, bank: TokenBank) -> None:
        self._bank = bank

    async def get_balance(self, user_id: str) -> Decimal:
        """Spendable balance of one account. Raises InvalidAccountError."""
        return await self._bank.get_balance(user_id)

    async def get_balances(self, user_ids: Sequence[str]) -> dict[str, Decimal]:
        return await self._bank.get_balances(user_ids)

    async def get_formatted_balance(self, user_id: str, options: FormatOptions | None = None, **overrides: Any) -> str:
        """The balance as text (see bank.formatter). Raises InvalidAccountError, InvalidRequestError."""
        return await formatter.get_formatted_balance(self._bank, user_id, options, **overrides)

    async def get_balance_in_usd(self, user_id: str) -> Decimal:
        """Balance x USD price, rounded to cents (ROUND_HALF_EVEN). Raises ConfigurationError (no
        TOKEN_USD_PRICE or provider), PriceUnavailableError, InvalidAccountError."""
        return await self._bank.pricing.get_balance_in_usd(user_id)

    async def subscribe_to_balance_updates(self, user_id: str, callback: BalanceCallback) -> Callable[[], None]:
        """Call ``callback(BalanceUpdate)`` (sync or async) after each committed change of the account's balance,
        including changes made by other processes on PostgreSQL and Redis (SQLite: this process only).
        Returns a function that removes this one subscription. Raises ConfigurationError when
        TOKEN_ENABLE_NOTIFICATIONS is off."""
        check_account_id(user_id)
        await self._bank._start_event_feed()
        hub = self._bank._events
        hub.add(user_id, callback)
        return lambda: hub.remove(user_id, callback)

    async def unsubscribe_from_balance_updates(self, user_id: str, callback: BalanceCallback | None = None) -> None:
        """Remove the account's subscriptions (only ``callback``'s, if given)."""
        self._bank._events.remove(check_account_id(user_id), callback)
