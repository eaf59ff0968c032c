"""The demo's simulated economy: concurrent random transfers, mints, burns, holds and reversals, timed per op."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import time
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tokenbank.bank import TokenBank
from tokenbank.errors import InsufficientBalanceError, StorageError, TokenBankError

# Relative weights of the random operations; "settle" captures (in full or in part) or voids an open hold.
WEIGHTS = {"transfer": 80, "mint": 4, "burn": 4, "hold": 7, "settle": 5}
REVERSALS = 2
HOLD_SECONDS = 600


def cents(units: int) -> str:
    """Base units (2 decimals) as the exact string the library takes."""
    return f"{units // 100}.{units % 100:02d}"


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(fraction * len(sorted_values)) - 1))]


@dataclass
class Stats:
    """What the run saw, per operation kind: latencies (seconds), successes, refusals, other errors."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    ok: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0

    @property
    def total(self) -> int:
        return sum(len(values) for values in self.latencies.values())

    def all_latencies(self) -> list[float]:
        return sorted(itertools.chain.from_iterable(self.latencies.values()))


class Economy:
    """Runs ``operations`` random ledger operations over ``accounts`` with ``concurrency`` asyncio tasks."""

    def __init__(
        self,
        bank: TokenBank,
        accounts: list[str],
        operations: int,
        rng: random.Random,
        on_progress: Callable[[], None] = lambda: None,
    ) -> None:
        self.bank = bank
        self.accounts = accounts
        self.operations = operations
        self.rng = rng
        self.on_progress = on_progress
        self.stats = Stats()
        self.open_holds: list[tuple[str, int]] = []
        self.recent_transfers: deque[str] = deque(maxlen=200)
        self._counter = itertools.count()
        spacing = operations // (REVERSALS + 1)
        self._reversal_at = {spacing * (i + 1) for i in range(REVERSALS)} if spacing else set()

    async def run(self, concurrency: int) -> Stats:
        started = time.perf_counter()
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(concurrency, max(1, self.operations))):
                    group.create_task(self._worker())
        except ExceptionGroup as failed:
            raise _first(failed) from None  # the caller reports one error, not a group
        self.stats.elapsed = time.perf_counter() - started
        return self.stats

    async def _worker(self) -> None:
        # One shared counter: asyncio runs one task at a time, so every index is taken exactly once.
        while (index := next(self._counter)) < self.operations:
            kind, call = self._pick(index)
            started = time.perf_counter()
            try:
                await call()
            except InsufficientBalanceError:
                self.stats.refused[kind] += 1
            except StorageError:
                raise  # the store itself failed: stop the demo and report it
            except TokenBankError as exc:
                self.stats.errors[f"{kind}: {exc.code}"] += 1
            else:
                self.stats.ok[kind] += 1
            self.stats.latencies[kind].append(time.perf_counter() - started)
            self.on_progress()

    def _pick(self, index: int) -> tuple[str, Callable[[], Awaitable[Any]]]:
        if index in self._reversal_at and self.recent_transfers:
            tx_id = self.rng.choice(self.recent_transfers)
            self.recent_transfers.remove(tx_id)  # a transfer is reversed at most once
            return "reversal", lambda: self.bank.reverse(tx_id, reason="demo: customer refund")
        kind = self.rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
        if kind == "settle" and not self.open_holds:
            kind = "transfer"
        rng = self.rng
        if kind == "transfer":
            sender, receiver = rng.sample(self.accounts, 2)
            amount = cents(rng.randint(1, 25_000))
            return kind, lambda: self._transfer(sender, receiver, amount)
        if kind == "mint":
            receiver, amount = rng.choice(self.accounts), cents(rng.randint(100, 100_000))
            return kind, lambda: self.bank.mint(receiver, amount, reason="demo: reward")
        if kind == "burn":
            payer, amount = rng.choice(self.accounts), cents(rng.randint(1, 20_000))
            return kind, lambda: self.bank.burn(payer, amount, reason="demo: fee")
        if kind == "hold":
            sender, receiver = rng.sample(self.accounts, 2)
            units = rng.randint(1, 20_000)
            return kind, lambda: self._hold(sender, receiver, units)
        hold_id, held = self.open_holds.pop(rng.randrange(len(self.open_holds)))
        choice = rng.random()
        if choice < 0.4:
            return "capture", lambda: self.bank.capture(hold_id)
        if choice < 0.6:
            part = cents(rng.randint(1, held))  # a partial capture releases the rest to the sender
            return "capture", lambda: self.bank.capture(hold_id, part)
        return "void", lambda: self.bank.void(hold_id, reason="demo: order cancelled")

    async def _transfer(self, sender: str, receiver: str, amount: str) -> None:
        tx = await self.bank.transfer(sender, receiver, amount, metadata={"demo": True})
        self.recent_transfers.append(tx.id)

    async def _hold(self, sender: str, receiver: str, units: int) -> None:
        hold = await self.bank.hold(sender, receiver, cents(units), expires_in=HOLD_SECONDS)
        self.open_holds.append((hold.id, units))


def _first(group: BaseExceptionGroup[Any]) -> BaseException:
    error = group.exceptions[0]
    return _first(error) if isinstance(error, BaseExceptionGroup) else error
