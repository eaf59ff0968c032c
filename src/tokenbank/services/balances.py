"""``bank.balances``: balance reads, as the seed's BalanceService offers them."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

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
