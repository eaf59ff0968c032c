"""``tokenbank worker``: background jobs of one token, each run by one process at a time.

A :class:`Worker` runs each of its :class:`Job`\\ s in a loop of its own, so a slow webhook receiver never delays
the hybrid sync. Before each batch of a job it takes (or renews) the job's lease in the store, so any number of
worker processes can run: one leads each job, the others stand by and take over within ``lease_seconds`` of the
leader's death. A job is a small object with a name and a ``run_once`` that does one bounded batch: webhook
delivery (with balance monitors), sealing the hash chain, the hold expiry sweep and, in hybrid mode, the sync of
Redis's ledger stream into PostgreSQL. Stopping (SIGTERM, SIGINT, or the ``stop`` event) lets the batches in
progress finish, gives the leases back and returns. Apps then open their banks with ``TOKEN_BACKGROUND=none``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from tokenbank.bank import TokenBank
from tokenbank.errors import ConfigurationError, TokenBankError, TransactionStateError
from tokenbank.services.delivery import Backoff, Dispatcher
from tokenbank.settings import StorageMode
from tokenbank.storage.capabilities import LotStore
from tokenbank.storage.durable import EventState

if TYPE_CHECKING:  # hybrid mode needs the redis extra: imported when a sync job starts
    from tokenbank.storage.hybrid.status import SyncOptions
    from tokenbank.storage.hybrid.worker import SyncWorker

logger = logging.getLogger("tokenbank")


class Job(Protocol):
    """One background job of a token."""

    name: str
    """Also the name of its lease (unique per token)."""

    idle_seconds: float | None
    """Pause after a batch that did nothing; None: the worker's ``idle_seconds``."""

    async def start(self) -> None:
        """Acquire what the job needs (connections, clients); called once before the first batch."""

    async def run_once(self) -> int:
        """One bounded batch; how much it did (0: nothing to do, the worker may sleep)."""

    async def stop(self) -> None:
        """Release what :meth:`start` acquired."""


class DeliveryJob:
    """The event pass (monitors, queued deliveries, ``lot.expiring`` warnings) and webhook sending."""

    name = "webhooks"
    idle_seconds: float | None = None

    def __init__(self, bank: TokenBank, *, backoff: Backoff | None = None) -> None:
        self._dispatcher: Dispatcher = bank.webhooks.dispatcher(backoff=backoff)

    async def start(self) -> None:
        await self._dispatcher.__aenter__()

    async def run_once(self) -> int:
        report = await self._dispatcher.run_once()
        return report.transactions + report.lots_warned + report.delivered + report.failed_attempts

    async def stop(self) -> None:
        await self._dispatcher.__aexit__(None, None, None)


class ChainJob:
    """Seals the hash chain (PostgreSQL and Redis hash entries after their write), so the window in which a fresh
    entry has no hash yet is one worker round; with ``TOKEN_SIGNING_KEY`` set it also signs a checkpoint every
    ``checkpoint_seconds``."""

    name = "chain"
    idle_seconds: float | None = None

    def __init__(self, bank: TokenBank, *, checkpoint_seconds: float | None = 3600.0) -> None:
        self._bank = bank
        self._every = checkpoint_seconds if bank.settings.signing_key else None
        self._next_checkpoint = 0.0

    async def start(self) -> None:
        return None

    async def run_once(self) -> int:
        await self._bank.chain.seal()
        now = asyncio.get_running_loop().time()
        if self._every is not None and now >= self._next_checkpoint:
            with contextlib.suppress(TransactionStateError):  # no entry to sign yet
                await self._bank.chain.checkpoint()
            self._next_checkpoint = now + self._every
        return 0  # sealing is cheap and bounded by what was written: it never keeps the worker from sleeping

    async def stop(self) -> None:
        return None


class HoldSweepJob:
    """Voids holds past their expiry (and forgets spends that left their account's spend window), every
    ``TOKEN_HOLD_SWEEP_INTERVAL`` seconds (1 s when that is 0)."""

    name = "holds"

    def __init__(self, bank: TokenBank) -> None:
        self._bank = bank
        self.idle_seconds: float | None = bank.settings.hold_sweep_interval or 1.0

    async def start(self) -> None:
        return None

    async def run_once(self) -> int:
        voided = await self._bank.ledger.expire_holds()
        await self._bank.ledger.prune_spends()
        if isinstance(self._bank.storage, LotStore):
            voided += await self._bank.expire_lots()
        return voided

    async def stop(self) -> None:
        return None


class SyncJob:
    """Hybrid mode: moves Redis's ledger stream into PostgreSQL. Its batches wait on the stream for new entries
    themselves, so it never sleeps between them; it shares the sync lease with any in-app sync
    (``TOKEN_BACKGROUND=inline`` elsewhere), so one consumer is active however many processes run it."""

    name = "sync"

    def __init__(self, bank: TokenBank, options: SyncOptions | None = None) -> None:
        if bank.settings.storage_mode is not StorageMode.HYBRID:
            raise ConfigurationError("the sync job works on hybrid mode (TOKEN_STORAGE_MODE=hybrid)")
        self._bank = bank
        self._options = options
        self._sync: SyncWorker | None = None
        self.idle_seconds: float | None = 0.0

    @property
    def sync(self) -> SyncWorker:
        if self._sync is None:
            raise TransactionStateError("the sync job has not started")
        return self._sync

    async def start(self) -> None:
        from tokenbank.storage.hybrid.backend import HybridStorage
        from tokenbank.storage.hybrid.status import SyncOptions
        from tokenbank.storage.hybrid.worker import SyncWorker

        store = self._bank.storage
        assert isinstance(store, HybridStorage)
        self._sync = SyncWorker(store.redis, store.sql, self._options or SyncOptions(block_ms=250))

    async def run_once(self) -> int:
        handled = await self.sync.turn()
        self.idle_seconds = self.sync.standby_pause if handled is None else 0.0
        return handled or 0

    async def stop(self) -> None:
        if self._sync is not None:
            await self._sync.release()
            await self._sync.finish()
            await self._sync.close()
            self._sync = None


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    lease_seconds: float = 30.0
    """A leader that stops renewing loses its jobs this long after its last batch."""
    idle_seconds: float = 1.0
    """Sleep after a batch that did nothing (unless the job says otherwise)."""


def default_jobs(bank: TokenBank, *, backoff: Backoff | None = None) -> list[Job]:
    """The jobs ``tokenbank worker`` runs: webhooks (``backoff``: the retry delays, 5 s doubling up to 1 h), the
    chain sealer, the hold sweeper and, in hybrid mode, the sync."""
    jobs: list[Job] = [DeliveryJob(bank, backoff=backoff), ChainJob(bank), HoldSweepJob(bank)]
    if bank.settings.storage_mode is StorageMode.HYBRID:
        jobs.append(SyncJob(bank))
    return jobs


class Worker:
    """Runs ``jobs`` for ``bank``'s token until stopped."""

    def __init__(self, bank: TokenBank, jobs: Sequence[Job] | None = None, options: WorkerOptions | None = None):
        self.bank = bank
        self.jobs = list(default_jobs(bank) if jobs is None else jobs)
        self.options = options or WorkerOptions()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.stop_event = asyncio.Event()
        self.batches = 0

    @property
    def _state(self) -> EventState:
        return self.bank.events.state

    async def batch(self, job: Job) -> int | None:
        """One batch of ``job`` if this worker holds (or takes) its lease: how much it did, None when another
        worker leads it or the batch failed (logged: the store is down or refuses; the next batch retries)."""
        try:
            if not await self._state.take_lease(job.name, self.owner, self.options.lease_seconds):
                return None
            done = await job.run_once()
        except (TokenBankError, OSError) as exc:
            logger.warning("worker job %s failed: %s", job.name, exc, extra={"operation": "worker"})
            return None
        except Exception:  # a bug in one job must not stop the others: log it, retry after a pause
            logger.exception("worker job %s: unexpected error", job.name, extra={"operation": "worker"})
            return None
        self.batches += 1
        return done

    async def round(self) -> int:
        """One batch of every job whose lease this worker holds; how much they did."""
        done = 0
        for job in self.jobs:
            if self.stop_event.is_set():
                break
            done += await self.batch(job) or 0
        return done

    async def run(self, *, once: bool = False, handle_signals: bool = False) -> None:
        """Run every job in its own loop until stopped (``once``: a single round). ``handle_signals``: SIGTERM and
        SIGINT stop it after the batches in progress."""
        loop = asyncio.get_running_loop()
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop_event.set)
        started: list[Job] = []
        try:
            for job in self.jobs:
                await job.start()
                started.append(job)
            if once:
                await self.round()
            else:
                async with asyncio.TaskGroup() as group:
                    for job in self.jobs:
                        group.create_task(self._loop(job), name=f"tokenbank-worker-{job.name}")
        finally:
            for job in started:
                with contextlib.suppress(TokenBankError):
                    await self._state.release_lease(job.name, self.owner)
                await job.stop()
            if handle_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)

    async def _loop(self, job: Job) -> None:
        while not self.stop_event.is_set():
            done = await self.batch(job)
            if done:
                continue
            idle = self.options.idle_seconds if done is None or job.idle_seconds is None else job.idle_seconds
            if idle > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop_event.wait(), idle)
            else:
                await asyncio.sleep(0)  # the job waited itself (the sync blocks on the stream)


__all__ = [
    "ChainJob",
    "DeliveryJob",
    "HoldSweepJob",
    "Job",
    "SyncJob",
    "Worker",
    "WorkerOptions",
    "default_jobs",
]
