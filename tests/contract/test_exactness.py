"""Exact to the last base unit: balances at 2**53+1 and 2**63-1 (where doubles fail), 18 decimals."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.backends import BoundBackend
from tests.support import assert_error, history, open_bank, snapshot
from tokenbank import InvalidAmountError, SupplyCapExceededError

MAX = 2**63 - 1
DOUBLE_EDGE = 2**53 + 1  # the first integer a double cannot hold


async def test_balances_at_2_53_plus_1_and_2_63_minus_1(backend: BoundBackend) -> None:
    async with open_bank(backend, decimals=0, initial_supply=DOUBLE_EDGE, max_supply=MAX) as bank:
        assert await bank.get_balance("treasury") == DOUBLE_EDGE
        tx = await bank.transfer("treasury", "alice", 1)
        assert tx.amount == 1
        assert await bank.get_balances(["treasury", "alice"]) == {"treasury": 2**53, "alice": 1}
        await bank.transfer("alice", "treasury", 1)
        assert await bank.get_balance("treasury") == DOUBLE_EDGE

        minted = await bank.mint("whale", MAX - DOUBLE_EDGE)
        assert minted.amount == MAX - DOUBLE_EDGE
        assert await bank.get_total_supply() == MAX
        before = await snapshot(bank, ["treasury", "alice", "whale"])
        with pytest.raises(SupplyCapExceededError) as caught:
            await bank.mint("alice", 1)
        assert_error(caught.value, SupplyCapExceededError)
        assert await snapshot(bank, ["treasury", "alice", "whale"]) == before

        await bank.transfer("treasury", "whale", DOUBLE_EDGE - 1)
        assert await bank.get_balance("whale") == MAX - 1
        await bank.transfer("treasury", "whale", 1)
        whale = await bank.get_balance("whale")
        assert whale == MAX and str(whale) == str(MAX)
        assert await bank.get_circulating_supply() == MAX
        [top] = await bank.get_top_holders()
        assert (top.user_id, top.balance) == ("whale", MAX)

        out = await bank.transfer("whale", "alice", 1)
        assert out.amount == 1
        assert await bank.get_balances(["whale", "alice"]) == {"whale": MAX - 1, "alice": 1}
        hold = await bank.hold("whale", "alice", MAX - 2, expires_in=60)
        assert hold.amount == MAX - 2
        assert await bank.get_held_balance("whale") == MAX - 2
        assert await bank.get_balance("whale") == 1
        await bank.capture(hold.id, DOUBLE_EDGE)
        assert await bank.get_balances(["whale", "alice"]) == {"whale": MAX - 1 - DOUBLE_EDGE, "alice": DOUBLE_EDGE + 1}
        assert await bank.get_balance_at("alice", out.timestamp) == 1
        [capture, *_] = [t for t in await history(bank, "alice") if t.type == "capture"]
        assert capture.amount == DOUBLE_EDGE
        await bank.burn("alice", DOUBLE_EDGE)
        assert await bank.get_total_supply() == MAX - DOUBLE_EDGE


async def test_without_max_supply_the_cap_is_2_63_minus_1(backend: BoundBackend) -> None:
    async with open_bank(backend, decimals=0, initial_supply=MAX) as bank:
        assert await bank.get_total_supply() == MAX
        with pytest.raises(SupplyCapExceededError):
            await bank.mint("alice", 1)
        with pytest.raises(InvalidAmountError):
            await bank.transfer("treasury", "alice", MAX + 1)
        await bank.transfer("treasury", "alice", MAX)
        assert await bank.get_balance("alice") == MAX
        await bank.burn("alice", MAX)
        assert await bank.get_total_supply() == 0


async def test_eighteen_decimals(backend: BoundBackend) -> None:
    async with open_bank(backend, decimals=18, initial_supply="9", max_supply="9.223372036854775807") as bank:
        tiny = "0.000000000000000001"
        tx = await bank.transfer("treasury", "alice", tiny)
        assert tx.amount == Decimal(tiny)
        assert await bank.get_balance("alice") == Decimal(tiny)
        assert await bank.get_balance("treasury") == Decimal("8.999999999999999999")
        await bank.transfer("treasury", "alice", Decimal("1.000000000000000001"))
        assert await bank.get_balance("alice") == Decimal("1.000000000000000002")
        await bank.mint("bob", "0.223372036854775807")
        assert await bank.get_total_supply() == Decimal("9.223372036854775807")
        with pytest.raises(SupplyCapExceededError):
            await bank.mint("bob", tiny)
        with pytest.raises(InvalidAmountError):
            await bank.transfer("treasury", "alice", "0.0000000000000000001")
        with pytest.raises(InvalidAmountError):
            await bank.transfer("treasury", "alice", "9.223372036854775808")
        [latest, *_] = await history(bank, "alice")
        assert latest.amount == Decimal("1.000000000000000001")
        await bank.burn("alice", tiny)
        assert await bank.get_balance("alice") == Decimal("1.000000000000000001")


async def test_decimals_zero_refuses_fractions(backend: BoundBackend) -> None:
    async with open_bank(backend, decimals=0, initial_supply=10) as bank:
        with pytest.raises(InvalidAmountError):
            await bank.transfer("treasury", "alice", "0.5")
        await bank.transfer("treasury", "alice", "1.000")  # trailing zeros are exact
        balance = await bank.get_balance("alice")
        assert balance == 1 and balance.as_tuple().exponent == 0
