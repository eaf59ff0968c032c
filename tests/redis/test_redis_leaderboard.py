"""Leaderboard order (balance desc, ties by account id asc, like the SQL stores) and exactness to 2**63-1."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.redis.conftest import BankFactory
from tokenbank import TokenBank
from tokenbank.errors import InsufficientBalanceError, SupplyCapExceededError

pytestmark = pytest.mark.redis

MAX = 2**63 - 1


async def _expected(bank: TokenBank, users: list[str]) -> list[tuple[str, Decimal]]:
    excluded = set(bank.settings.excluded_accounts)
    balances = await bank.get_balances(users)
    rows = [(u, b) for u, b in balances.items() if b > 0 and u not in excluded]
    return sorted(rows, key=lambda row: (-row[1], row[0]))


async def _assert_board(bank: TokenBank, users: list[str]) -> None:
    expected = await _expected(bank, users)
    for limit in (1, 2, 3, 7, 50):
        for offset in range(len(expected) + 1):
            got = [(h.user_id, h.balance, h.rank) for h in await bank.get_top_holders(limit=limit, offset=offset)]
            want = [(u, b, offset + i + 1) for i, (u, b) in enumerate(expected[offset : offset + limit])]
            assert got == want, (limit, offset)
    for i, (user, _) in enumerate(expected):
        assert await bank.get_rank(user) == i + 1, user
    for user in set(users) - {u for u, _ in expected}:
        assert await bank.get_rank(user) is None


async def test_ties_are_ordered_by_account_id(bank: TokenBank) -> None:
    users = ["zed", "amy", "Bob", "bob", "émile", "b", "carl", "dora"]
    for user in users:
        await bank.transfer("treasury", user, "5")
    await bank.transfer("treasury", "carl", "1")
    await bank.transfer("dora", "treasury", "5")  # back to zero: leaves the board
    await _assert_board(bank, [*users, "treasury"])
    assert [h.user_id for h in await bank.get_top_holders(limit=3)] == ["carl", "Bob", "amy"]
    assert await bank.get_rank("treasury") is None


async def test_excluded_accounts_anywhere_in_the_order(make_bank: BankFactory) -> None:
    bank = await make_bank(leaderboard_exclude="treasury,house,mid")
    users = [f"u{i:02d}" for i in range(12)]
    for i, user in enumerate(users):
        await bank.transfer("treasury", user, str(1 + i % 4))
    await bank.transfer("treasury", "house", "100")
    await bank.transfer("treasury", "mid", "2")
    await _assert_board(bank, [*users, "house", "mid", "treasury"])
    assert await bank.get_rank("house") is None
    assert await bank.get_circulating_supply() == Decimal("1000.00") - Decimal("100.00") - Decimal("2.00") - (
        await bank.get_balance("treasury")
    )


async def test_exact_beyond_2_53(make_bank: BankFactory) -> None:
    bank = await make_bank(decimals=0, initial_supply=str(MAX), leaderboard_exclude="treasury")
    # 2**53 and 2**53+1 share one double; so do 2**60 and 2**60+1..+128. Names are chosen so that the id
    # order contradicts the balance order inside each group.
    amounts = {
        "a": 2**53, "b": 2**53 + 1, "c": 2**53 + 2,
        "k": 2**60 + 1, "l": 2**60 + 3, "m": 2**60, "n": 2**60 + 3,
        "p": 7, "q": 7,
    }  # fmt: skip
    for user, amount in amounts.items():
        await bank.transfer("treasury", user, amount)
    balances = await bank.get_balances(list(amounts))
    assert balances == {u: Decimal(a) for u, a in amounts.items()}
    await _assert_board(bank, [*amounts, "treasury"])
    assert [h.user_id for h in await bank.get_top_holders(limit=7)] == ["l", "n", "k", "m", "c", "b", "a"]
    assert await bank.get_rank("b") == 6

    rest = MAX - sum(amounts.values())
    assert await bank.get_balance("treasury") == Decimal(rest)
    with pytest.raises(SupplyCapExceededError):
        await bank.mint("x", 1)
    with pytest.raises(InsufficientBalanceError):
        await bank.transfer("b", "x", 2**53 + 2)
    tx = await bank.transfer("b", "x", 2**53 + 1)
    assert tx.amount == Decimal(2**53 + 1)
    page = await bank.transactions.get_transaction_history("x")
    assert page.items[0].amount == Decimal(2**53 + 1)
    assert await bank.get_balance_at("b", tx.timestamp) == 0
    assert all(check.ok for check in (await bank.verify()).checks), await bank.verify()


async def test_one_account_holds_the_whole_int64_range(make_bank: BankFactory) -> None:
    bank = await make_bank(decimals=0, initial_supply=str(MAX))
    tx = await bank.transfer("treasury", "whale", MAX)
    assert tx.amount == Decimal(MAX)
    assert await bank.get_balance("whale") == Decimal(MAX)
    assert [(h.user_id, h.balance) for h in await bank.get_top_holders()] == [("whale", Decimal(MAX))]
    hold = await bank.hold("whale", "shop", MAX, expires_in=60)
    assert await bank.get_held_balance("whale") == Decimal(MAX)
    captured = await bank.capture(hold.id, MAX - 1)
    assert captured.captured_amount == Decimal(MAX - 1)
    assert await bank.get_balances(["whale", "shop"]) == {"whale": Decimal(1), "shop": Decimal(MAX - 1)}
    await bank.burn("shop", MAX - 1)
    await bank.mint("shop", MAX - 1)
    assert await bank.get_total_supply() == Decimal(MAX)
    assert all(check.ok for check in (await bank.verify()).checks)
