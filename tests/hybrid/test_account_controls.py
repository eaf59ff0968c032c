"""Hybrid mode: Redis enforces account controls; the sync copies each change into PostgreSQL, where a sql-mode
bank reads (and enforces) the same controls, and a rebuild of Redis brings them back."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.hybrid.conftest import BankFactory
from tests.hybrid.support import assert_stores_equal, postgres_accounts, store_of
from tokenbank import AccountFrozenError, InsufficientBalanceError, LimitExceededError

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


async def test_controls_reach_postgresql_and_survive_a_rebuild(make_bank: BankFactory) -> None:
    bank = await make_bank()
    store = store_of(bank)
    await bank.transfer("treasury", "alice", 100)
    await bank.freeze("alice", reason="review")
    await bank.set_limits("bob", max_balance=50)
    await bank.freeze("carol", credits=True, debits=False, reason="kyc")
    await bank.unfreeze("carol")
    await assert_stores_equal(store)

    sql_bank = await make_bank(storage_mode="sql")
    alice = await sql_bank.get_account("alice")
    assert alice.frozen is not None and alice.frozen.reason == "review"
    assert (await sql_bank.get_account("bob")).max_balance == 50
    assert (await sql_bank.get_account("carol")).frozen is None
    with pytest.raises(AccountFrozenError):
        await sql_bank.transfer("alice", "bob", 1)

    await bank.rebuild_cache(force=True)
    with pytest.raises(AccountFrozenError):
        await bank.transfer("alice", "bob", 1)
    with pytest.raises(LimitExceededError):
        await bank.transfer("treasury", "bob", 51)
    assert (await bank.get_account("alice")).frozen is not None


async def test_an_overdrawn_account_lands_in_postgresql_exactly(make_bank: BankFactory) -> None:
    bank = await make_bank()
    store = store_of(bank)
    await bank.set_limits("alice", overdraft=50)
    await bank.transfer("alice", "bob", 30)
    hold = await bank.hold("alice", "carol", 5, expires_in=60)
    await bank.burn("alice", Decimal("0.01"))
    assert await bank.get_balance("alice") == Decimal("-35.01")
    await assert_stores_equal(store)
    assert (await postgres_accounts(store))["alice"] == (-3501, 500)

    sql_bank = await make_bank(storage_mode="sql")
    alice = await sql_bank.get_account("alice")
    assert (alice.balance, alice.held, alice.overdraft) == (Decimal("-35.01"), 5, 50)
    assert await sql_bank.get_rank("alice") is None
    with pytest.raises(InsufficientBalanceError):
        await sql_bank.transfer("alice", "bob", Decimal("15.00"))
    assert (await sql_bank.verify()).ok

    await bank.capture(hold.id)
    await bank.transfer("alice", "bob", Decimal("14.99"))  # exactly -50
    await assert_stores_equal(store)
    assert (await sql_bank.get_account("alice")).balance == -50
    assert (await sql_bank.verify()).ok
    await bank.rebuild_cache(force=True)
    assert await bank.get_balance("alice") == -50 and await bank.get_rank("alice") is None
    with pytest.raises(InsufficientBalanceError):
        await bank.transfer("alice", "bob", Decimal("0.01"))
    assert (await bank.verify()).ok
