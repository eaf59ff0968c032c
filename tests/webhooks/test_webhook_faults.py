"""Webhook delivery under faults, with ``tokenbank worker`` as a real process and a real local receiver.

1. The receiver is down (connection refused) for the first seconds, then answers 500 to every third call, while
   hundreds of transfers are written: every event is acknowledged, in seq order, correctly signed, and the
   delivery log shows every delivery delivered and no dead letter.
2. The receiver is slow and the worker is killed with SIGKILL at random moments while a request is in flight,
   then restarted: every event is acknowledged, in seq order per endpoint, none lost; the duplicates a kill causes
   are counted (at most one per kill: the worker has one request in flight at a time).

On PostgreSQL and Redis: SQLite's worker runs the same delivery code over the same SQL event state as PostgreSQL's
(all three are covered without faults by test_webhooks.py), and each of these tests takes 15-20 s.

Sizes: ``TOKENBANK_WEBHOOK_FAULT_TRANSFERS`` (300), ``TOKENBANK_WEBHOOK_DOWN_SECONDS`` (10),
``TOKENBANK_WEBHOOK_KILLS`` (5).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from pathlib import Path

import pytest

from tests.backends import BoundBackend, Scope, by_name, params
from tests.feed_support import settle
from tests.webhooks.fault_support import (
    FaultReceiver,
    check_log,
    check_received,
    start_worker,
    stop_worker,
    tail,
    wait_delivered,
)
from tokenbank import TokenBank

pytestmark = pytest.mark.slow

TRANSFERS = int(os.environ.get("TOKENBANK_WEBHOOK_FAULT_TRANSFERS", "300"))
DOWN_SECONDS = float(os.environ.get("TOKENBANK_WEBHOOK_DOWN_SECONDS", "10"))
KILLS = int(os.environ.get("TOKENBANK_WEBHOOK_KILLS", "5"))
KILL_TRANSFERS = 80
PATHS = ("/a", "/b")
"""The kill test's two endpoints (two paths of one receiver)."""
SLOW = (0.02, 0.08)
"""The slow receiver's answer time in seconds, drawn per request."""


@pytest.fixture(params=params(by_name("postgres", "redis")))
def fault_backend(request: pytest.FixtureRequest, tmp_path: Path, clean_env: pytest.MonkeyPatch) -> BoundBackend:
    return request.param.bind(Scope(tmp_path))  # type: ignore[no-any-return]


async def write_transfers(bank: TokenBank, count: int, seconds: float, tasks: int = 4) -> list[int]:
    """``count`` transfers from ``tasks`` writers, spread over about ``seconds``; their seqs, sorted."""
    pause = seconds * tasks / count

    async def writer(task: int) -> list[int]:
        seqs = []
        for n in range(task, count, tasks):
            seqs.append((await bank.transfer("treasury", f"user{n % 50}", 1 + n % 3)).seq)
            await asyncio.sleep(pause)
        return seqs

    parts = await asyncio.gather(*(writer(t) for t in range(tasks)))
    return sorted(seq for part in parts for seq in part)


async def test_a_receiver_down_then_flaky_gets_every_event_in_order(
    fault_backend: BoundBackend, tmp_path: Path
) -> None:
    settings = fault_backend.settings(initial_supply=1_000_000)
    receiver = FaultReceiver(fail_every=3)
    log = tmp_path / "worker.log"
    async with TokenBank(settings) as bank:
        endpoint = await bank.webhooks.add(receiver.url())
        worker = await start_worker(settings, log)
        try:
            started = time.monotonic()
            writes = asyncio.create_task(write_transfers(bank, TRANSFERS, DOWN_SECONDS * 1.2))
            await asyncio.sleep(DOWN_SECONDS)
            receiver.up()
            expected = await writes
            await settle(bank)
            await wait_delivered(bank, [endpoint.id], len(expected), worker, log, within=60)
            took = time.monotonic() - started
            assert await stop_worker(worker) == 0, tail(log)
        finally:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
            receiver.close()
        outcome = check_received(receiver.hits, endpoint.secret, expected)
        deliveries = await check_log(bank, endpoint.id, expected)
        attempts = {d.event_id: d.attempts for d in deliveries}
        hits = [h.headers["webhook-id"] for h in receiver.hits]
        assert all(hits.count(event_id) <= n for event_id, n in attempts.items()), "an attempt was not logged"
        first = min(deliveries, key=lambda d: d.seq)
        refused = [a for a in await bank.webhooks.attempts(first.id) if a.response_status is None]
        assert refused and all("Connect" in (a.error or "") for a in refused), "refused attempts are logged"
        retried = sum(d.attempts - 1 for d in deliveries)
    assert outcome.refused_by_receiver == receiver.calls // 3 > 0
    print(
        f"\n{fault_backend.name}: {TRANSFERS} transfers, receiver down {DOWN_SECONDS:.0f} s then 500 on every "
        f"third call: all {len(expected)} events acknowledged in order {took:.1f} s after the start; "
        f"{outcome.requests} requests, {outcome.refused_by_receiver} answered 500, {len(refused)} refused "
        f"connections for the first event, {retried} retries in all, {outcome.duplicates} duplicates, "
        "0 dead letters"
    )


async def test_a_worker_killed_mid_delivery_loses_nothing(fault_backend: BoundBackend, tmp_path: Path) -> None:
    settings = fault_backend.settings(initial_supply=1_000_000)
    seed = random.randrange(2**32)
    chance = random.Random(seed)
    receiver = FaultReceiver(delay=SLOW)
    receiver.up()
    log = tmp_path / "worker.log"
    kills = 0
    async with TokenBank(settings) as bank:
        endpoints = [await bank.webhooks.add(receiver.url(path)) for path in PATHS]
        writes = asyncio.create_task(write_transfers(bank, KILL_TRANSFERS, 3.0))
        worker = await start_worker(settings, log)
        try:
            started = time.monotonic()
            while kills < KILLS:
                target = receiver.calls + chance.randrange(1, 15)  # let it deliver a few, then kill it mid-request
                deadline = time.monotonic() + 30
                while receiver.calls < target or not receiver.in_flight:
                    assert worker.returncode is None, tail(log)
                    assert time.monotonic() < deadline, f"the worker sends nothing:\n{tail(log)}"
                    await asyncio.sleep(0.002)
                await asyncio.sleep(chance.uniform(0, SLOW[0]))  # the request is still being answered
                worker.send_signal(signal.SIGKILL)
                await worker.wait()
                kills += 1
                worker = await start_worker(settings, log)
            expected = await writes
            await settle(bank)
            await wait_delivered(bank, [e.id for e in endpoints], len(expected), worker, log, within=60)
            took = time.monotonic() - started
            assert await stop_worker(worker) == 0, tail(log)
        finally:
            writes.cancel()
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
            receiver.close()
        outcomes = [check_received(receiver.on(p), e.secret, expected) for p, e in zip(PATHS, endpoints, strict=True)]
        for endpoint in endpoints:
            await check_log(bank, endpoint.id, expected)
    duplicates = sum(o.duplicates for o in outcomes)
    assert duplicates <= kills, "a kill can repeat at most the one request in flight"
    print(
        f"\n{fault_backend.name}: worker SIGKILLed {kills} times mid-delivery (seed {seed}), 2 endpoints x "
        f"{len(expected)} events all acknowledged in order in {took:.1f} s; {duplicates} duplicates "
        f"({duplicates / kills:.1f} per kill)"
    )
