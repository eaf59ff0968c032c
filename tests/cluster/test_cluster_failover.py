"""Failover on a Redis Cluster of this test's own (3 masters, 3 replicas): a master is SIGKILLed under write load;
writes in between fail only with StorageUnavailableError, resume once its replica is promoted, and every
acknowledged write is still there — always with TOKEN_REDIS_WAIT_REPLICAS=1; without it, asynchronous
replication may lose the last ones (counted and printed)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.cluster.support import LocalCluster, require_binaries
from tokenbank import Settings, TokenBank
from tokenbank.errors import StorageUnavailableError
from tokenbank.storage.redis.keys import TokenKeys

pytestmark = pytest.mark.redis_cluster

WRITERS = 4
ACCOUNTS = 20


@pytest.fixture
def cluster(clean_env: pytest.MonkeyPatch) -> Iterator[LocalCluster]:
    require_binaries()
    own = LocalCluster(masters=3, replicas_per_master=1).start()
    try:
        yield own
    finally:
        own.stop()


@dataclass
class Run:
    acked: list[tuple[float, str]] = field(default_factory=list)
    unavailable: list[float] = field(default_factory=list)
    other: list[BaseException] = field(default_factory=list)


async def write_until(bank: TokenBank, run: Run, stop: asyncio.Event) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        try:
            tx = await bank.transfer("treasury", f"u{n % ACCOUNTS}", "1")
            run.acked.append((time.monotonic(), tx.id))
        except StorageUnavailableError:
            run.unavailable.append(time.monotonic())
            await asyncio.sleep(0.01)
        except Exception as exc:  # anything untyped fails the test
            run.other.append(exc)
            return


async def wait_for_write_after(run: Run, moment: float, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not any(at > moment for at, _ in run.acked):  # noqa: ASYNC110
        await asyncio.sleep(0.05)


async def fail_over(cluster: LocalCluster, wait_replicas: int) -> dict[str, float]:
    prefix = "tbf" + secrets.token_hex(4)
    keys = TokenKeys.for_token(prefix, "FAIL")
    slot = cluster.keyslot(keys.token)
    await asyncio.to_thread(cluster.wait_settled)
    master = cluster.master_of_slot(slot)
    replica = cluster.replica_of(master)
    settings = Settings(
        storage_mode="redis", redis_url=cluster.url, key_prefix=prefix, symbol="FAIL", initial_supply="1000000",
        hold_sweep_interval=0, redis_wait_replicas=wait_replicas,
    )  # fmt: skip
    run, stop = Run(), asyncio.Event()
    figures: dict[str, float] = {}
    async with TokenBank(settings) as bank:
        writers = [asyncio.create_task(write_until(bank, run, stop)) for _ in range(WRITERS)]
        await asyncio.sleep(0.5)
        killed_at = time.monotonic()
        cluster.kill(master)
        figures["promoted_after_s"] = await asyncio.to_thread(cluster.wait_promoted, slot, master)
        assert cluster.master_of_slot(slot).port == replica.port
        promoted_at = time.monotonic()
        if wait_replicas:
            # The new master has no replica yet: no write can be acknowledged as replicated, so none is.
            await asyncio.sleep(1.0)
            assert not any(at > promoted_at for at, _ in run.acked)
            cluster.restart(master)  # comes back empty, as the new master's replica
            await asyncio.to_thread(cluster.wait_replicas_synced)
            figures["replica_back_after_s"] = time.monotonic() - killed_at
        await wait_for_write_after(run, time.monotonic())
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*writers)

        assert run.other == [], run.other
        before = [tx_id for at, tx_id in run.acked if at < killed_at]
        after = [at for at, _ in run.acked if at > killed_at + figures["promoted_after_s"]]
        assert before and after, "writes did not resume after the failover"
        lost = [tx_id for _, tx_id in run.acked if await bank.storage.get_transaction(tx_id) is None]
        assert (await bank.verify()).ok
    figures.update(
        acknowledged=len(run.acked), acknowledged_before_kill=len(before), lost=len(lost),
        unavailable_errors=len(run.unavailable), first_write_after_kill_s=min(after) - killed_at,
    )  # fmt: skip
    print(f"failover, TOKEN_REDIS_WAIT_REPLICAS={wait_replicas}: { ({k: round(v, 2) for k, v in figures.items()}) }")
    return figures


async def test_failover_without_waiting_for_replicas(cluster: LocalCluster) -> None:
    figures = await fail_over(cluster, wait_replicas=0)
    assert figures["unavailable_errors"] > 0  # the gap was seen, as typed errors only
    assert figures["first_write_after_kill_s"] < 15


async def test_failover_waiting_for_a_replica_loses_no_acknowledged_write(cluster: LocalCluster) -> None:
    """With WAIT, no acknowledged write is lost; after the failover the shard has no replica left, so writes are
    refused (typed) until one is back."""
    figures = await fail_over(cluster, wait_replicas=1)
    assert figures["lost"] == 0
    assert figures["first_write_after_kill_s"] > figures["promoted_after_s"]
