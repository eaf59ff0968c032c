"""The worker's leader election: of several workers of one token, one runs each job; another takes over."""

from __future__ import annotations

from tests.backends import BoundBackend
from tests.feed_support import settle
from tests.webhooks.receiver import running_receiver
from tokenbank import TokenBank
from tokenbank.worker import Worker, WorkerOptions


async def test_one_worker_leads_and_another_takes_over_when_it_stops(durable_backend: BoundBackend) -> None:
    settings = durable_backend.settings(initial_supply=100)
    async with TokenBank(settings) as one, TokenBank(settings) as two:
        with running_receiver() as receiver:
            await one.webhooks.add(receiver.url)
            first = Worker(one, options=WorkerOptions(lease_seconds=60))
            second = Worker(two, options=WorkerOptions(lease_seconds=60))
            await one.transfer("treasury", "a", 1)
            await settle(one)
            await first.run(once=True)
            await second.run(once=True)  # first released its lease on the way out: second may lead now
            assert len(receiver.acknowledged) == 1
            assert await one.events.state.take_lease("webhooks", first.owner, 60)
            await two.transfer("treasury", "b", 1)
            await settle(two)
            before = second.batches
            assert await second.round() == 0 and second.batches == before  # first holds the lease
            await one.events.state.release_lease("webhooks", first.owner)
            await second.run(once=True)
            assert second.batches == before + 1
            assert [r.event["data"]["to_user_id"] for r in receiver.acknowledged] == ["a", "b"]
