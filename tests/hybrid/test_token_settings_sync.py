"""Hybrid mode: a token's settings, leaderboard exclusions included, reach PostgreSQL at creation and through the
sync worker after configure_token, so a sql-mode bank on the same database reads the same token."""

from __future__ import annotations

import pytest

from tests.hybrid.support import drain, store_of
from tokenbank import TokenBank

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


async def test_configured_settings_reach_postgresql(make_bank, hybrid_settings) -> None:  # type: ignore[no-untyped-def]
    bank = await make_bank(leaderboard_exclude=("treasury", "ops"), max_supply=5000)
    store = store_of(bank)
    assert (await store.sql.get_token()).leaderboard_exclude == ("treasury", "ops")  # type: ignore[union-attr]

    await bank.configure_token(leaderboard_exclude=["vault"], max_supply=None, name="Renamed")
    await bank.mint("alice", 10)
    await drain(store)
    stored = await store.sql.get_token()
    assert stored is not None
    assert (stored.leaderboard_exclude, stored.max_supply, stored.name) == (("vault",), None, "Renamed")
    assert [e.action for e in await store.sql.audit_log(10, None)][:2] == ["mint", "token.configure"]

    # The sql-mode view of the same database and symbol: the same token, exclusions included.
    sql_settings = hybrid_settings(storage_mode="sql", enable_notifications=False, auto_create=False)
    async with TokenBank(sql_settings) as reader:
        info = await reader.get_token_info()
        assert (info.name, info.leaderboard_exclude, info.max_supply) == ("Renamed", ("vault",), None)
        assert [d.field for d in reader.settings_drift] == ["name"]  # the fixture gives name="Hybrid"
