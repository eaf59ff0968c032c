"""Hybrid mode: Redis enforces account controls; the sync copies each change into PostgreSQL, where a sql-mode
bank reads (and enforces) the same controls, and a rebuild of Redis brings them back."""

from __future__ import annotations

import pytest

from tests.hybrid.conftest import BankFactory
from tests.hybrid.support import assert_stores_equal, store_of
from tokenbank import AccountFrozenError, LimitExceededError

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
