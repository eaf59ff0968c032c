"""The worker's leader election: of several workers of one token, one runs each job; another takes over."""

from __future__ import annotations

from pathlib import Path

from tests.backends import BoundBackend
from tests.feed_support import settle
from tests.webhooks.receiver import running_receiver
from tokenbank import TokenBank
from tokenbank.chain import SigningKey
from tokenbank.worker import ChainJob, DeliveryJob, Worker, WorkerOptions


async def test_one_worker_leads_and_another_takes_over_when_it_stops(durable_backend: BoundBackend) -> None:
    settings = durable_backend.settings(initial_supply=100)
    async with TokenBank(settings) as one, TokenBank(settings) as two:
        with running_receiver() as receiver:
            await one.webhooks.add(receiver.url)
            first = Worker(one, [DeliveryJob(one)], WorkerOptions(lease_seconds=60))
            second = Worker(two, [DeliveryJob(two)], WorkerOptions(lease_seconds=60))
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


async def test_the_chain_job_seals_and_checkpoints(durable_backend: BoundBackend, tmp_path: Path) -> None:
    key = tmp_path / "signing.pem"
    SigningKey.generate().write(key)
    async with TokenBank(durable_backend.settings(initial_supply=100, signing_key=str(key))) as bank:
        for n in range(3):
            await bank.transfer("treasury", f"u{n}", 1)
        worker = Worker(bank, [ChainJob(bank, checkpoint_seconds=3600)], WorkerOptions(lease_seconds=60))
        await worker.run(once=True)
        entries = await bank.storage.chain_entries(0, 100)  # type: ignore[attr-defined]
        assert len(entries) == 4 and all(entry.hash for entry in entries)  # no write is left unhashed
        [checkpoint] = await bank.chain.checkpoints()
        assert checkpoint.seq == entries[-1].tx.seq
        await bank.transfer("treasury", "late", 1)
        await worker.run(once=True)  # sealed again, but the next checkpoint is an hour away
        assert (await bank.storage.chain_entries(entries[-1].tx.seq, 10))[0].hash  # type: ignore[attr-defined]
        assert len(await bank.chain.checkpoints()) == 1
