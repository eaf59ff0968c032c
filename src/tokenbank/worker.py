"""``tokenbank worker``: background jobs of one token, each run by one process at a time.

A :class:`Worker` runs a list of :class:`Job`\\ s in a loop. Before each batch of a job it takes (or renews) the
job's lease in the store, so any number of worker processes can run: one leads each job, the others stand by
and take over within ``lease_seconds`` of the leader's death. A job is a small object with a name and a
``run_once`` that does one bounded batch: webhook delivery (with balance monitors) and sealing the hash chain;
adding one (the hybrid sync, a hold sweeper) is adding an object to the list. Stopping (SIGTERM, SIGINT, or the
``stop`` event) lets the batch in progress finish, gives the leases back and returns.
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
from typing import Protocol

from tokenbank.bank import TokenBank
from tokenbank.errors import TokenBankError, TransactionStateError
from tokenbank.services.delivery import Backoff, Dispatcher
from tokenbank.storage.durable import EventState

logger = logging.getLogger("tokenbank")


class Job(Protocol):
    """One background job of a token."""

    name: str
    """Also the name of its lease (unique per token)."""

    async def start(self) -> None:
        """Acquire what the job needs (connections, clients); called once before the first batch."""

    async def run_once(self) -> int:
        """One bounded batch; how much it did (0: nothing to do, the worker may sleep)."""

    async def stop(self) -> None:
        """Release what :meth:`start` acquired."""


class DeliveryJob:
    """The event pass (monitors, queued deliveries) and webhook sending."""

    name = "webhooks"

    def __init__(self, bank: TokenBank, *, backoff: Backoff | None = None) -> None:
        self._dispatcher: Dispatcher = bank.webhooks.dispatcher(backoff=backoff)

    async def start(self) -> None:
        await self._dispatcher.__aenter__()

    async def run_once(self) -> int:
        report = await self._dispatcher.run_once()
        return report.transactions + report.delivered + report.failed_attempts

    async def stop(self) -> None:
        await self._dispatcher.__aexit__(None, None, None)


class ChainJob:
    """Seals the hash chain (PostgreSQL and Redis hash entries after their write), so the window in which a fresh
    entry has no hash yet is one worker round; with ``TOKEN_SIGNING_KEY`` set it also signs a checkpoint every
    ``checkpoint_seconds``."""

    name = "chain"

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


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    lease_seconds: float = 30.0
    """A leader that stops renewing loses its jobs this long after its last batch."""
    idle_seconds: float = 1.0
    """Sleep between rounds in which no job did anything."""


def default_jobs(bank: TokenBank, *, backoff: Backoff | None = None) -> list[Job]:
    """The jobs ``tokenbank worker`` runs; ``backoff``: the webhook retry delays (5 s doubling up to 1 h)."""
    return [DeliveryJob(bank, backoff=backoff), ChainJob(bank)]


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

    async def round(self) -> int:
        """One batch of every job whose lease this worker holds; how much they did."""
        done = 0
        for job in self.jobs:
            if self.stop_event.is_set():
                break
            if not await self._state.take_lease(job.name, self.owner, self.options.lease_seconds):
                continue
            try:
                done += await job.run_once()
                self.batches += 1
            except TokenBankError as exc:  # the store is down or refuses: log, keep running, retry next round
                logger.warning("worker job %s failed: %s", job.name, exc, extra={"operation": "worker"})
        return done

    async def run(self, *, once: bool = False, handle_signals: bool = False) -> None:
        """Run rounds until stopped (``once``: a single round). ``handle_signals``: SIGTERM and SIGINT stop it
        after the current batch."""
        loop = asyncio.get_running_loop()
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop_event.set)
        started: list[Job] = []
        try:
            for job in self.jobs:
                await job.start()
                started.append(job)
            while not self.stop_event.is_set():
                done = await self.round()
                if once:
                    break
                if not done:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stop_event.wait(), self.options.idle_seconds)
        finally:
            for job in started:
                with contextlib.suppress(TokenBankError):
                    await self._state.release_lease(job.name, self.owner)
                await job.stop()
            if handle_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
