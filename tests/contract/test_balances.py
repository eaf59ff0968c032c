"""Balances, the leaderboard and ranks."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.backends import BoundBackend
from tests.support import open_bank
from tokenbank import Holder, InvalidRequestError, TokenBank


async def test_unknown_accounts_have_zero_balance(bank: TokenBank) -> None:
    balance = await bank.get_balance("nobody")
    assert isinstance(balance, Decimal) and balance == 0
    assert await bank.get_held_balance("nobody") == 0
    assert await bank.get_rank("nobody") is None


async def test_get_balance_and_get_balances(bank: TokenBank) -> None:
    await bank.transfer("treasury", "alice", "12.5")
    await bank.transfer("treasury", "bob", Decimal("0.01"))
    balance = await bank.get_balance("alice")
    assert isinstance(balance, Decimal) and balance == Decimal("12.50")
    assert await bank.balances.get_balance("alice") == Decimal("12.5")
    balances = await bank.get_balances(["alice", "bob", "carol", "alice"])
    assert balances == {"alice": Decimal("12.5"), "bob": Decimal("0.01"), "carol": 0}
    assert all(isinstance(v, Decimal) for v in balances.values())
    assert await bank.balances.get_balances(["treasury"]) == {"treasury": Decimal("987.49")}
    assert await bank.get_balances([]) == {}


async def _seed(bank: TokenBank) -> None:
    for user, amount in [("dave", 30), ("bob", 50), ("alice", 50), ("erin", 10), ("carol", 50), ("frank", 1)]:
        await bank.transfer("treasury", user, amount)


async def test_top_holders_order_ties_and_excluded_treasury(bank: TokenBank) -> None:
    await _seed(bank)
    await bank.transfer("frank", "erin", 1)  # frank drops to zero: not a holder any more
    top = await bank.get_top_holders()
    assert all(isinstance(h, Holder) for h in top)
    assert [(h.user_id, h.balance, h.rank) for h in top] == [
        ("alice", 50, 1),
        ("bob", 50, 2),
        ("carol", 50, 3),
        ("dave", 30, 4),
        ("erin", 11, 5),
    ]


async def test_top_holders_limit_and_offset(bank: TokenBank) -> None:
    await _seed(bank)
    assert [h.user_id for h in await bank.get_top_holders(limit=2)] == ["alice", "bob"]
    page = await bank.get_top_holders(limit=2, offset=2)
    assert [(h.user_id, h.rank) for h in page] == [("carol", 3), ("dave", 4)]
    assert [h.rank for h in await bank.get_top_holders(limit=10, offset=4)] == [5, 6]
    assert await bank.get_top_holders(limit=5, offset=100) == []
    for limit, offset in [(0, 0), (1001, 0), (-1, 0), (10, -1)]:
        with pytest.raises(InvalidRequestError):
            await bank.get_top_holders(limit=limit, offset=offset)


async def test_rank_matches_leaderboard(bank: TokenBank) -> None:
    await _seed(bank)
    top = await bank.get_top_holders(limit=100)
    for holder in top:
        assert await bank.get_rank(holder.user_id) == holder.rank
    assert await bank.get_rank("treasury") is None  # excluded
    await bank.transfer("frank", "alice", 1)
    assert await bank.get_rank("frank") is None  # empty
    assert await bank.get_rank("alice") == 1


async def test_held_funds_leave_the_leaderboard_balance(bank: TokenBank) -> None:
    await bank.transfer("treasury", "alice", 50)
    await bank.transfer("treasury", "bob", 40)
    await bank.hold("alice", "carol", 20, expires_in=60)
    assert [(h.user_id, h.balance) for h in await bank.get_top_holders()] == [("bob", 40), ("alice", 30)]
    assert await bank.get_rank("alice") == 2


async def test_ties_are_broken_by_code_point_order_of_the_id(bank: TokenBank) -> None:
    """Every store must order ties the same way (by code point, as Python sorts), whatever the DB collation."""
    ids = ["alice", "Bob", "_x", "zed", "ßtrasse", "Émile", "10", "9"]
    for user in ids:
        await bank.transfer("treasury", user, 5)
    top = await bank.get_top_holders()
    assert [h.user_id for h in top] == sorted(ids)
    for holder in top:
        assert await bank.get_rank(holder.user_id) == holder.rank


async def test_custom_exclusions(backend: BoundBackend) -> None:
    async with open_bank(backend, initial_supply=100, leaderboard_exclude=("house",)) as bank:
        await bank.transfer("treasury", "house", 60)
        await bank.transfer("treasury", "alice", 10)
        assert [h.user_id for h in await bank.get_top_holders()] == ["treasury", "alice"]
        assert await bank.get_rank("house") is None
        assert await bank.get_rank("treasury") == 1
        assert await bank.get_circulating_supply() == 40
