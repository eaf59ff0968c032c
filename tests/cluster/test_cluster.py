"""The Redis store on a Redis Cluster (the session's own 3 masters): tokens spread over the masters, every key of a
token in its slot, balance events and auto-pipelining across the cluster, typed errors."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.cluster.support import LocalCluster, session_cluster
from tokenbank import Settings, TokenBank
from tokenbank.errors import StorageUnavailableError
from tokenbank.storage.redis.backend import RedisStorage
from tokenbank.storage.redis.connect import is_cluster
from tokenbank.storage.redis.keys import TokenKeys

pytestmark = pytest.mark.redis_cluster


@pytest.fixture
def cluster(clean_env: pytest.MonkeyPatch) -> LocalCluster:
    return session_cluster()


@pytest.fixture
def prefix() -> str:
    return "tbc" + secrets.token_hex(4)


def settings(cluster: LocalCluster, prefix: str, symbol: str, **overrides: Any) -> Settings:
    options: dict[str, Any] = {
        "storage_mode": "redis",
        "redis_url": cluster.url,
        "key_prefix": prefix,
        "symbol": symbol,
        "initial_supply": "1000",
        "hold_sweep_interval": 0,
        **overrides,
    }
    return Settings(**options)


def spread_symbols(cluster: LocalCluster, prefix: str) -> dict[int, str]:
    """One token symbol per master: master port -> a symbol whose hash tag that master serves."""
    masters = {port for _, _, port in cluster.slot_owners(cluster.nodes[0].port)}
    chosen: dict[int, str] = {}
    for n in range(200):
        symbol = f"S{n}"
        port = cluster.master_of_slot(cluster.keyslot(TokenKeys.for_token(prefix, symbol).token)).port
        chosen.setdefault(port, symbol)
        if set(chosen) == masters:
            return chosen
    raise AssertionError(f"no symbols found that spread over {masters}")


async def node_keys(port: int, pattern: str) -> list[str]:
    client = aioredis.Redis(host="127.0.0.1", port=port, decode_responses=True)
    try:
        return [key async for key in client.scan_iter(match=pattern, count=1000)]
    finally:
        await client.aclose()


@pytest.fixture
async def banks(cluster: LocalCluster, prefix: str) -> AsyncIterator[dict[int, TokenBank]]:
    """One open bank per master, each on a token served by that master."""
    opened: dict[int, TokenBank] = {}
    try:
        for port, symbol in spread_symbols(cluster, prefix).items():
            opened[port] = TokenBank(settings(cluster, prefix, symbol))
            await opened[port].open()
        yield opened
    finally:
        for bank in opened.values():
            await bank.close()


async def test_tokens_spread_over_the_masters_with_every_key_in_their_slot(
    cluster: LocalCluster, prefix: str, banks: dict[int, TokenBank]
) -> None:
    assert len(banks) == 3
    for bank in banks.values():
        assert is_cluster(bank.storage.client)  # type: ignore[attr-defined]
        await bank.transfer("treasury", "alice", "10", idempotency_key="k1")
        hold = await bank.hold("alice", "bob", "2", expires_in=60)
        await bank.capture(hold.id, "1")
        tx = await bank.transfer("alice", "x}:{evil", "1")
        await bank.reverse(tx.id, reason="test")
        await bank.chain.seal()
        await bank.events.consume_once("audit", lambda _tx: None)
        await bank.webhooks.add("https://example.com/hook")
        await bank.monitors.add("alice", below="1")
        await bank.webhooks.run_once()
        assert (await bank.verify()).ok
    masters = sorted(banks)
    for port, bank in banks.items():
        keys = bank.storage.keys  # type: ignore[attr-defined]
        slot = cluster.keyslot(keys.token)
        assert cluster.master_of_slot(slot).port == port
        here = await node_keys(port, keys.scan_pattern)
        assert {keys.token, keys.bal, keys.lb, keys.tx, keys.stream, keys.chain} <= set(here)
        assert any(key.startswith(keys.events_prefix) for key in here)  # the durable feed's cursors
        assert all(key.startswith(keys.tag + ":") for key in here)
        assert {cluster.keyslot(key) for key in here} == {slot}
        for other in masters:
            if other != port:
                assert await node_keys(other, keys.scan_pattern) == []
        # every key of this run's prefix on this master belongs to the token it serves
        assert {key.split("}", 1)[0] + "}" for key in await node_keys(port, "{" + prefix + ":*")} == {keys.tag}


async def test_balance_events_reach_every_bank_on_the_token(cluster: LocalCluster, prefix: str) -> None:
    symbol = spread_symbols(cluster, prefix)[cluster.nodes[1].port]
    async with (
        TokenBank(settings(cluster, prefix, symbol)) as writer,
        TokenBank(settings(cluster, prefix, symbol)) as reader,
    ):
        seen: list[Decimal | None] = []
        await reader.balances.subscribe_to_balance_updates("carol", lambda event: seen.append(event.balance))
        for amount in ("1", "2", "3"):
            await writer.transfer("treasury", "carol", amount)
        for _ in range(100):
            if len(seen) == 3:
                break
            await asyncio.sleep(0.05)
        assert seen == [Decimal("1.00"), Decimal("3.00"), Decimal("6.00")]


async def test_reads_are_auto_pipelined_on_the_cluster(cluster: LocalCluster, prefix: str) -> None:
    async with TokenBank(settings(cluster, prefix, "PIPE")) as bank:
        users = [f"u{i}" for i in range(200)]
        await asyncio.gather(*(bank.transfer("treasury", user, "1") for user in users))
        store = bank.storage
        assert isinstance(store, RedisStorage)
        before = (store._reads.stats.commands, store._reads.stats.round_trips)
        balances = await asyncio.gather(*(bank.get_balance(user) for user in users))
        assert balances == [Decimal("1.00")] * len(users)
        commands = store._reads.stats.commands - before[0]
        trips = store._reads.stats.round_trips - before[1]
        assert commands >= len(users) and trips < commands / 5, (commands, trips)


async def test_waiting_for_replicas_that_do_not_exist_fails_typed(cluster: LocalCluster, prefix: str) -> None:
    """The session cluster has no replicas: a write waiting for one is applied on the master but reported as
    unavailable (never acknowledged as safe), and resending it is recognised, not applied twice."""
    async with TokenBank(settings(cluster, prefix, "WAITNONE", redis_wait_replicas=1)) as bank:
        with pytest.raises(StorageUnavailableError, match="0 of 1 Redis replicas"):
            await bank.transfer("treasury", "dave", "5", idempotency_key="once")
        with pytest.raises(StorageUnavailableError):
            await bank.transfer("treasury", "dave", "5", idempotency_key="once")
        assert await bank.get_balance("dave") == Decimal("5.00")


async def test_a_cluster_url_names_only_database_zero(cluster: LocalCluster, prefix: str) -> None:
    from tokenbank.errors import ConfigurationError

    url = cluster.url + "/3"
    with pytest.raises(ConfigurationError, match="only database 0"):
        async with TokenBank(settings(cluster, prefix, "DB3", redis_url=url)):
            pass
