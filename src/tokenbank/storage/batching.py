"""Natural batching (group commit) of store writes.

While ``max_in_flight`` store calls are running, further non-atomic calls queue; as soon as a call
returns, everything queued leaves together as ONE store call (one SQL statement, one Lua script). An idle
store sends a lone call at once, so batching never adds latency; under load, per-call overhead (round trip,
commit, script dispatch) is shared by every op in the batch. Ops keep their order and each keeps its own
outcome, exactly as if the calls had been made one after another.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from tokenbank.storage.base import OpResult, WriteOp

ApplyFn = Callable[[Sequence[WriteOp], bool], Awaitable[list[OpResult]]]


@dataclass(slots=True)
class _Waiter:
    ops: Sequence[WriteOp]
    future: asyncio.Future[list[OpResult]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


@dataclass(slots=True)
class BatchStats:
    calls: int = 0
    batches: int = 0
    ops: int = 0
    largest: int = 0


class WriteBatcher:
    """Coalesces concurrent ``apply`` calls of one store. Atomic calls bypass it (they are already one batch)."""

    def __init__(self, apply: ApplyFn, *, max_in_flight: int = 1, max_ops: int = 1000) -> None:
        self._apply = apply
        self._max_in_flight = max_in_flight
        self._max_ops = max_ops
        self._queue: deque[_Waiter] = deque()
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = BatchStats()

    async def apply(self, ops: Sequence[WriteOp], atomic: bool) -> list[OpResult]:
        if atomic or not ops:
            return await self._apply(ops, atomic)
        self.stats.calls += 1
        if not self._queue and self._in_flight < self._max_in_flight:
            return await self._apply_alone(ops)
        waiter = _Waiter(ops)
        self._queue.append(waiter)
        if self._in_flight < self._max_in_flight:
            self._launch()
        return await waiter.future

    async def _apply_alone(self, ops: Sequence[WriteOp]) -> list[OpResult]:
        """An idle store: the call goes at once from the caller's own task, exactly like the unbatched path
        (no hand-off to a batch task); it counts as in flight, so calls arriving meanwhile queue behind it."""
        self._in_flight += 1
        self.stats.batches += 1
        self.stats.ops += len(ops)
        self.stats.largest = max(self.stats.largest, len(ops))
        try:
            return await self._apply(ops, False)
        finally:
            self._in_flight -= 1
            if self._queue:
                self._launch()

    def _launch(self) -> None:
        batch: list[_Waiter] = []
        size = 0
        while self._queue and (not batch or size + len(self._queue[0].ops) <= self._max_ops):
            waiter = self._queue.popleft()
            if waiter.future.cancelled():
                continue
            batch.append(waiter)
            size += len(waiter.ops)
        if not batch:
            return
        self._in_flight += 1
        task = asyncio.get_running_loop().create_task(self._run(batch, size))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[_Waiter], size: int) -> None:
        self.stats.batches += 1
        self.stats.ops += size
        self.stats.largest = max(self.stats.largest, size)
        released = False

        def release() -> None:
            """Free this batch's slot and send what queued meanwhile. Called as soon as the store answers and
            before any caller of this batch wakes: the launched task runs first, so the next batch is on the
            wire while these callers build their results (else the store idles for all of their work)."""
            nonlocal released
            if not released:
                released = True
                self._in_flight -= 1
                if self._queue:
                    self._launch()

        try:
            if len(batch) == 1:
                await self._settle(batch[0], batch[0].ops, release)
                return
            merged = [op for waiter in batch for op in waiter.ops]
            try:
                results = await self._apply(merged, False)
            except Exception:
                # The whole call failed (nothing was applied): retry each caller alone, so only the caller
                # whose ops cause the failure sees it.
                for waiter in batch:
                    await self._settle(waiter, waiter.ops, lambda: None)
                return
            release()
            start = 0
            for waiter in batch:
                end = start + len(waiter.ops)
                if not waiter.future.done():
                    waiter.future.set_result(results[start:end])
                start = end
        finally:
            release()

    async def _settle(self, waiter: _Waiter, ops: Sequence[WriteOp], release: Callable[[], None]) -> None:
        try:
            result = await self._apply(ops, False)
        except BaseException as exc:
            release()
            if not waiter.future.done():
                waiter.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        release()
        if not waiter.future.done():
            waiter.future.set_result(result)
