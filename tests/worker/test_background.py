"""``TOKEN_BACKGROUND=none``: the app runs no hold sweeper; the worker's hold job does the sweep."""

from __future__ import annotations

import asyncio

from tests.backends import BoundBackend
from tokenbank import HoldStatus, TokenBank
from tokenbank.testing import ManualClock
from tokenbank.worker import HoldSweepJob, Worker, WorkerOptions


async def test_with_background_none_only_the_worker_voids_expired_holds(durable_backend: BoundBackend) -> None:
    clock = ManualClock()
    settings = durable_backend.settings(initial_supply=100, background="none", hold_sweep_interval=0.05)
    async with TokenBank(settings, clock=clock) as bank:
        hold = await bank.hold("treasury", "shop", 10, expires_in=60)
        clock.advance(61)
        await asyncio.sleep(0.3)  # six sweep intervals: an in-app sweeper would have voided it by now
        assert (await bank.get_hold(hold.id)).status is HoldStatus.PENDING
        worker = Worker(bank, [HoldSweepJob(bank)], WorkerOptions(lease_seconds=30))
        await worker.run(once=True)
        assert (await bank.get_hold(hold.id)).status is HoldStatus.VOIDED
        assert await bank.get_balance("treasury") == 100
