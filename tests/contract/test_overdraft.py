"""Overdraft limits on every store: an account with an overdraft L may be debited down to -L (never one base unit
further), every other account stays at or above zero; enforced inside the store's write, exact under concurrency,
with conservation, verify, the leaderboard and circulating supply defined for signed balances."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from tests.backends import BoundBackend
from tests.support import snapshot
from tokenbank import (
    InsufficientBalanceError,
    SupplyCapExceededError,
    TokenBank,
    TransactionStateError,
    TransferRequest,
)


@pytest.fixture
async def funded(bank: TokenBank) -> TokenBank:
    await bank.transfer("treasury", "alice", 100)
    await bank.transfer("treasury", "bob", 100)
    return bank


async def _conserved(bank: TokenBank, accounts: list[str]) -> None:
    balances = await bank.get_balances(accounts)
    held = [await bank.get_held_balance(a) for a in accounts]
    assert sum(balances.values()) + sum(held) == await bank.get_total_supply()
    report = await bank.verify()
    assert report.ok, [c for c in report.checks if not c.ok]


async def test_debits_go_exactly_to_minus_the_limit_and_no_further(funded: TokenBank) -> None:
    bank = funded
    info = await bank.set_limits("alice", overdraft=50)
    assert info.overdraft == 50 and (await bank.get_account("bob")).overdraft is None
    await bank.transfer("alice", "bob", 120)
    await bank.burn("alice", 10)
    await bank.hold("alice", "shop", 15, expires_in=60)
    await bank.transfer_split("alice", Decimal("4.99"), [("bob", 1), ("carol", 1)])
    assert await bank.get_balance("alice") == Decimal("-49.99")
    before = await snapshot(bank, ("treasury", "alice", "bob", "shop"))
    with pytest.raises(InsufficientBalanceError) as caught:
        await bank.transfer("alice", "bob", Decimal("0.02"))
    assert caught.value.available == Decimal("0.01") and caught.value.requested == Decimal("0.02")
    assert "'alice' has 0.01 available" in str(caught.value)
    for attempt in (bank.burn("alice", Decimal("0.02")), bank.hold("alice", "bob", Decimal("0.02"), expires_in=60)):
        with pytest.raises(InsufficientBalanceError):
            await attempt
    assert await snapshot(bank, ("treasury", "alice", "bob", "shop")) == before
    tx = await bank.transfer("alice", "bob", Decimal("0.01"))  # exactly -L
    assert tx.amount == Decimal("0.01") and await bank.get_balance("alice") == -50
    with pytest.raises(InsufficientBalanceError):
        await bank.transfer("alice", "bob", Decimal("0.01"))
    await _conserved(bank, ["treasury", "alice", "bob", "carol", "shop"])


async def test_accounts_without_an_overdraft_stay_at_zero_with_the_usual_message(funded: TokenBank) -> None:
    bank = funded
    await bank.set_limits("alice", overdraft=50)
    before = await snapshot(bank)
    with pytest.raises(InsufficientBalanceError) as caught:
        await bank.transfer("bob", "alice", Decimal("100.01"))
    assert str(caught.value) == "insufficient balance: 'bob' has 100.00 available, 100.01 requested"
    assert await snapshot(bank) == before


async def test_captures_exchange_of_held_funds_and_reversals_respect_the_floor(funded: TokenBank) -> None:
    bank = funded
    await bank.set_limits("bob", overdraft=10)
    hold = await bank.hold("bob", "shop", 105, expires_in=60)  # reserves 5 of the overdraft
    assert await bank.get_balance("bob") == -5 and await bank.get_held_balance("bob") == 105
    await bank.capture(hold.id, amount=100)  # the rest (5) goes back to bob
    assert await bank.get_balance("bob") == 0 and await bank.get_held_balance("bob") == 0
    sent = await bank.transfer("shop", "bob", 50)
    await bank.transfer("bob", "alice", 60)
    assert await bank.get_balance("bob") == -10
    with pytest.raises(InsufficientBalanceError):
        await bank.reverse(sent.id, reason="refund")  # would take bob to -60
    await _conserved(bank, ["treasury", "alice", "bob", "shop"])


async def test_atomic_batches_with_an_overdrawn_leg_fail_whole(funded: TokenBank) -> None:
    bank = funded
    await bank.set_limits("alice", overdraft=5)
    before = await snapshot(bank)
    results = await bank.transfer_many(
        [TransferRequest("alice", "bob", 100), TransferRequest("alice", "bob", 6)], atomic=True
    )
    assert isinstance(results[1].error, InsufficientBalanceError)
    assert await snapshot(bank) == before
    results = await bank.transfer_many([TransferRequest("alice", "bob", 100), TransferRequest("alice", "bob", 5)])
    assert all(r.error is None for r in results) and await bank.get_balance("alice") == -5


async def test_leaderboard_rank_and_circulating_supply_with_a_negative_account(funded: TokenBank) -> None:
    bank = funded
    await bank.set_limits("alice", overdraft=30)
    circulating = await bank.get_circulating_supply()
    await bank.transfer("alice", "bob", 125)
    top = [(h.user_id, h.balance) for h in await bank.get_top_holders(limit=10)]
    assert top == [("bob", 225)]  # no rank below zero (the treasury is excluded by default)
    assert await bank.get_rank("alice") is None and await bank.get_rank("bob") == 1
    # Circulating supply = total supply minus the excluded accounts' holdings: a move between two
    # non-excluded accounts, even into debt, leaves it as it was.
    assert await bank.get_circulating_supply() == circulating
    await bank.transfer("bob", "alice", 25)  # back to zero: still unranked
    assert await bank.get_rank("alice") is None
    await bank.transfer("bob", "alice", 1)
    assert await bank.get_rank("alice") == 2


async def test_an_overdrawn_excluded_account_raises_circulating_supply(backend: BoundBackend) -> None:
    async with TokenBank(backend.settings(initial_supply=1000)) as bank:
        await bank.set_limits("treasury", overdraft=200)
        assert await bank.get_circulating_supply() == 0  # all of it in the (excluded) treasury
        await bank.transfer("treasury", "alice", 1100)
        assert await bank.get_balance("treasury") == -100
        # total supply (1000) minus what the excluded treasury holds (-100): the unchanged formula
        assert await bank.get_circulating_supply() == 1100
        await _conserved(bank, ["treasury", "alice"])


async def test_close_is_refused_while_the_balance_is_negative(funded: TokenBank) -> None:
    bank = funded
    await bank.set_limits("alice", overdraft=10)
    await bank.transfer("alice", "bob", 105)
    with pytest.raises(TransactionStateError):
        await bank.close_account("alice")
    assert not (await bank.get_account("alice")).closed
    await bank.transfer("bob", "alice", 5)
    assert (await bank.close_account("alice")).closed


async def test_lowering_the_limit_below_the_debt_is_refused(funded: TokenBank) -> None:
    bank = funded
    await bank.set_limits("alice", overdraft=40)
    await bank.transfer("alice", "bob", 130)
    before = (await bank.get_account("alice"), len(await bank.get_audit_log(limit=100)))
    for change in (
        bank.set_limits("alice", overdraft="29.99"),
        bank.set_limits("alice", overdraft=0),
        bank.set_limits("alice", max_balance=500),  # a limit left out is removed: the overdraft too
    ):
        with pytest.raises(TransactionStateError) as caught:
            await change
        assert caught.value.param == "overdraft" and "owes more than the new overdraft" in str(caught.value)
    assert (await bank.get_account("alice"), len(await bank.get_audit_log(limit=100))) == before
    info = await bank.set_limits("alice", overdraft=30)  # exactly the debt
    assert info.overdraft == 30 and info.balance == -30
    with pytest.raises(InsufficientBalanceError) as short:
        await bank.transfer("alice", "bob", Decimal("0.01"))
    assert short.value.available == 0
    await bank.transfer("bob", "alice", 30)  # credits always arrive
    cleared = await bank.set_limits("alice", overdraft=0)  # 0 clears it, as None does
    assert cleared.overdraft is None and cleared.balance == 0
    with pytest.raises(InsufficientBalanceError):
        await bank.transfer("alice", "bob", Decimal("0.01"))
    await _conserved(bank, ["treasury", "alice", "bob"])


async def test_overdraft_changes_are_audited(funded: TokenBank) -> None:
    bank = funded
    await bank.set_limits("alice", max_balance=500, overdraft="12.5")
    await bank.set_limits("alice")
    entries = [e for e in await bank.get_audit_log(limit=20) if e.action == "account.limits"]
    assert "od" not in entries[0].details and entries[1].details["od"] == "1250"
    assert entries[1].details["max"] == "50000"


async def test_concurrent_debits_pass_exactly_down_to_the_floor(backend: BoundBackend) -> None:
    async with TokenBank(backend.settings(initial_supply=1000)) as bank:
        await bank.transfer("treasury", "alice", 1)
        await bank.set_limits("alice", overdraft="0.37")

        async def one(n: int) -> bool:
            try:
                await bank.transfer("alice", f"shop{n % 7}", Decimal("0.01"))
            except InsufficientBalanceError:
                return False
            return True

        passed = await asyncio.gather(*(one(n) for n in range(1000)))
        assert sum(passed) == 137
        assert await bank.get_balance("alice") == Decimal("-0.37")
        await _conserved(bank, ["treasury", "alice", *(f"shop{n}" for n in range(7))])


async def test_debts_beyond_two_to_the_53_stay_exact(funded: TokenBank) -> None:
    bank = funded
    floor = Decimal("90000000000000000.00")  # 9e18 base units: far beyond a double's exact integers
    await bank.set_limits("alice", overdraft=floor)
    await bank.transfer("alice", "carol", floor + 100)  # alice exactly at -floor
    assert await bank.get_balance("alice") == -floor and await bank.get_balance("carol") == floor + 100
    with pytest.raises(InsufficientBalanceError):
        await bank.transfer("alice", "bob", Decimal("0.01"))
    await bank.transfer("carol", "alice", Decimal("0.03"))
    await bank.burn("alice", Decimal("0.01"))
    assert await bank.get_balance("alice") == -floor + Decimal("0.02")
    assert await bank.get_rank("alice") is None and await bank.get_rank("carol") == 1
    await _conserved(bank, ["treasury", "alice", "bob", "carol"])


LARGEST = Decimal(2**63 - 1) / 100
"""The largest amount a store holds, 2^63-1 base units, at the suite's two decimals."""


async def test_no_overdraft_can_take_a_balance_past_the_largest_amount(backend: BoundBackend) -> None:
    async with TokenBank(backend.settings(initial_supply=LARGEST)) as bank:
        before = (await bank.get_account("alice"), len(await bank.get_audit_log(limit=100)))
        with pytest.raises(SupplyCapExceededError) as caught:
            await bank.set_limits("alice", overdraft=Decimal("0.05"))
        assert caught.value.param == "overdraft" and "2^63-1 base units" in str(caught.value)
        assert (await bank.get_account("alice"), len(await bank.get_audit_log(limit=100))) == before
        await bank.burn("treasury", Decimal("0.05"))
        await bank.set_limits("alice", overdraft=Decimal("0.05"))  # supply + limits == the largest amount
        with pytest.raises(SupplyCapExceededError):
            await bank.set_limits("bob", overdraft=Decimal("0.01"))
        with pytest.raises(SupplyCapExceededError):
            await bank.set_limits("alice", overdraft=Decimal("0.06"))
        with pytest.raises(SupplyCapExceededError) as refused_mint:
            await bank.mint("carol", Decimal("0.01"))
        assert "overdraft limit" in str(refused_mint.value)
        await bank.transfer("alice", "treasury", Decimal("0.05"))  # the treasury now holds exactly the largest
        assert await bank.get_balance("treasury") == LARGEST and await bank.get_balance("alice") == Decimal("-0.05")
        with pytest.raises(InsufficientBalanceError):
            await bank.transfer("alice", "treasury", Decimal("0.01"))
        await bank.transfer("treasury", "alice", Decimal("0.05"))
        await bank.set_limits("alice", overdraft=Decimal("0.02"))  # lowering frees room for a mint
        await bank.mint("carol", Decimal("0.03"))
        with pytest.raises(SupplyCapExceededError):
            await bank.mint("carol", Decimal("0.01"))
        await _conserved(bank, ["treasury", "alice", "carol"])


async def test_mints_and_raised_limits_at_once_share_the_room_exactly(backend: BoundBackend) -> None:
    async with TokenBank(backend.settings(initial_supply=LARGEST - Decimal("0.40"))) as bank:  # room: 40 units

        async def attempt(n: int) -> bool:
            try:
                if n % 2:
                    await bank.mint("carol", Decimal("0.01"))
                else:
                    await bank.set_limits(f"u{n}", overdraft=Decimal("0.01"))
            except SupplyCapExceededError:
                return False
            return True

        passed = await asyncio.gather(*(attempt(n) for n in range(100)))
        assert sum(passed) == 40
        limits = [(await bank.get_account(f"u{n}")).overdraft or 0 for n in range(0, 100, 2)]
        assert await bank.get_total_supply() + sum(limits) == LARGEST
        await _conserved(bank, ["treasury", "carol"])
