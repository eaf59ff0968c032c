"""``bank.balances``: balance reads, as the seed's BalanceService offers them, and balance events."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tokenbank.amounts import from_base_units
from tokenbank.errors import ConfigurationError, InvalidRequestError
from tokenbank.events import BalanceCallback
from tokenbank.ids import check_account_id
from tokenbank.models import Holder
from tokenbank.operations import check_page
from tokenbank.services import formatter
from tokenbank.services.formatter import FormatOptions, FormatterService
from tokenbank.services.pricing import PricingService

if TYPE_CHECKING:
    from tokenbank.ledger import Ledger


class BalancesService:
    def __init__(self, ledger: Ledger, formatter: FormatterService, pricing: PricingService) -> None:
        self._ledger = ledger
        self.formatter = formatter
        self._pricing = pricing

    async def get_balance(self, user_id: str) -> Decimal:
        """Spendable balance of one account. Raises InvalidAccountError."""
        return await self._ledger.get_balance(user_id)

    async def get_balances(self, user_ids: Sequence[str]) -> dict[str, Decimal]:
        ids = [check_account_id(user_id) for user_id in user_ids]
        ledger = self._ledger
        await ledger.token_record()
        balances = await ledger.spendable(list(dict.fromkeys(ids)))
        return {user_id: from_base_units(units, ledger.decimals) for user_id, units in balances.items()}

    async def get_held_balance(self, user_id: str) -> Decimal:
        """Funds reserved by the account's pending holds."""
        check_account_id(user_id)
        await self._ledger.token_record()
        return from_base_units(await self._ledger.storage.get_held(user_id), self._ledger.decimals)

    async def get_top_holders(self, limit: int = 10, offset: int = 0) -> list[Holder]:
        """Highest balances first (the token's excluded accounts left out). Raises InvalidRequestError for bad
        paging, TokenNotInitializedError."""
        self._require_leaderboard()
        check_page(limit, offset)
        token = await self._ledger.token_record()
        rows = await self._ledger.storage.top_holders(limit, offset, token.excluded_accounts)
        return [
            Holder(user_id, from_base_units(units, self._ledger.decimals), offset + i + 1)
            for i, (user_id, units) in enumerate(rows)
        ]

    async def get_rank(self, user_id: str) -> int | None:
        """1-based leaderboard position; None for excluded accounts and accounts without balance."""
        self._require_leaderboard()
        check_account_id(user_id)
        token = await self._ledger.token_record()
        return await self._ledger.storage.rank(user_id, token.excluded_accounts)

    async def get_balance_at(self, user_id: str, at: datetime) -> Decimal:
        """Spendable balance right after the last transaction at or before ``at`` (an aware datetime)."""
        check_account_id(user_id)
        if not isinstance(at, datetime) or at.tzinfo is None:
            raise InvalidRequestError("at must be a timezone-aware datetime")
        await self._ledger.token_record()
        return from_base_units(await self._ledger.storage.balance_at(user_id, at), self._ledger.decimals)

    def _require_leaderboard(self) -> None:
        if not self._ledger.settings.enable_leaderboard:
            raise ConfigurationError("TOKEN_ENABLE_LEADERBOARD: the leaderboard is disabled")

    async def get_formatted_balance(self, user_id: str, options: FormatOptions | None = None, **overrides: Any) -> str:
        """The balance as text (see bank.formatter). Raises InvalidAccountError, InvalidRequestError."""
        return await formatter.get_formatted_balance(self, user_id, options, **overrides)

    async def get_balance_in_usd(self, user_id: str) -> Decimal:
        """Balance x USD price, rounded to cents (ROUND_HALF_EVEN). Raises ConfigurationError (no
        TOKEN_USD_PRICE or provider), PriceUnavailableError, InvalidAccountError."""
        return await self._pricing.get_balance_in_usd(user_id)

    async def subscribe_to_balance_updates(self, user_id: str, callback: BalanceCallback) -> Callable[[], None]:
        """Call ``callback(BalanceUpdate)`` (sync or async) after each committed change of the account's balance,
        including changes made by other processes on PostgreSQL and Redis (SQLite: this process only).
        Returns a function that removes this one subscription. Raises ConfigurationError when
        TOKEN_ENABLE_NOTIFICATIONS is off."""
        check_account_id(user_id)
        await self._ledger.start_event_feed()
        hub = self._ledger.events
        hub.add(user_id, callback)
        return lambda: hub.remove(user_id, callback)

    async def unsubscribe_from_balance_updates(self, user_id: str, callback: BalanceCallback | None = None) -> None:
        """Remove the account's subscriptions (only ``callback``'s, if given)."""
        self._ledger.events.remove(check_account_id(user_id), callback)
