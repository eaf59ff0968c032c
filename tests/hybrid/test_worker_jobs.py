"""``TOKEN_BACKGROUND=none`` in hybrid mode: the app syncs nothing, the worker's sync job does, one worker at a
time, in ``tokenbank worker``'s own process too."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess

import pytest

from tests.hybrid.conftest import BankFactory, SettingsFactory
from tests.hybrid.support import PYTHON, ROOT, assert_stores_equal, postgres_ids, store_of
from tokenbank.storage.hybrid import stream
from tokenbank.worker import SyncJob, Worker

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


def _start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [PYTHON, "-m", "tokenbank", "worker", "--idle-seconds", "0.1"]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def test_the_sync_job_runs_in_the_worker_loop_and_hands_over_on_stop(make_bank: BankFactory) -> None:
    bank = await make_bank(background="none")
    store = store_of(bank)
    assert store.worker is None  # the app syncs nothing itself
    for n in range(20):
        await bank.transfer("treasury", f"u{n}", 1)
    await asyncio.sleep(0.3)
    assert await postgres_ids(store) == {}  # even the initial mint waits for a sync
    one, two = Worker(bank, [SyncJob(bank)]), Worker(bank, [SyncJob(bank)])
    first = asyncio.create_task(one.run())
    await assert_stores_equal(store)
    second = asyncio.create_task(two.run())
    await bank.transfer("treasury", "late", 2)
    await assert_stores_equal(store)
    assert two.batches == 0  # one leads the job; two stands by
    one.stop_event.set()
    await asyncio.wait_for(first, 10)
    await bank.transfer("treasury", "later", 3)
    await assert_stores_equal(store)  # two took over as soon as one gave the lease back
    assert two.batches > 0
    two.stop_event.set()
    await asyncio.wait_for(second, 10)


async def test_tokenbank_worker_process_syncs_hybrid_and_exits_0_on_sigterm(
    make_bank: BankFactory, hybrid_settings: SettingsFactory
) -> None:
    bank = await make_bank(background="none")
    store = store_of(bank)
    settings = hybrid_settings()
    env = {
        **os.environ,
        "TOKEN_STORAGE_MODE": "hybrid", "REDIS_URL": settings.redis_url, "DATABASE_URL": settings.database_url,
        "TOKEN_DATABASE_SCHEMA": settings.database_schema or "", "TOKEN_KEY_PREFIX": settings.key_prefix,
        "TOKEN_SYMBOL": settings.symbol,
    }  # fmt: skip
    process = _start_worker(env)
    try:
        for n in range(50):
            await bank.transfer("treasury", f"u{n % 7}", n % 10 + 1)
        await assert_stores_equal(store)
        assert len(await postgres_ids(store)) == 51
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err.decode()
    assert b"worker stopped after" in err
    backlog = await stream.read_backlog(store.redis.client, store.redis.keys)
    assert (backlog.undelivered, backlog.pending) == (0, 0)  # it wrote what it had read before it left
