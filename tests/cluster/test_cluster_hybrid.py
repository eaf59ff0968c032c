"""Hybrid mode on a Redis Cluster: the sync worker's consumer group, lease and fences live in the token's slot,
and PostgreSQL receives every write."""

from __future__ import annotations

import asyncio
import secrets
from decimal import Decimal

import pytest

from tests.backends import PG_SCHEMA, POSTGRES_URL
from tests.cluster.support import LocalCluster, session_cluster
from tests.hybrid.support import store_of
from tokenbank import Settings, TokenBank
from tokenbank.storage.hybrid import stream

pytestmark = [pytest.mark.redis_cluster, pytest.mark.postgres]


@pytest.fixture
def cluster(clean_env: pytest.MonkeyPatch) -> LocalCluster:
    return session_cluster()


async def test_hybrid_syncs_a_cluster_token_into_postgres(cluster: LocalCluster) -> None:
    symbol = "H" + secrets.token_hex(5)
    settings = Settings(
        storage_mode="hybrid", redis_url=cluster.url, key_prefix="tbh" + secrets.token_hex(4), symbol=symbol,
        database_url=POSTGRES_URL, database_schema=PG_SCHEMA, initial_supply="1000", hold_sweep_interval=0,
    )  # fmt: skip
    async with TokenBank(settings) as bank:
        await asyncio.gather(*(bank.transfer("treasury", f"u{i}", "2") for i in range(40)))
        hold = await bank.hold("u1", "u2", "1", expires_in=60)
        await bank.capture(hold.id)
        store = store_of(bank)
        assert await stream.wait_drained(store.redis.client, store.redis.keys, 20)
        assert await store.sql.get_balances(["u1", "u2"]) == {"u1": 100, "u2": 300}
        assert await bank.get_balance("u2") == Decimal("3.00")
        report = await bank.verify()
        assert report.ok, report
        assert (await bank.health()).status == "ok"
